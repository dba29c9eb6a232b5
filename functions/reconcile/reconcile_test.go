package reconcile_test

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"cloud.google.com/go/firestore"
	"cloud.google.com/go/pubsub/v2"
	"github.com/google/uuid"

	"github.com/bitbrat/twitch-edge/connector/conduit"
	"github.com/bitbrat/twitch-edge/connector/eventsub"
	"github.com/bitbrat/twitch-edge/functions/normalize"
	"github.com/bitbrat/twitch-edge/functions/reconcile"
	"github.com/bitbrat/twitch-edge/functions/trigger"
	"github.com/bitbrat/twitch-edge/functions/webhook"
	"github.com/bitbrat/twitch-edge/shared/bus"
	"github.com/bitbrat/twitch-edge/shared/config"
	"github.com/bitbrat/twitch-edge/shared/emulators"
	"github.com/bitbrat/twitch-edge/shared/event"
	"github.com/bitbrat/twitch-edge/shared/logging/logtest"
	"github.com/bitbrat/twitch-edge/shared/store"
	"github.com/bitbrat/twitch-edge/shared/twitch"
	"github.com/bitbrat/twitch-edge/shared/twitch/twitchtest"
)

// patience bounds every wait; each wait ends on a condition.
const patience = 60 * time.Second

const (
	secret = "a-webhook-secret-of-some-length"
	bot    = "2002"
)

// serverless is serverless mode on loopback: the fake Twitch, the emulators, the
// EventSubWebhook function (its real Service) as the webhook shards' callback, and
// EventSubReconcile's Service — no connector.
type serverless struct {
	t       *testing.T
	fake    *twitchtest.Server
	ps      *pubsub.Client
	fs      *firestore.Client
	pub     *bus.Publisher
	hook    *httptest.Server
	helix   *twitch.Client
	svc     *reconcile.Service
	records *store.ConduitStore
	chans   *store.Channels
	logs    *logtest.Buffer
}

type asyncPub struct{ p *bus.Publisher }

func (a asyncPub) PublishAsync(ctx context.Context, topic string, data []byte, attrs map[string]string) webhook.Pending {
	return a.p.PublishAsync(ctx, topic, data, attrs)
}

const (
	subRaw     = "raw-check"
	subIngress = "ingress-check"
)

func newServerless(t *testing.T, channels []string, webhookShards int) *serverless {
	t.Helper()
	ctx := context.Background()
	project := emulators.ProjectID(t)
	s := &serverless{t: t, logs: &logtest.Buffer{}}
	var err error
	if s.fake, err = twitchtest.New(twitchtest.Options{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.fake.Close)
	for _, u := range []twitchtest.User{{ID: "1001", Login: "brat"}, {ID: "1002", Login: "brat2"}, {ID: "1003", Login: "latecomer"}, {ID: bot, Login: "bratbot"}} {
		s.fake.AddUser(u)
	}
	for _, b := range []string{"1001", "1002", "1003"} {
		s.fake.AddModerator(b, bot)
	}
	// The bot authorized the app for followers (a conduit subscription to
	// channel.follow is made with the app token on the moderator's authorization).
	s.fake.AddToken(twitchtest.Token{AccessToken: "user-1", RefreshToken: "refresh-1", UserID: bot, Scopes: []string{"moderator:read:followers"}})
	if s.ps, err = bus.NewClient(ctx, project, bus.WithEmulator(emulators.Host(emulators.PubSub))); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.ps.Close() })
	if s.fs, err = store.NewClient(ctx, project, "", store.WithEmulator(emulators.Host(emulators.Firestore))); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.fs.Close() })
	if err := bus.EnsureTopics(ctx, s.ps, event.TopicEventSubRaw, event.TopicIngress); err != nil {
		t.Fatal(err)
	}
	for sub, topic := range map[string]string{subRaw: event.TopicEventSubRaw, subIngress: event.TopicIngress} {
		if err := bus.EnsureSubscription(ctx, s.ps, bus.SubscriptionSpec{Name: sub, Topic: topic}); err != nil {
			t.Fatal(err)
		}
	}
	s.pub = bus.NewPublisher(s.ps, &bus.FunctionPublishSettings)
	t.Cleanup(s.pub.Close)
	log := slog.New(slog.NewJSONHandler(s.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("logs:\n%s", s.logs.String())
		}
	})
	s.records = store.NewConduitStore(s.fs, "twitch", nil)
	s.chans = store.NewChannels(s.fs, nil)
	hook := &webhook.Service{
		Secret: config.Secret(secret), Pub: asyncPub{s.pub}, Claims: store.NewWebhookMessages(s.fs, time.Hour, nil),
		Revocations: store.NewConnectorState(s.fs, "eventsub", "test", nil), ConduitRevocations: s.records,
		RawTopic: event.TopicEventSubRaw, IngressTopic: event.TopicIngress, StoreWait: patience, Owner: "hook", Now: time.Now,
		Log: log.With("function", "EventSubWebhook"),
	}
	s.hook = httptest.NewServer(hook)
	t.Cleanup(s.hook.Close)

	oauth := twitch.NewOAuth(twitch.OAuthOptions{BaseURL: s.fake.AuthBaseURL(), ClientID: s.fake.ClientID(), ClientSecret: s.fake.ClientSecret(), Logger: log})
	apps, err := twitch.NewAppTokenProvider(twitch.AppTokenProviderOptions{Store: store.NewAppTokenStore(s.fs), OAuth: oauth, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	helix := twitch.NewClient(twitch.Options{APIBaseURL: s.fake.APIBaseURL(), AuthBaseURL: s.fake.AuthBaseURL(), ClientID: s.fake.ClientID(),
		Tokens: apps, AppTokens: apps, Logger: log})
	s.helix = helix
	s.svc = &reconcile.Service{
		Helix: helix, Records: s.records, Channels: s.chans,
		Config: reconcile.Config{
			Webhook:  conduit.WebhookShards{IDs: conduit.WebhookShardIDs(0, webhookShards), Callback: s.hook.URL + "/EventSubWebhook", Secret: secret},
			Channels: channels,
			Types: []eventsub.TypeVersion{{Type: twitch.TypeChannelFollow, Version: twitch.VersionChannelFollow},
				{Type: twitch.TypeChannelUpdate, Version: twitch.VersionChannelUpdate}},
			ModeratorUserID: bot,
		},
		Pub: s.pub, IngressTopic: event.TopicIngress, Owner: "reconcile-test", Now: time.Now,
		Deadline: patience, Log: log.With("function", "EventSubReconcile"),
	}
	return s
}

func (s *serverless) tick() error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*patience)
	defer cancel()
	return s.svc.Handle(ctx, trigger.Message{ID: uuid.NewString(), PublishTime: time.Now()})
}

func (s *serverless) conduit() twitchtest.ConduitInfo {
	s.t.Helper()
	cs := s.fake.Conduits()
	if len(cs) != 1 {
		s.t.Fatalf("%d conduits, want 1: %+v", len(cs), cs)
	}
	return cs[0]
}

// subs are the enabled conduit subscriptions by key.
func (s *serverless) subs(conduitID string) []string {
	var out []string
	for _, x := range s.fake.Subscriptions() {
		if x.Transport.ConduitID == conduitID && x.Status == "enabled" {
			out = append(out, eventsub.Spec{Type: x.Type, Version: x.Version, Condition: x.Condition}.Key())
		}
	}
	slices.Sort(out)
	return out
}

func (s *serverless) waitFor(what string, cond func() bool) {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), patience)
	defer cancel()
	if err := s.fake.Wait(ctx, cond); err != nil {
		s.t.Fatalf("waiting for %s: %v", what, err)
	}
}

// collect pulls the messages of sub until a sentinel published behind everything
// the test did has arrived and at least want others have (the emulator need not
// deliver in publish order), or more than want have.
func (s *serverless) collect(topic, sub string, want int) []bus.Received {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), patience)
	defer cancel()
	out, err := bus.CollectUntilSentinel(ctx, s.pub, s.ps, topic, sub, want, patience)
	if err != nil {
		s.t.Fatal(err)
	}
	return out
}

func wantKeys(ids ...string) []string {
	var out []string
	for _, id := range ids {
		out = append(out,
			eventsub.Spec{Type: "channel.follow", Version: "2", Condition: map[string]string{"broadcaster_user_id": id, "moderator_user_id": bot}}.Key(),
			eventsub.Spec{Type: "channel.update", Version: "2", Condition: map[string]string{"broadcaster_user_id": id}}.Key())
	}
	slices.Sort(out)
	return out
}

// Serverless mode end to end, without a connector: a tick creates the conduit with
// its webhook shard (verified by the fake against the EventSubWebhook function) and
// the subscriptions; the fake's notifications go through the function to the raw
// topic and Normalize turns them into internal.ingress.v1 events; a channel added to
// the channels collection is subscribed on the next tick; a conduit Twitch deleted is
// recreated with its subscriptions; a shard Twitch disabled is re-associated.
func TestServerlessModeEndToEnd(t *testing.T) {
	s := newServerless(t, []string{"brat", "1002"}, 1)
	ctx := context.Background()

	if err := s.tick(); err != nil {
		t.Fatal(err)
	}
	cd := s.conduit()
	if len(cd.Shards) != 1 {
		t.Fatalf("conduit %+v, want one shard", cd)
	}
	s.waitFor("the webhook shard verified", func() bool {
		sh, _ := s.fake.Shards(cd.ID)
		return sh[0].Status == twitchtest.ShardEnabled && sh[0].Method == "webhook"
	})
	if got := s.subs(cd.ID); !slices.Equal(got, wantKeys("1001", "1002")) {
		t.Fatalf("subscriptions %v, want %v", got, wantKeys("1001", "1002"))
	}
	rec, ok, err := s.records.LoadConduit(ctx)
	if err != nil || !ok || rec.ID != cd.ID {
		t.Fatalf("conduit record %+v %v %v", rec, ok, err)
	}

	// Notifications flow: fake → webhook shard → EventSubWebhook → raw topic.
	const n = 20
	sent := map[string]bool{}
	for i := range n {
		ids, err := s.fake.Notify(twitchtest.Notification{Type: "channel.update", Condition: map[string]string{"broadcaster_user_id": []string{"1001", "1002"}[i%2]},
			Event: s.fake.UpdateEvent([]string{"1001", "1002"}[i%2], "title", "en", "1", "Cat", nil)})
		if err != nil || len(ids) != 1 {
			t.Fatalf("notify %d: %v %v", i, ids, err)
		}
		sent[ids[0]] = true
	}
	if lost := s.fake.LostNotifications(); len(lost) != 0 {
		t.Fatalf("lost %+v", lost)
	}
	raw := s.collect(event.TopicEventSubRaw, subRaw, n)
	if len(raw) != n {
		t.Fatalf("%d raw messages, want %d", len(raw), n)
	}
	// ... and Normalize (its real service, publishing to the emulator) makes them
	// internal.ingress.v1 events.
	norm := &normalize.Service{
		Builder: &normalize.Builder{Normalizers: normalize.Registry()}, Pub: s.pub,
		Ledger:       store.NewClaims(s.fs, store.CollectionIdempotency, time.Hour, nil),
		IngressTopic: event.TopicIngress, Owner: "normalize-test", Lease: time.Minute, Now: time.Now,
		Log: slog.New(slog.NewJSONHandler(s.logs, nil)),
	}
	for _, m := range raw {
		if !sent[m.Attributes[event.AttrEventSubMessageID]] {
			t.Fatalf("raw message %v was not sent", m.Attributes)
		}
		if err := norm.Handle(ctx, trigger.Message{ID: m.ID, Data: m.Data, Attributes: m.Attributes}); err != nil {
			t.Fatal(err)
		}
	}
	ingress := s.collect(event.TopicIngress, subIngress, n+1)
	events, statuses := 0, 0
	for _, m := range ingress {
		if m.Attributes[event.AttrType] == event.TypeConnectorStatusChanged {
			var st event.ConnectorStatus
			if err := json.Unmarshal(m.Data, &st); err != nil || st.Subject != "reconcile" || st.Details["conduitCreated"] != true {
				t.Fatalf("status event %s: %v", m.Data, err)
			}
			statuses++
			continue
		}
		var e map[string]any
		if err := json.Unmarshal(m.Data, &e); err != nil {
			t.Fatal(err)
		}
		events++
	}
	if events != n || statuses != 1 {
		t.Fatalf("ingress: %d events (want %d) and %d status events (want the first round's)", events, n, statuses)
	}

	// A quiet round changes nothing and publishes no status event.
	if err := s.tick(); err != nil {
		t.Fatal(err)
	}
	// A channel added at runtime is subscribed on the next tick.
	if err := s.chans.Add(ctx, store.Channel{BroadcasterID: "1003", Login: "latecomer"}); err != nil {
		t.Fatal(err)
	}
	if err := s.tick(); err != nil {
		t.Fatal(err)
	}
	if got := s.subs(cd.ID); !slices.Equal(got, wantKeys("1001", "1002", "1003")) {
		t.Fatalf("after adding 1003: %v", got)
	}
	// Twitch disabled the shard (its callback failed): the next tick re-associates it.
	if err := s.fake.DisableShard(cd.ID, "0", twitchtest.ShardNotificationFailures); err != nil {
		t.Fatal(err)
	}
	if err := s.tick(); err != nil {
		t.Fatal(err)
	}
	s.waitFor("the shard enabled again", func() bool {
		sh, _ := s.fake.Shards(cd.ID)
		return sh[0].Status == twitchtest.ShardEnabled
	})
	// Twitch deleted the conduit: the next tick creates a new one with the
	// subscriptions.
	if err := s.helix.DeleteConduit(ctx, cd.ID); err != nil {
		t.Fatal(err)
	}
	if err := s.tick(); err != nil {
		t.Fatal(err)
	}
	again := s.conduit()
	if again.ID == cd.ID {
		t.Fatal("the deleted conduit was not replaced")
	}
	if got := s.subs(again.ID); !slices.Equal(got, wantKeys("1001", "1002", "1003")) {
		t.Fatalf("subscriptions on the new conduit %v", got)
	}
	st := s.collect(event.TopicIngress, subIngress, 3)
	if len(st) != 3 {
		t.Fatalf("%d status events after the quiet round, the channel, the shard and the new conduit, want 3", len(st))
	}
}

// A tick published long ago (a backlog after an outage) is skipped, not run.
func TestStaleTickSkipped(t *testing.T) {
	s := newServerless(t, []string{"brat"}, 1)
	old := trigger.Message{ID: "old", PublishTime: time.Now().Add(-time.Hour)}
	if err := s.svc.Handle(context.Background(), old); err != nil {
		t.Fatal(err)
	}
	if n := len(s.fake.Conduits()); n != 0 {
		t.Fatalf("a stale tick created %d conduits", n)
	}
	if !strings.Contains(s.logs.String(), "stale tick skipped") {
		t.Error("the skip was not logged")
	}
}

// A conduit larger than the layout (a connector's, with WebSocket shards) keeps its
// shards: the round reports it and does not point any shard at the callback, but
// still reconciles the subscriptions.
func TestLargerConduitShardsLeftAlone(t *testing.T) {
	s := newServerless(t, []string{"brat"}, 1)
	ctx := context.Background()
	cd, err := s.helix.CreateConduit(ctx, 3)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.records.SaveConduit(ctx, store.ConduitRecord{ID: cd.ID, ShardCount: 3}); err != nil {
		t.Fatal(err)
	}
	err = s.tick()
	if err == nil || !strings.Contains(err.Error(), "webhook shards left alone") {
		t.Fatalf("tick: %v, want the layout error", err)
	}
	sh, _ := s.fake.Shards(cd.ID)
	for _, x := range sh {
		if x.Method == "webhook" {
			t.Fatalf("shard %s was pointed at the callback: %+v", x.ID, x)
		}
	}
	if got := s.subs(cd.ID); !slices.Equal(got, wantKeys("1001")) {
		t.Fatalf("subscriptions %v, want %v", got, wantKeys("1001"))
	}
	// The failed round is a status event with the reason.
	got := s.collect(event.TopicIngress, subIngress, 1)
	var st event.ConnectorStatus
	if len(got) != 1 || json.Unmarshal(got[0].Data, &st) != nil || st.CurrentState != event.StateError || !strings.Contains(st.Reason, "left alone") {
		t.Fatalf("status events %v", got)
	}
	if strings.Contains(s.logs.String(), secret) {
		t.Error("the webhook secret is in the logs")
	}
}

// An unknown login in TWITCH_CHANNELS fails the round with the login named, rather
// than serving fewer channels than configured.
func TestUnknownChannelLogin(t *testing.T) {
	s := newServerless(t, []string{"brat", "nobody-here"}, 1)
	err := s.tick()
	if err == nil || !strings.Contains(err.Error(), `"nobody-here"`) {
		t.Fatalf("tick: %v", err)
	}
}
