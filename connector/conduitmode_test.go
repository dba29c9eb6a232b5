package main

import (
	"context"
	"crypto/hmac"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"cloud.google.com/go/pubsub/v2"

	"github.com/bitbrat/twitch-edge/connector/conduit"
	"github.com/bitbrat/twitch-edge/shared/bus"
	"github.com/bitbrat/twitch-edge/shared/config"
	"github.com/bitbrat/twitch-edge/shared/event"
	"github.com/bitbrat/twitch-edge/shared/store"
	"github.com/bitbrat/twitch-edge/shared/twitch"
	"github.com/bitbrat/twitch-edge/shared/twitch/twitchtest"
)

// appHelix is Helix with an app token the fake issues (client credentials), kept
// in the test's Firestore as the connector keeps it.
func (h *harness) appHelix(cfg Config, log *slog.Logger) ConduitHelix {
	h.t.Helper()
	oauth := twitch.NewOAuth(twitch.OAuthOptions{BaseURL: h.tw.AuthBaseURL(), ClientID: h.tw.ClientID(), ClientSecret: h.tw.ClientSecret(), Logger: log})
	apps, err := twitch.NewAppTokenProvider(twitch.AppTokenProviderOptions{Store: store.NewAppTokenStore(h.fs), OAuth: oauth, Holder: cfg.InstanceID, Logger: log})
	if err != nil {
		h.t.Fatal(err)
	}
	return twitch.NewClient(twitch.Options{APIBaseURL: h.tw.APIBaseURL(), AuthBaseURL: h.tw.AuthBaseURL(), ClientID: h.tw.ClientID(),
		AppTokens: apps, Logger: log})
}

const ingressTopic = "internal.ingress.v1"

func conduitConfig(shards int) func(*Config) {
	return func(c *Config) {
		c.Transport, c.ConduitShards = TransportConduit, shards
		c.Topics.Ingress = ingressTopic
		c.ShardCheck, c.ReconcileEvery = 500*time.Millisecond, time.Second
		// Room for the standby to claim the released shard (a round every TTL/3)
		// before the handover window closes, on a loaded machine.
		c.ShutdownGrace = 10 * time.Second
		c.Twitch.EventSubWSURL = strings.TrimSuffix(c.Twitch.EventSubWSURL, "?keepalive_timeout_seconds=10")
	}
}

// statusWatch collects the status events on the ingress topic.
type statusWatch struct {
	mu  sync.Mutex
	evs []event.ConnectorStatus
}

func (w *statusWatch) find(match func(event.ConnectorStatus) bool) bool { return w.count(match) > 0 }

func (w *statusWatch) count(match func(event.ConnectorStatus) bool) int {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := 0
	for _, e := range w.evs {
		if match(e) {
			n++
		}
	}
	return n
}

func watchStatus(t *testing.T, h *harness) *statusWatch {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	if err := bus.EnsureTopics(ctx, h.ps, ingressTopic); err != nil {
		t.Fatal(err)
	}
	if err := bus.EnsureSubscription(ctx, h.ps, bus.SubscriptionSpec{Name: "ingress-watch", Topic: ingressTopic}); err != nil {
		t.Fatal(err)
	}
	w := &statusWatch{}
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = h.ps.Subscriber("ingress-watch").Receive(ctx, func(_ context.Context, m *pubsub.Message) {
			m.Ack()
			if m.Attributes[event.AttrType] != event.TypeConnectorStatusChanged {
				return
			}
			var e event.ConnectorStatus
			if json.Unmarshal(m.Data, &e) == nil {
				w.mu.Lock()
				w.evs = append(w.evs, e)
				w.mu.Unlock()
			}
		})
	}()
	t.Cleanup(func() { cancel(); <-done })
	return w
}

func heldBy(a *runningApp) []string { return a.app.conduit.heldIDs() }

// Conduit mode end to end in one process per instance: two instances share a
// conduit of two shards (one each), notifications reach the raw topic once; a third
// instance stands by (ready: every shard held); the first stops (SIGTERM) while a
// stream runs and hands its shard to the standby without losing anything; a shard
// Twitch disables is re-associated by its holder; each change is a status event on
// internal.ingress.v1; a channel added to and removed from the Firestore channels
// collection is subscribed and unsubscribed.
func TestConduitModeSharesShardsAndHandsOver(t *testing.T) {
	h := newHarness(t, twitchtest.Options{})
	status := watchStatus(t, h)
	a := h.start("a", conduitConfig(2))
	b := h.start("b", conduitConfig(2))
	h.waitReady(a, 60*time.Second)
	h.waitReady(b, 60*time.Second)
	h.waitFor("one shard each", 60*time.Second, func() bool { return len(heldBy(a)) == 1 && len(heldBy(b)) == 1 })
	cid := a.app.conduit.currentConduit()
	h.waitFor("the conduit's subscriptions", 60*time.Second, func() bool {
		n := 0
		for _, s := range h.tw.EnabledSubscriptions() {
			if s.Transport.Method == "conduit" && s.Transport.ConduitID == cid {
				n++
			}
		}
		return n == 5 // 2 channels × 2 types + conduit.shard.disabled
	})

	want := map[string]bool{}
	send := func(n, from int) {
		for i := range n {
			broadcaster := aliceID
			if i%2 == 1 {
				broadcaster = bobID
			}
			want[h.follow(broadcaster, fmt.Sprint(from+i))] = true
		}
	}
	send(100, 10_000)

	c := h.start("c", conduitConfig(2))
	h.waitReady(c, 60*time.Second)
	if ok, why := c.app.Ready(); !ok || !strings.Contains(why, "standby") {
		t.Fatalf("third instance: ready=%v %q, want a ready standby", ok, why)
	}

	// SIGTERM of a during a stream: its shard goes to c, nothing is lost.
	aShard := heldBy(a)[0]
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); a.stop() }()
	send(200, 20_000)
	wg.Wait()
	h.waitFor("the standby holding the released shard", 60*time.Second, func() bool {
		ids := heldBy(c)
		return len(ids) == 1 && ids[0] == aShard
	})
	send(100, 30_000)
	got := countByID(h.collect(len(want), 5*time.Second))
	lost, dup := 0, 0
	for id := range want {
		switch got[id] {
		case 0:
			lost++
		case 1:
		default:
			dup++
		}
	}
	if lost > 0 || dup > 0 || len(h.tw.LostNotifications()) > 0 {
		t.Fatalf("%d sent: %d lost, %d twice on the raw topic; the fake dropped %d", len(want), lost, dup, len(h.tw.LostNotifications()))
	}

	// Twitch disables b's shard: conduit.shard.disabled, then b PATCHes it again.
	bShard := heldBy(b)[0]
	if err := h.tw.DisableShard(cid, bShard, ""); err != nil {
		t.Fatal(err)
	}
	h.waitFor("b's shard re-associated", 60*time.Second, func() bool {
		shards, err := h.tw.Shards(cid)
		if err != nil {
			return false
		}
		for _, s := range shards {
			if s.ID == bShard {
				return s.Status == twitchtest.ShardEnabled
			}
		}
		return false
	})
	// A channel added to the Firestore collection at runtime is subscribed, and
	// subscribed no more once removed, each within a reconcile round.
	h.tw.AddUser(twitchtest.User{ID: "103", Login: "carol"})
	h.tw.AddModerator("103", botID)
	chs := store.NewChannels(h.fs, nil)
	carol := func() int {
		n := 0
		for _, s := range h.tw.EnabledSubscriptions() {
			if s.Transport.ConduitID == cid && s.Condition["broadcaster_user_id"] == "103" {
				n++
			}
		}
		return n
	}
	if err := chs.Add(context.Background(), store.Channel{BroadcasterID: "103", Login: "carol"}); err != nil {
		t.Fatal(err)
	}
	h.waitFor("carol's two subscriptions", 60*time.Second, func() bool { return carol() == 2 })
	if err := chs.Remove(context.Background(), "103"); err != nil {
		t.Fatal(err)
	}
	h.waitFor("carol's subscriptions gone", 60*time.Second, func() bool { return carol() == 0 })

	h.waitFor("status events: joined, shard up, shard disabled, reconcile, left", 60*time.Second, func() bool {
		return status.find(func(e event.ConnectorStatus) bool { return e.Subject == "instance" && e.Reason == "instance joined" }) &&
			status.find(func(e event.ConnectorStatus) bool {
				return e.Subject == "shard" && e.CurrentState == event.StateConnected && e.Connector == "twitch"
			}) &&
			status.find(func(e event.ConnectorStatus) bool {
				return e.Subject == "shard" && e.Shard == bShard && e.CurrentState == event.StateDisconnected
			}) &&
			status.find(func(e event.ConnectorStatus) bool { return e.Subject == "reconcile" && e.Details["created"] != nil }) &&
			status.find(func(e event.ConnectorStatus) bool { return e.Subject == "instance" && e.Reason == "instance left" })
	})
}

// Conduit mode's settings: the transport is one of two words, and conduit mode
// needs the client secret.
func TestReadConfigTransport(t *testing.T) {
	for _, c := range []struct {
		env     map[string]string
		wantErr string
	}{
		{map[string]string{}, ""},
		{map[string]string{"EVENTSUB_TRANSPORT": "conduit", "TWITCH_CLIENT_SECRET": "s", "CONDUIT_SHARDS": "3"}, ""},
		{map[string]string{"EVENTSUB_TRANSPORT": "webhook"}, "EVENTSUB_TRANSPORT"},
		{map[string]string{"EVENTSUB_TRANSPORT": "conduit"}, "TWITCH_CLIENT_SECRET"},
		{map[string]string{"EVENTSUB_TRANSPORT": "conduit", "TWITCH_CLIENT_SECRET": "s", "CONDUIT_SHARDS": "0"}, "CONDUIT_SHARDS"},
		{map[string]string{"CONDUIT_WEBHOOK_SHARDS": "1"}, "CONDUIT_WEBHOOK_SHARDS"},
	} {
		t.Run(fmt.Sprint(c.env), func(t *testing.T) {
			env := map[string]string{"GOOGLE_CLOUD_PROJECT": "p", "TWITCH_CLIENT_ID": "c", "TWITCH_CHANNELS": "alice"}
			for k, v := range c.env {
				env[k] = v
			}
			cfg, err := ReadConfig(config.Map(env))
			switch {
			case c.wantErr == "" && err != nil:
				t.Fatalf("unexpected error: %v", err)
			case c.wantErr != "" && (err == nil || !strings.Contains(err.Error(), c.wantErr)):
				t.Fatalf("error %v, want one naming %s", err, c.wantErr)
			case c.wantErr == "" && c.env["CONDUIT_SHARDS"] == "3" && (cfg.Transport != TransportConduit || cfg.ConduitShards != 3):
				t.Fatalf("config %+v", cfg)
			}
		})
	}
}

// webhookCallback is a loopback stand-in for the EventSubWebhook function: it
// answers Twitch's callback verification as Twitch documents it (signature checked,
// challenge echoed) and counts the notifications it is sent.
type webhookCallback struct {
	srv           *httptest.Server
	notifications atomic.Int32
}

func newWebhookCallback(t *testing.T, secret string) *webhookCallback {
	t.Helper()
	c := &webhookCallback{}
	c.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
		h := r.Header
		want := twitchtest.WebhookSignature(secret, h.Get(twitchtest.HeaderMessageID), h.Get(twitchtest.HeaderMessageTimestamp), body)
		if !hmac.Equal([]byte(want), []byte(h.Get(twitchtest.HeaderMessageSignature))) {
			http.Error(w, "bad signature", http.StatusForbidden)
			return
		}
		if h.Get(twitchtest.HeaderMessageType) != "webhook_callback_verification" {
			c.notifications.Add(1)
			w.WriteHeader(http.StatusNoContent)
			return
		}
		var v struct {
			Challenge string `json:"challenge"`
		}
		_ = json.Unmarshal(body, &v)
		w.Header().Set("Content-Type", "text/plain")
		_, _ = io.WriteString(w, v.Challenge)
	}))
	t.Cleanup(c.srv.Close)
	return c
}

// With CONDUIT_WEBHOOK_SHARDS, the conduit gets a webhook shard after the WebSocket
// one; the reconciler's lease holder associates it with the callback, and does so
// again after Twitch disabled it (notification failures), with a status event.
func TestConduitModeKeepsTheWebhookShard(t *testing.T) {
	h := newHarness(t, twitchtest.Options{})
	status := watchStatus(t, h)
	const secret = "a-webhook-secret-of-some-length"
	cb := newWebhookCallback(t, secret)
	a := h.start("a", conduitConfig(1), func(c *Config) {
		c.ConduitWebhookShards, c.WebhookCallback, c.WebhookSecret = 1, cb.srv.URL+"/EventSubWebhook", config.Secret(secret)
	})
	h.waitReady(a, 60*time.Second)
	cid := a.app.conduit.currentConduit()
	webhookShard := func() twitchtest.ShardInfo {
		shards, _ := h.tw.Shards(cid)
		for _, s := range shards {
			if s.ID == "1" {
				return s
			}
		}
		return twitchtest.ShardInfo{}
	}
	enabledWebhook := func() bool {
		s := webhookShard()
		return s.Method == "webhook" && s.Status == twitchtest.ShardEnabled && s.Callback == cb.srv.URL+"/EventSubWebhook"
	}
	h.waitFor("the webhook shard enabled on the callback", 60*time.Second, enabledWebhook)
	if err := h.tw.DisableShard(cid, "1", "notification_failures_exceeded"); err != nil {
		t.Fatal(err)
	}
	h.waitFor("the webhook shard re-associated", 60*time.Second, enabledWebhook)
	h.waitFor("status events for the association and the re-association", 60*time.Second, func() bool {
		return status.count(func(e event.ConnectorStatus) bool {
			return e.Subject == "shard" && e.Shard == "1" && e.CurrentState == event.StateConnected
		}) >= 2
	})
}

// A conduit Twitch deleted (every shard down for 72 h, or by hand) is created anew by
// the reconciler's lease holder; every instance moves its shard onto it, the
// subscriptions are created again, and notifications flow.
func TestConduitModeRecreatesADeletedConduit(t *testing.T) {
	h := newHarness(t, twitchtest.Options{})
	a := h.start("a", conduitConfig(2))
	b := h.start("b", conduitConfig(2))
	h.waitReady(a, 60*time.Second)
	h.waitReady(b, 60*time.Second)
	old := a.app.conduit.currentConduit()
	if err := a.app.conduit.api.(*twitch.Client).DeleteConduit(context.Background(), old); err != nil {
		t.Fatal(err)
	}
	var cid string
	h.waitFor("both instances on a new conduit", 90*time.Second, func() bool {
		cid = a.app.conduit.currentConduit()
		return cid != old && b.app.conduit.currentConduit() == cid
	})
	h.waitFor("the new conduit's shards enabled and its subscriptions created", 90*time.Second, func() bool {
		shards, err := h.tw.Shards(cid)
		if err != nil {
			return false
		}
		for _, s := range shards {
			if s.Status != twitchtest.ShardEnabled {
				return false
			}
		}
		n := 0
		for _, s := range h.tw.EnabledSubscriptions() {
			if s.Transport.ConduitID == cid {
				n++
			}
		}
		return len(shards) == 2 && n == 5
	})
	h.waitReady(a, 60*time.Second)
	h.waitReady(b, 60*time.Second)
	id := h.follow(aliceID, "4242")
	if got := countByID(h.collect(1, 5*time.Second)); got[id] != 1 {
		t.Fatalf("notification after the recreation on the raw topic %d times", got[id])
	}
}

// A holder whose shard lease is lost (here: taken by another owner that never
// PATCHes, as when Firestore stalls and every renewal is overdue) stops PATCHing the
// shard but reads its socket until Twitch shows the shard on another session:
// notifications sent meanwhile still reach the raw topic. Before, the holder closed
// its socket at once, the shard was disabled, and Twitch dropped them (a conduit of
// one shard has no other to retry on; with three, every instance's overdue renewal
// closed every shard together).
func TestConduitModeLeaseLossKeepsReading(t *testing.T) {
	h := newHarness(t, twitchtest.Options{})
	a := h.start("a", conduitConfig(1))
	h.waitReady(a, 60*time.Second)
	h.waitFor("shard 0 held", 60*time.Second, func() bool { return len(heldBy(a)) == 1 })
	cid := a.app.conduit.currentConduit()
	h.waitFor("the conduit's subscriptions", 60*time.Second, func() bool {
		n := 0
		for _, s := range h.tw.EnabledSubscriptions() {
			if s.Transport.ConduitID == cid {
				n++
			}
		}
		return n == 5
	})
	// Another owner takes the lease and never serves the shard.
	ctx := context.Background()
	ref := h.fs.Collection("conduits").Doc(conduitName).Collection("leases").Doc(store.DocID(conduit.ShardLeaseName("0")))
	if _, err := ref.Set(ctx, store.Lease{Owner: "thief", Generation: 1_000, Until: time.Now().Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	h.waitFor("the lease loss noticed", 60*time.Second, func() bool { return len(heldBy(a)) == 0 })
	want := map[string]bool{}
	for i := range 50 {
		want[h.follow(aliceID, fmt.Sprint(40_000+i))] = true
	}
	got := countByID(h.collect(len(want), 5*time.Second))
	lost := 0
	for id := range want {
		if got[id] == 0 {
			lost++
		}
	}
	if lost > 0 || len(h.tw.LostNotifications()) > 0 {
		t.Fatalf("after the lease loss, %d of %d not on the raw topic; the fake dropped %d", lost, len(want), len(h.tw.LostNotifications()))
	}
}
