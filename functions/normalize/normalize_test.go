package normalize

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"os"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bitbrat/twitch-edge/functions/trigger"
	"github.com/bitbrat/twitch-edge/shared/emulators"
	"github.com/bitbrat/twitch-edge/shared/event"
	"github.com/bitbrat/twitch-edge/shared/fault"
	"github.com/bitbrat/twitch-edge/shared/store"
)

func TestMain(m *testing.M) { os.Exit(emulators.RunTests(m, emulators.Firestore)) }

func read(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile("testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func builder() *Builder { return &Builder{Normalizers: Registry()} }

func TestBuildMatchesGoldenEvents(t *testing.T) {
	for _, kind := range []string{"follow", "update", "subscribe"} {
		t.Run(kind, func(t *testing.T) {
			e, err := builder().Build(read(t, kind+".frame.json"))
			if err != nil {
				t.Fatal(err)
			}
			got, err := json.Marshal(e)
			if err != nil {
				t.Fatal(err)
			}
			want := string(read(t, kind+".event.json"))
			want = strings.ReplaceAll(want, "CID", e.CorrelationID)
			want = strings.ReplaceAll(want, "TRACE", strings.ReplaceAll(e.CorrelationID, "-", ""))
			var g, w any
			_ = json.Unmarshal(got, &g)
			if err := json.Unmarshal([]byte(want), &w); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(g, w) {
				t.Errorf("event differs from testdata/%s.event.json\n got: %s", kind, got)
			}
		})
	}
}

// TestContractFields checks the CONTRACT.md rules one by one, so a failure names the rule.
func TestContractFields(t *testing.T) {
	follow, err := builder().Build(read(t, "follow.frame.json"))
	if err != nil {
		t.Fatal(err)
	}
	update, err := builder().Build(read(t, "update.frame.json"))
	if err != nil {
		t.Fatal(err)
	}
	var raw struct {
		Payload struct {
			Event json.RawMessage `json:"event"`
		} `json:"payload"`
	}
	_ = json.Unmarshal(read(t, "follow.frame.json"), &raw)
	var fp FollowPayload
	_ = json.Unmarshal(follow.ExternalEvent.Payload, &fp)
	var up UpdatePayload
	_ = json.Unmarshal(update.ExternalEvent.Payload, &up)

	rules := []struct {
		rule      string
		got, want any
	}{
		{"v", follow.V, "1"},
		{"type", follow.Type, "twitch.eventsub.v1"},
		{"source", follow.Source, "ingress.twitch.eventsub"},
		{"channel is #broadcaster_user_login", follow.Channel, "#cooler_user"},
		{"externalEvent.source", follow.ExternalEvent.Source, "twitch.eventsub"},
		{"externalEvent.kind = subscription type", follow.ExternalEvent.Kind, "channel.follow"},
		{"externalEvent.version = subscription version", follow.ExternalEvent.Version, "2"},
		{"externalEvent.rawPayload = Twitch's event unchanged", string(follow.ExternalEvent.RawPayload), string(raw.Payload.Event)},
		{"externalEvent.id = message_id", follow.ExternalEvent.ID, "befa7b53-d79d-478f-86b9-120f112b044e"},
		{"correlationId derived from message_id", follow.CorrelationID, event.CorrelationIDForEventSub("befa7b53-d79d-478f-86b9-120f112b044e")},
		{"follow: userId = follower", follow.UserID, "1234"},
		{"follow: createdAt = followed_at", follow.ExternalEvent.CreatedAt, "2020-07-15T18:16:11.17106713Z"},
		{"follow: payload.followedAt", fp.FollowedAt, "2020-07-15T18:16:11.17106713Z"},
		{"follow: payload.userDisplayName", fp.UserDisplayName, "Cool_User"},
		{"follow: payload.broadcasterDisplayName", fp.BroadcasterDisplayName, "Cooler_User"},
		{"update: userId = broadcaster", update.UserID, "1337"},
		{"update: createdAt = message_timestamp", update.ExternalEvent.CreatedAt, "2023-06-29T17:20:33.860897266Z"},
		{"update: isMature when labels", up.IsMature, true},
		{"update: categoryName", up.CategoryName, "Grand Theft Auto"},
		{"no egress unless configured", follow.Egress == nil, true},
	}
	for _, r := range rules {
		if !reflect.DeepEqual(r.got, r.want) {
			t.Errorf("%s: got %v, want %v", r.rule, r.got, r.want)
		}
	}
	b := &Builder{Normalizers: Registry(), EgressDestination: "internal.egress.v1"}
	e, _ := b.Build(read(t, "follow.frame.json"))
	if e.Egress == nil || e.Egress.Destination != "internal.egress.v1" {
		t.Errorf("egress.destination not set from EGRESS_DESTINATION: %+v", e.Egress)
	}
}

func TestUpdateWithoutLabelsIsNotMature(t *testing.T) {
	frame := bytes.Replace(read(t, "update.frame.json"), []byte(`"content_classification_labels": ["MatureGame"]`), []byte(`"content_classification_labels": []`), 1)
	e, err := builder().Build(frame)
	if err != nil {
		t.Fatal(err)
	}
	var up UpdatePayload
	_ = json.Unmarshal(e.ExternalEvent.Payload, &up)
	if up.IsMature || up.ContentClassificationLabels == nil {
		t.Errorf("payload = %+v", up)
	}
}

func TestBuildRejectsWhatCanNeverNormalize(t *testing.T) {
	follow := string(read(t, "follow.frame.json"))
	cases := []struct {
		name, frame, code string
	}{
		{"not json", "hello", "EVENTSUB_BAD_FRAME"},
		{"empty", "", "EVENTSUB_BAD_FRAME"},
		{"no metadata", `{"payload":{}}`, "EVENTSUB_BAD_FRAME"},
		{"keepalive", `{"metadata":{"message_id":"x","message_type":"session_keepalive","message_timestamp":"2023-07-19T10:11:12.634234626Z"},"payload":{}}`, "EVENTSUB_NOT_NOTIFICATION"},
		{"no subscription type", `{"metadata":{"message_id":"x","message_type":"notification","message_timestamp":"2023-07-19T10:11:12Z"},"payload":{"subscription":{},"event":{}}}`, "EVENTSUB_BAD_FRAME"},
		{"no event", strings.Replace(follow, `"event"`, `"evt"`, 1), "EVENTSUB_BAD_EVENT"},
		{"event not object", `{"metadata":{"message_id":"x","message_type":"notification","message_timestamp":"2023-07-19T10:11:12Z"},"payload":{"subscription":{"type":"x.y"},"event":[1]}}`, "EVENTSUB_BAD_EVENT"},
		{"follow without user_id", strings.Replace(follow, `"user_id": "1234"`, `"user_id": ""`, 1), "EVENTSUB_MISSING_FIELD"},
		{"follow with numeric user_id", strings.Replace(follow, `"user_id": "1234"`, `"user_id": 1234`, 1), "EVENTSUB_BAD_EVENT"},
		{"follow without followed_at", strings.Replace(follow, `"followed_at": "2020-07-15T18:16:11.17106713Z"`, `"x": 1`, 1), "EVENTSUB_MISSING_FIELD"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := builder().Build([]byte(c.frame))
			if fault.KindOf(err) != fault.Invalid || fault.CodeOf(err, "") != c.code {
				t.Fatalf("got %v (%s), want invalid %s: %v", fault.KindOf(err), fault.CodeOf(err, ""), c.code, err)
			}
		})
	}
}

func TestCamelCase(t *testing.T) {
	for in, want := range map[string]string{
		"broadcaster_user_id": "broadcasterUserId", "tier": "tier", "is_gift": "isGift",
		"_private": "private", "a__b": "aB", "already_Camel": "alreadyCamel", "x_1": "x1",
	} {
		if got := camelCase(in); got != want {
			t.Errorf("camelCase(%q) = %q, want %q", in, got, want)
		}
	}
}

// recordingPublisher is a fake of our own Publisher interface.
type recordingPublisher struct {
	mu   sync.Mutex
	msgs []recorded
	fail error
}

type recorded struct {
	topic string
	data  []byte
	attrs map[string]string
}

func (p *recordingPublisher) Publish(_ context.Context, topic string, data []byte, attrs map[string]string) (string, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.fail != nil {
		return "", p.fail
	}
	p.msgs = append(p.msgs, recorded{topic, data, attrs})
	return "id-" + string(rune('0'+len(p.msgs))), nil
}

func (p *recordingPublisher) count() int { p.mu.Lock(); defer p.mu.Unlock(); return len(p.msgs) }

func newService(t *testing.T, pub Publisher) *Service {
	t.Helper()
	fs, err := store.NewClient(context.Background(), emulators.ProjectID(t), "", store.WithEmulator(emulators.Host(emulators.Firestore)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { fs.Close() })
	return &Service{
		Builder: builder(), Pub: pub,
		Ledger:       store.NewClaims(fs, store.CollectionIdempotency, time.Hour, nil),
		IngressTopic: "internal.ingress.v1", MaxAge: 24 * time.Hour, Owner: "test", Lease: time.Minute,
		Now: time.Now, Log: slog.New(slog.NewJSONHandler(io.Discard, nil)),
	}
}

func TestServicePublishesOncePerNotification(t *testing.T) {
	pub := &recordingPublisher{}
	s := newService(t, pub)
	m := trigger.Message{ID: "1", Data: read(t, "follow.frame.json"), PublishTime: time.Now()}
	var wg sync.WaitGroup
	errs := make(chan error, 6)
	for i := 0; i < 3; i++ { // three concurrent deliveries of the same message
		wg.Add(1)
		go func() { defer wg.Done(); errs <- s.Handle(context.Background(), m) }()
	}
	wg.Wait()
	for i := 0; i < 3; i++ { // and three sequential redeliveries
		errs <- s.Handle(context.Background(), m)
	}
	close(errs)
	for err := range errs {
		// A delivery that found another in progress asks for a retry: that is fine.
		if err != nil && fault.CodeOf(err, "") != "IN_PROGRESS" {
			t.Errorf("handle: %v", err)
		}
	}
	if pub.count() != 1 {
		t.Fatalf("published %d events, want 1", pub.count())
	}
	r := pub.msgs[0]
	if r.topic != "internal.ingress.v1" || r.attrs["type"] != event.TypeTwitchEventSub || r.attrs["correlationid"] == "" ||
		r.attrs["idempotencykey"] != r.attrs["correlationid"] || r.attrs["channel"] != "#cooler_user" {
		t.Errorf("published %s with attributes %v", r.topic, r.attrs)
	}
}

func TestServiceRetriesAfterPublishFailure(t *testing.T) {
	pub := &recordingPublisher{fail: fault.New(fault.Transient, "PUBSUB_UNAVAILABLE", "down")}
	s := newService(t, pub)
	m := trigger.Message{ID: "1", Data: read(t, "update.frame.json"), PublishTime: time.Now()}
	if err := s.Handle(context.Background(), m); !fault.Retryable(err) {
		t.Fatalf("want retryable error while Pub/Sub is down, got %v", err)
	}
	pub.fail = nil
	if err := s.Handle(context.Background(), m); err != nil {
		t.Fatalf("after recovery: %v", err)
	}
	if pub.count() != 1 {
		t.Fatalf("published %d, want 1", pub.count())
	}
}

// An attempt whose context ends during the publish (the function's timeout, the push
// request gone) releases its claim all the same: the redelivery publishes. Before,
// the release ran on the ended context and failed, the claim stayed for its lease,
// every redelivery found it "held", and Pub/Sub dead-lettered the message after its
// last attempt, never published.
func TestServiceRedeliveryAfterAnEndedAttemptPublishes(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	pub := &endingPublisher{end: cancel}
	s := newService(t, pub)
	m := trigger.Message{ID: "raw-ended", Data: read(t, "follow.frame.json"), PublishTime: time.Now()}
	if err := s.Handle(ctx, m); err == nil {
		t.Fatal("the ended attempt succeeded")
	}
	if err := s.Handle(context.Background(), m); err != nil {
		t.Fatalf("redelivery: %v (code %s), want published", err, fault.CodeOf(err, ""))
	}
	if pub.count() != 1 {
		t.Fatalf("published %d, want 1", pub.count())
	}
}

// endingPublisher ends the caller's context during its first publish and fails it,
// as the bus does when the context ends before the server answers.
type endingPublisher struct {
	recordingPublisher
	end   context.CancelFunc
	ended bool
}

func (p *endingPublisher) Publish(ctx context.Context, topic string, data []byte, attrs map[string]string) (string, error) {
	if !p.ended {
		p.ended = true
		p.end()
		<-ctx.Done()
		return "", fault.Wrap(fault.Transient, "PUBSUB_UNAVAILABLE", ctx.Err(), "publish to %s", topic)
	}
	return p.recordingPublisher.Publish(ctx, topic, data, attrs)
}

func TestServiceDeadLettersStaleMessages(t *testing.T) {
	s := newService(t, &recordingPublisher{})
	m := trigger.Message{ID: "1", Data: read(t, "follow.frame.json"), PublishTime: time.Now().Add(-25 * time.Hour)}
	err := s.Handle(context.Background(), m)
	if fault.KindOf(err) != fault.Invalid || fault.CodeOf(err, "") != "EVENTSUB_TOO_OLD" {
		t.Fatalf("got %v", err)
	}
	if errors.Is(err, context.Canceled) {
		t.Fatal("unexpected")
	}
}

func FuzzBuild(f *testing.F) {
	for _, n := range []string{"follow", "update", "subscribe"} {
		f.Add(read(f, n+".frame.json"))
	}
	f.Add([]byte(`{"metadata":{"message_id":"x","message_type":"notification"},"payload":{"subscription":{"type":"channel.follow"},"event":{"followed_at":"x"}}}`))
	b := builder()
	f.Fuzz(func(t *testing.T, frame []byte) {
		e, err := b.Build(frame)
		if err != nil {
			if fault.KindOf(err) != fault.Invalid {
				t.Fatalf("error not classified invalid: %v", err)
			}
			return
		}
		if e.CorrelationID == "" || e.ExternalEvent == nil || e.Type != event.TypeTwitchEventSub {
			t.Fatalf("incomplete event: %+v", e)
		}
		if _, err := json.Marshal(e); err != nil {
			t.Fatalf("encode: %v", err)
		}
	})
}

// BenchmarkNormalize measures decode + normalize + encode per event, each kind, as
// Service.Handle does them.
func BenchmarkNormalize(b *testing.B) {
	for _, kind := range []string{"follow", "update", "subscribe"} {
		frame := read(b, kind+".frame.json")
		bld := builder()
		b.Run(kind, func(b *testing.B) {
			b.ReportAllocs()
			defer reportCPU(b, cpuTime())
			for i := 0; i < b.N; i++ {
				e, err := bld.Build(frame)
				if err != nil {
					b.Fatal(err)
				}
				if _, err := e.MarshalJSON(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
