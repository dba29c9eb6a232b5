package finalize

import (
	"bytes"
	"context"
	"encoding/json"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"cloud.google.com/go/firestore"
	cloudevent "github.com/cloudevents/sdk-go/v2/event"

	"github.com/bitbrat/twitch-edge/functions/trigger"
	"github.com/bitbrat/twitch-edge/shared/emulators"
	"github.com/bitbrat/twitch-edge/shared/event"
	"github.com/bitbrat/twitch-edge/shared/fault"
	"github.com/bitbrat/twitch-edge/shared/logging"
	"github.com/bitbrat/twitch-edge/shared/logging/logtest"
	"github.com/bitbrat/twitch-edge/shared/store"
)

type fixture struct {
	fs   *firestore.Client
	svc  *Service
	logs *logtest.Buffer
	now  time.Time
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	return newFixtureOn(t, emulators.Host(emulators.Firestore))
}

// newFixtureOn is newFixture on the Firestore emulator at host.
func newFixtureOn(t *testing.T, host string) *fixture {
	t.Helper()
	fs, err := store.NewClient(context.Background(), emulators.ProjectID(t), "", store.WithEmulator(host))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { fs.Close() })
	f := &fixture{fs: fs, logs: &logtest.Buffer{}, now: time.Date(2026, 11, 21, 12, 0, 5, 0, time.UTC)}
	log := logging.New(f.logs, nil, "finalize")
	f.svc = New(store.NewEvents(fs, func() time.Time { return f.now }), func() time.Time { return f.now }, DefaultTTL, log)
	return f
}

// handle runs one message through the service as the function would receive it.
func (f *fixture) handle(t *testing.T, body string) error {
	t.Helper()
	return f.svc.Handle(context.Background(), trigger.Message{ID: "m", Data: []byte(body), PublishTime: f.now})
}

func (f *fixture) mustHandle(t *testing.T, body string) {
	t.Helper()
	if err := f.handle(t, body); err != nil {
		t.Fatalf("Handle: %v", err)
	}
}

func (f *fixture) doc(t *testing.T, correlationID string) map[string]any {
	t.Helper()
	snap, err := f.fs.Collection(store.CollectionEvents).Doc(store.DocID(correlationID)).Get(context.Background())
	if err != nil {
		t.Fatalf("get events/%s: %v", correlationID, err)
	}
	return snap.Data()
}

// finalizeJSON is a finalize message; extra members are spliced in.
func finalizeJSON(status, deliveredAt, extra string) string {
	s := `{"correlationId":"corr-1","destination":"internal.egress.v1","deliveredAt":"` + deliveredAt + `","status":"` + status + `"`
	if extra != "" {
		s += "," + extra
	}
	return s + "}"
}

func TestFinalizeSentDocument(t *testing.T) {
	f := newFixture(t)
	f.mustHandle(t, string(readFixture(t, "finalize_sent.json")))
	const id = "3f2a9c1e-8b7d-4e6f-a5c4-b3d2e1f0a9b8"
	got := f.doc(t, id)
	deliveredAt := time.Date(2026, 11, 21, 12, 0, 2, 0, time.UTC)
	if ts, _ := got["expireAt"].(time.Time); !ts.Equal(deliveredAt.Add(7 * 24 * time.Hour)) {
		t.Errorf("expireAt = %v, want deliveredAt + 7 days", got["expireAt"])
	}
	if ts, _ := got["updatedAt"].(time.Time); !ts.Equal(f.now) {
		t.Errorf("updatedAt = %v, want %v", got["updatedAt"], f.now)
	}
	delete(got, "expireAt")
	delete(got, "updatedAt")
	want := map[string]any{
		"correlationId": id,
		"status":        "FINALIZED",
		"finalizedAt":   "2026-11-21T12:00:02.000Z",
		"delivery": map[string]any{
			"destination":       "internal.egress.v1",
			"status":            "SENT",
			"deliveredAt":       "2026-11-21T12:00:02.000Z",
			"providerMessageId": "abc-123-def",
			"error":             nil,
		},
		"currentProjection": map[string]any{
			"annotations": []any{map[string]any{"id": "a-1", "kind": "intent", "source": "router", "createdAt": "2026-11-21T12:00:00.010Z"}},
			"candidates": []any{map[string]any{"id": "c-2", "kind": "text", "source": "llm-bot", "createdAt": "2026-11-21T12:00:01.000Z",
				"status": "selected", "priority": int64(1), "text": "Hi!"}},
		},
		"updateCount": int64(1),
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("document:\n got %#v\nwant %#v", got, want)
	}
	logs := f.logs.String()
	for _, s := range []string{`"severity":"INFO"`, `"message":"finalize: outcome recorded"`, `"correlationId":"` + id + `"`, `"status":"SENT"`, `"destination":"internal.egress.v1"`} {
		if !strings.Contains(logs, s) {
			t.Errorf("log lacks %s:\n%s", s, logs)
		}
	}
}

func TestFinalizeFailedDocument(t *testing.T) {
	f := newFixture(t)
	f.mustHandle(t, string(readFixture(t, "finalize_failed.json")))
	got := f.doc(t, "9d8c7b6a-5f4e-4d3c-2b1a-0f9e8d7c6b5a")
	if got["status"] != "FINALIZED" || got["finalizedAt"] != "2026-11-21T12:00:02.500Z" {
		t.Errorf("status/finalizedAt = %v %v", got["status"], got["finalizedAt"])
	}
	if ts, _ := got["expireAt"].(time.Time); !ts.Equal(time.Date(2026, 11, 28, 12, 0, 2, 500e6, time.UTC)) {
		t.Errorf("expireAt = %v", got["expireAt"])
	}
	wantDelivery := map[string]any{
		"destination": "twitch.egress.whisper.v1",
		"status":      "FAILED",
		"deliveredAt": "2026-11-21T12:00:02.500Z",
		"error":       map[string]any{"code": "TWITCH_BAD_REQUEST", "message": "the recipient's settings prevent this sender from whispering them"},
		"parts": map[string]any{"0": map[string]any{"index": int64(0), "status": "FAILED", "deliveredAt": "2026-11-21T12:00:02.500Z",
			"error": map[string]any{"code": "TWITCH_BAD_REQUEST"}}},
		"summary": map[string]any{"total": int64(1), "sent": int64(0), "failed": int64(1), "status": "FAILED"},
	}
	if !reflect.DeepEqual(got["delivery"], wantDelivery) {
		t.Errorf("delivery:\n got %#v\nwant %#v", got["delivery"], wantDelivery)
	}
	wantProjection := map[string]any{"annotations": []any{}, "candidates": []any{}}
	if !reflect.DeepEqual(got["currentProjection"], wantProjection) {
		t.Errorf("currentProjection = %#v", got["currentProjection"])
	}
}

func TestFinalizeReplayAndOutOfOrderKeepNewest(t *testing.T) {
	f := newFixture(t)
	newer := finalizeJSON("FAILED", "2026-11-21T12:00:03Z", `"error":{"code":"TWITCH_UNAVAILABLE"}`)
	older := finalizeJSON("FAILED", "2026-11-21T12:00:01Z", `"error":{"code":"TWITCH_BAD_REQUEST"}`)
	for _, body := range []string{newer, newer, older, newer, older} {
		f.mustHandle(t, body)
	}
	got := f.doc(t, "corr-1")
	d := got["delivery"].(map[string]any)
	if d["deliveredAt"] != "2026-11-21T12:00:03Z" || d["error"].(map[string]any)["code"] != "TWITCH_UNAVAILABLE" || got["updateCount"] != int64(1) {
		t.Fatalf("after replays: delivery=%v updateCount=%v", d, got["updateCount"])
	}
	if ts, _ := got["expireAt"].(time.Time); !ts.Equal(time.Date(2026, 11, 28, 12, 0, 3, 0, time.UTC)) {
		t.Errorf("expireAt = %v", got["expireAt"])
	}
	if n := strings.Count(f.logs.String(), "outcome unchanged"); n != 4 {
		t.Errorf("%d 'unchanged' lines, want 4", n)
	}
}

func TestFinalizeSentIsNeverReplacedByFailed(t *testing.T) {
	f := newFixture(t)
	f.mustHandle(t, finalizeJSON("SENT", "2026-11-21T12:00:01Z", `"providerMessageId":"p-0","parts":[{"index":0,"status":"SENT","providerMessageId":"p-0"}]`))
	f.mustHandle(t, finalizeJSON("FAILED", "2026-11-21T12:00:04Z", `"error":{"code":"TWITCH_UNAVAILABLE"},"parts":[{"index":0,"status":"FAILED"}]`))
	got := f.doc(t, "corr-1")
	d := got["delivery"].(map[string]any)
	p0 := d["parts"].(map[string]any)["0"].(map[string]any)
	if d["status"] != "SENT" || d["providerMessageId"] != "p-0" || d["error"] != nil || p0["status"] != "SENT" || got["updateCount"] != int64(1) {
		t.Fatalf("delivery = %v, updateCount = %v", d, got["updateCount"])
	}
}

func TestFinalizeSplitDeliveryRecordedPerPart(t *testing.T) {
	f := newFixture(t)
	// First attempt: part 1 failed. The retry sends it. They arrive retry first.
	first := finalizeJSON("FAILED", "2026-11-21T12:00:01Z",
		`"error":{"code":"TWITCH_UNAVAILABLE"},"parts":[{"index":0,"status":"SENT","providerMessageId":"p-0"},{"index":1,"status":"FAILED","error":{"code":"TWITCH_UNAVAILABLE"}},{"index":2,"status":"FAILED"}]`)
	retry := finalizeJSON("FAILED", "2026-11-21T12:00:02Z",
		`"error":{"code":"TWITCH_BAD_REQUEST"},"parts":[{"index":1,"status":"SENT","providerMessageId":"p-1"},{"index":2,"status":"FAILED","error":{"code":"TWITCH_BAD_REQUEST"}}]`)
	f.mustHandle(t, retry)
	f.mustHandle(t, first)
	o, ok, err := store.NewEvents(f.fs, nil).GetOutcome(context.Background(), "corr-1")
	if err != nil || !ok {
		t.Fatalf("ok=%v err=%v", ok, err)
	}
	var got []string
	for _, p := range o.Delivery.SortedParts() {
		got = append(got, p.Status+":"+p.ProviderMessageID+"@"+p.DeliveredAt)
	}
	want := []string{"SENT:p-0@2026-11-21T12:00:01Z", "SENT:p-1@2026-11-21T12:00:02Z", "FAILED:@2026-11-21T12:00:02Z"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("parts = %v, want %v", got, want)
	}
	if s := o.Delivery.Summary; s == nil || *s != (store.PartsSummary{Total: 3, Sent: 2, Failed: 1, Status: SummaryPartial}) {
		t.Errorf("summary = %+v", s)
	}
	if o.Delivery.DeliveredAt != "2026-11-21T12:00:02Z" || o.Delivery.Error.Code != "TWITCH_BAD_REQUEST" || o.UpdateCount != 2 {
		t.Errorf("delivery = %+v, updateCount %d", o.Delivery, o.UpdateCount)
	}
}

func TestFinalizeConcurrentDeliveriesWriteOnce(t *testing.T) {
	f := newFixture(t)
	body := string(readFixture(t, "finalize_sent.json"))
	var wg sync.WaitGroup
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := f.svc.Handle(context.Background(), trigger.Message{Data: []byte(body), PublishTime: f.now}); err != nil {
				t.Errorf("Handle: %v", err)
			}
		}()
	}
	wg.Wait()
	got := f.doc(t, "3f2a9c1e-8b7d-4e6f-a5c4-b3d2e1f0a9b8")
	if got["updateCount"] != int64(1) {
		t.Fatalf("updateCount = %v, want one write", got["updateCount"])
	}
	if n := strings.Count(f.logs.String(), "outcome recorded"); n != 1 {
		t.Errorf("%d 'recorded' lines, want 1", n)
	}
}

func TestFinalizeNeverIngestedAndIngested(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	// Never ingested: the record is created.
	f.mustHandle(t, finalizeJSON("SENT", "2026-11-21T12:00:01Z", ""))
	if got := f.doc(t, "corr-1"); got["status"] != "FINALIZED" || got["correlationId"] != "corr-1" {
		t.Fatalf("never-ingested record = %v", got)
	}
	// Ingested upstream: everything upstream wrote stays.
	ref := f.fs.Collection(store.CollectionEvents).Doc("corr-2")
	if _, err := ref.Set(ctx, map[string]any{"correlationId": "corr-2", "status": "INGESTED", "type": "twitch.eventsub.v1", "ingestedAt": "2026-11-21T12:00:00.000Z"}); err != nil {
		t.Fatal(err)
	}
	f.mustHandle(t, strings.Replace(finalizeJSON("SENT", "2026-11-21T12:00:01Z", ""), "corr-1", "corr-2", 1))
	got := f.doc(t, "corr-2")
	if got["status"] != "FINALIZED" || got["type"] != "twitch.eventsub.v1" || got["ingestedAt"] != "2026-11-21T12:00:00.000Z" {
		t.Fatalf("ingested record = %v", got)
	}
}

func TestFinalizeInternalEventOnTopic(t *testing.T) {
	f := newFixture(t)
	ev := `{"v":"1","source":"llm-bot","correlationId":"corr-1","type":"llm.response.v1","egress":{"destination":"internal.egress.v1"},
		"annotations":[{"id":"a","kind":"k","source":"s","createdAt":"2026-11-21T12:00:00Z","score":0.25}],"qos":{"ttl":3600}}`
	f.mustHandle(t, ev)
	f.mustHandle(t, ev) // redelivery: same publish time, nothing to write
	got := f.doc(t, "corr-1")
	d := got["delivery"].(map[string]any)
	if d["status"] != StatusFinalized || d["destination"] != "internal.egress.v1" || d["deliveredAt"] != event.Timestamp(f.now) || got["updateCount"] != int64(1) {
		t.Fatalf("delivery = %v, updateCount = %v", d, got["updateCount"])
	}
	if ts, _ := got["expireAt"].(time.Time); !ts.Equal(f.now.Add(time.Hour)) {
		t.Errorf("expireAt = %v, want publish time + qos.ttl", got["expireAt"])
	}
	// The real outcome, reported earlier, still takes over.
	f.mustHandle(t, finalizeJSON("SENT", "2026-11-21T12:00:01Z", `"providerMessageId":"m"`))
	d = f.doc(t, "corr-1")["delivery"].(map[string]any)
	if d["status"] != "SENT" || d["providerMessageId"] != "m" {
		t.Fatalf("delivery after outcome = %v", d)
	}
	ann := f.doc(t, "corr-1")["currentProjection"].(map[string]any)["annotations"].([]any)
	if len(ann) != 1 {
		t.Errorf("annotations = %v, want the event's", ann)
	}
}

func TestFinalizeInvalidInput(t *testing.T) {
	f := newFixture(t)
	for _, tc := range []struct{ body, code string }{
		{`not json`, CodeNotJSON},
		{`{"destination":"d","deliveredAt":"2026-11-21T12:00:01Z","status":"SENT"}`, CodeMissingCorrelationID},
		{finalizeJSON("OK", "2026-11-21T12:00:01Z", ""), CodeBadStatus},
		{finalizeJSON("SENT", "12:00", ""), CodeBadDeliveredAt},
	} {
		err := f.handle(t, tc.body)
		if fault.KindOf(err) != fault.Invalid || fault.CodeOf(err, "") != tc.code {
			t.Errorf("%s: err = %v, want invalid %s", tc.body, err, tc.code)
		}
	}
	if _, ok, _ := store.NewEvents(f.fs, nil).GetOutcome(context.Background(), "corr-1"); ok {
		t.Error("an invalid message was recorded")
	}
}

func TestFinalizeFirestoreUnavailableIsRetried(t *testing.T) {
	f := newFixtureOn(t, "127.0.0.1:1") // nothing listens there
	ctx, cancel := context.WithTimeout(context.Background(), 1500*time.Millisecond)
	defer cancel()
	err := f.svc.Handle(ctx, trigger.Message{Data: []byte(finalizeJSON("SENT", "2026-11-21T12:00:01Z", "")), PublishTime: f.now})
	if fault.KindOf(err) != fault.Transient || !fault.Retryable(err) {
		t.Fatalf("err = %v (kind %v), want transient", err, fault.KindOf(err))
	}
}

// fakePublisher records what the dead-letter path publishes.
type fakePublisher struct {
	mu   sync.Mutex
	msgs []publishedMsg
}

type publishedMsg struct {
	topic string
	data  []byte
	attrs map[string]string
}

func (p *fakePublisher) Publish(_ context.Context, topic string, data []byte, attrs map[string]string) (string, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.msgs = append(p.msgs, publishedMsg{topic, data, attrs})
	return "id", nil
}

func pubsubEvent(t *testing.T, data []byte, attrs map[string]string) cloudevent.Event {
	t.Helper()
	e := cloudevent.New()
	e.SetID("evt-1")
	e.SetSource("//pubsub.googleapis.com/projects/p/topics/" + event.TopicFinalize)
	e.SetType("google.cloud.pubsub.topic.v1.messagePublished")
	e.SetTime(time.Date(2026, 11, 21, 12, 0, 5, 0, time.UTC))
	err := e.SetData("application/json", map[string]any{
		"message": map[string]any{"data": data, "attributes": attrs, "messageId": "msg-1", "publishTime": "2026-11-21T12:00:05Z"},
	})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func TestWrappedHandlerDeadLettersInvalidAndRecordsValid(t *testing.T) {
	f := newFixture(t)
	pub := &fakePublisher{}
	fn := trigger.Wrap("Finalize", logging.New(f.logs, nil, "finalize"),
		trigger.DeadLetters{Pub: pub, Topic: event.TopicDeadLetter, Source: "twitch-edge.finalize", OriginalType: event.TypeEgressDeliver},
		f.svc.Handle)
	ctx := context.Background()

	bad := []byte(finalizeJSON("MAYBE", "2026-11-21T12:00:01Z", ""))
	if err := fn(ctx, pubsubEvent(t, bad, event.FinalizeAttributes("corr-1"))); err != nil {
		t.Fatalf("invalid message not acknowledged: %v", err)
	}
	if len(pub.msgs) != 1 || pub.msgs[0].topic != event.TopicDeadLetter {
		t.Fatalf("dead letters = %+v", pub.msgs)
	}
	var dl event.DeadLetter
	if err := json.Unmarshal(pub.msgs[0].data, &dl); err != nil {
		t.Fatal(err)
	}
	if dl.CorrelationID != "corr-1" || dl.Payload.Error.Code != CodeBadStatus || !bytes.Equal(dl.Original, bad) || dl.Source != "twitch-edge.finalize" {
		t.Errorf("dead letter = %+v original=%s", dl, dl.Original)
	}

	// Not JSON, no attributes: dead-lettered with the original in base64.
	if err := fn(ctx, pubsubEvent(t, []byte("\xff\x00garbage"), nil)); err != nil {
		t.Fatalf("garbage not acknowledged: %v", err)
	}
	if len(pub.msgs) != 2 {
		t.Fatalf("dead letters = %d, want 2", len(pub.msgs))
	}
	_ = json.Unmarshal(pub.msgs[1].data, &dl)
	if dl.Payload.Error.Code != CodeNotJSON {
		t.Errorf("code = %s, want %s", dl.Payload.Error.Code, CodeNotJSON)
	}

	// A valid message is recorded, nothing dead-lettered.
	if err := fn(ctx, pubsubEvent(t, []byte(finalizeJSON("SENT", "2026-11-21T12:00:01Z", "")), event.FinalizeAttributes("corr-1"))); err != nil {
		t.Fatal(err)
	}
	if len(pub.msgs) != 2 || f.doc(t, "corr-1")["status"] != "FINALIZED" {
		t.Fatalf("valid message: dead letters %d, doc %v", len(pub.msgs), f.doc(t, "corr-1"))
	}
}
