package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bitbrat/twitch-edge/shared/emulators"
	"github.com/bitbrat/twitch-edge/shared/twitch/twitchtest"
)

func TestWelcomeSubscribesAndForwardsByteIdentical(t *testing.T) {
	h := newHarness(t, twitchtest.Options{})
	a := h.start("a")
	start := time.Now()
	h.waitReady(a, 10*time.Second)

	subs := h.tw.EnabledSubscriptions()
	want := map[string]bool{"channel.follow/101": false, "channel.update/101": false, "channel.follow/102": false, "channel.update/102": false}
	for _, s := range subs {
		key := s.Type + "/" + s.Condition["broadcaster_user_id"]
		if _, ok := want[key]; !ok {
			t.Errorf("unexpected subscription %s", key)
		}
		want[key] = true
		if s.Type == "channel.follow" && (s.Version != "2" || s.Condition["moderator_user_id"] != botID) {
			t.Errorf("channel.follow must be v2 moderated by the bot: %+v", s)
		}
		if s.Type == "channel.update" && s.Version != "2" {
			t.Errorf("channel.update must be v2: %+v", s)
		}
		if at, err := time.Parse(time.RFC3339Nano, s.CreatedAt); err != nil || at.Sub(h.tw.Sessions()[0].ConnectedAt) > 10*time.Second {
			t.Errorf("subscription created at %s, session connected at %s", s.CreatedAt, h.tw.Sessions()[0].ConnectedAt)
		}
	}
	for k, ok := range want {
		if !ok {
			t.Errorf("missing subscription %s", k)
		}
	}
	t.Logf("ready %s after start", time.Since(start).Round(time.Millisecond))

	// A frame sent by Twitch reaches the raw topic byte for byte.
	frame := fmt.Sprintf(`{"metadata":{"message_id":"raw-1","message_type":"notification","message_timestamp":%q,`+
		`"subscription_type":"channel.follow","subscription_version":"2"},"payload":{"subscription":{"id":"x","type":"channel.follow",`+
		`"version":"2","status":"enabled","cost":0,"condition":{"broadcaster_user_id":"101","moderator_user_id":"900"},`+
		`"transport":{"method":"websocket","session_id":%q},"created_at":"2024-01-01T00:00:00Z"},`+
		`"event":{"user_id":"5","user_login":"e","user_name":"E","broadcaster_user_id":"101","broadcaster_user_login":"alice",`+
		`"broadcaster_user_name":"Alice","followed_at":"2024-01-01T00:00:00.123456789Z"}}}`,
		time.Now().UTC().Format(time.RFC3339Nano), sessionID(h))
	if err := h.tw.SendRaw(sessionID(h), []byte(frame)); err != nil {
		t.Fatal(err)
	}
	got := h.collect(1, 5*time.Second)
	if len(got) != 1 || string(got[0].Data) != frame {
		t.Fatalf("raw topic got %d messages; first differs from the frame sent", len(got))
	}
	attrs := got[0].Attributes
	if attrs["eventsub_message_id"] != "raw-1" || attrs["eventsub_subscription_type"] != "channel.follow" ||
		attrs["eventsub_subscription_version"] != "2" || attrs["broadcaster_user_id"] != "101" || attrs["eventsub_message_timestamp"] == "" {
		t.Errorf("attributes = %v", attrs)
	}
}

func TestReconnectDuringStreamLosesAndRepeatsNothing(t *testing.T) {
	h := newHarness(t, twitchtest.Options{})
	a := h.start("a")
	h.waitReady(a, 10*time.Second)
	first := sessionID(h)

	const n = 1000
	var (
		mu  sync.Mutex
		ids = map[string]bool{}
	)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; i < n; i++ {
			if i == n/2 {
				if _, err := h.tw.Reconnect(first); err != nil {
					t.Errorf("reconnect: %v", err)
				}
			}
			broadcaster := aliceID
			if i%2 == 1 {
				broadcaster = bobID
			}
			got, err := h.tw.Notify(twitchtest.Notification{Type: "channel.follow",
				Condition: map[string]string{"broadcaster_user_id": broadcaster},
				Event:     h.tw.FollowEvent(broadcaster, fmt.Sprint(10_000+i), time.Now())})
			if err != nil {
				t.Errorf("notify %d: %v", i, err)
				return
			}
			mu.Lock()
			for _, id := range got {
				ids[id] = true
			}
			mu.Unlock()
		}
	}()
	wg.Wait()
	got := h.collect(n+10, 5*time.Second)
	counts := countByID(got)
	lost, dup := 0, 0
	for id := range ids {
		switch counts[id] {
		case 0:
			lost++
		case 1:
		default:
			dup++
		}
	}
	if lost != 0 || dup != 0 || len(got) != n {
		t.Fatalf("sent %d, received %d: lost %d, duplicated %d", n, len(got), lost, dup)
	}
	if a.app.Metrics().Handovers.Value() != 1 {
		t.Errorf("handovers = %d, want 1", a.app.Metrics().Handovers.Value())
	}
	// The subscriptions moved with the session: no resubscription (Twitch would 409).
	if creates := len(h.tw.RequestsTo("POST", "/helix/eventsub/subscriptions")); creates != 4 {
		t.Errorf("created %d subscriptions, want the 4 of the first session only", creates)
	}
	h.waitFor("old socket closed", 5*time.Second, func() bool { return len(h.tw.Sessions()) == 1 })
}

func TestKeepaliveSilenceReconnectsAndResubscribes(t *testing.T) {
	h := newHarness(t, twitchtest.Options{})
	a := h.start("a")
	h.waitReady(a, 10*time.Second)
	first := sessionID(h)
	silencedAt := time.Now()
	if err := h.tw.Silence(first); err != nil {
		t.Fatal(err)
	}
	// keepalive_timeout_seconds is 10: a new session with every subscription within 10 + 2 s.
	h.waitFor("a new ready session", 14*time.Second, func() bool {
		ok, _ := a.app.Ready()
		return ok && a.app.Status().SessionID != first
	})
	took := time.Since(silencedAt)
	if took > 12*time.Second {
		t.Errorf("recovered %s after silence, want within keepalive + 2 s", took)
	}
	if a.app.Metrics().Reconnects("keepalive") != 1 {
		t.Errorf("keepalive reconnects = %d", a.app.Metrics().Reconnects("keepalive"))
	}
	h.follow(aliceID, "77")
	if got := h.collect(1, 5*time.Second); len(got) != 1 {
		t.Fatalf("after recovery got %d notifications", len(got))
	}
}

func TestCloseAndDropRedialAndResubscribe(t *testing.T) {
	for _, c := range []struct {
		name   string
		reason string
		kill   func(h *harness, id string) error
	}{
		{"close 4000", "4000_server_error", func(h *harness, id string) error { return h.tw.CloseSession(id, 4000, "internal server error") }},
		{"abrupt drop", "dropped", func(h *harness, id string) error { return h.tw.Drop(id) }},
	} {
		t.Run(c.name, func(t *testing.T) {
			h := newHarness(t, twitchtest.Options{})
			a := h.start("a")
			h.waitReady(a, 10*time.Second)
			first := sessionID(h)
			if err := c.kill(h, first); err != nil {
				t.Fatal(err)
			}
			h.waitFor("a new ready session", 10*time.Second, func() bool {
				ok, _ := a.app.Ready()
				return ok && a.app.Status().SessionID != first
			})
			if got := a.app.Metrics().Reconnects(c.reason); got != 1 {
				t.Errorf("reconnects{%s} = %d", c.reason, got)
			}
			if n := len(h.tw.EnabledSubscriptions()); n != 4 {
				t.Errorf("enabled subscriptions = %d, want 4 (old session's cleaned up)", n)
			}
			h.follow(bobID, "78")
			if got := h.collect(1, 5*time.Second); len(got) != 1 {
				t.Fatalf("after redial got %d notifications", len(got))
			}
		})
	}
}

func TestDuplicatesAndStaleAreNotForwarded(t *testing.T) {
	h := newHarness(t, twitchtest.Options{})
	a := h.start("a")
	h.waitReady(a, 10*time.Second)
	id := h.follow(aliceID, "1")
	if err := h.tw.Redeliver(id); err != nil { // same bytes, same message_id
		t.Fatal(err)
	}
	// Same message_id, different bytes (Twitch has done this).
	if _, err := h.tw.Notify(twitchtest.Notification{Type: "channel.follow", MessageID: id,
		Condition: map[string]string{"broadcaster_user_id": bobID}, Event: h.tw.FollowEvent(bobID, "2", time.Now())}); err != nil {
		t.Fatal(err)
	}
	// Older than ten minutes.
	if _, err := h.tw.Notify(twitchtest.Notification{Type: "channel.follow", Timestamp: time.Now().Add(-11 * time.Minute),
		Condition: map[string]string{"broadcaster_user_id": aliceID}, Event: h.tw.FollowEvent(aliceID, "3", time.Now())}); err != nil {
		t.Fatal(err)
	}
	got := h.collect(5, 3*time.Second)
	if len(got) != 1 || got[0].Attributes["eventsub_message_id"] != id {
		t.Fatalf("forwarded %d notifications, want only the first", len(got))
	}
	m := a.app.Metrics()
	if m.Duplicates.Value() != 2 || m.Stale.Value() != 1 {
		t.Errorf("duplicates=%d stale=%d", m.Duplicates.Value(), m.Stale.Value())
	}

	// A restarted connector has no memory of what was forwarded (no Firestore ledger:
	// it cost a write per notification and a start-up read per recent one). It forwards
	// a redelivery once more, and Normalize's claim on the message id drops it.
	a.stop()
	b := h.start("b")
	h.waitReady(b, 10*time.Second)
	if _, err := h.tw.Notify(twitchtest.Notification{Type: "channel.follow", MessageID: id,
		Condition: map[string]string{"broadcaster_user_id": aliceID}, Event: h.tw.FollowEvent(aliceID, "1", time.Now())}); err != nil {
		t.Fatal(err)
	}
	if got := h.collect(1, 3*time.Second); len(got) != 1 || got[0].Attributes["eventsub_message_id"] != id {
		t.Fatalf("after a restart forwarded %d notifications, want the redelivery once", len(got))
	}
}

func TestRevocationIsRecordedAndNotResubscribed(t *testing.T) {
	h := newHarness(t, twitchtest.Options{})
	a := h.start("a")
	h.waitReady(a, 10*time.Second)
	var followAlice string
	for _, s := range h.tw.EnabledSubscriptions() {
		if s.Type == "channel.follow" && s.Condition["broadcaster_user_id"] == aliceID {
			followAlice = s.ID
		}
	}
	if err := h.tw.Revoke(followAlice, "authorization_revoked"); err != nil {
		t.Fatal(err)
	}
	h.waitFor("revocation recorded in Firestore", 5*time.Second, func() bool {
		subs, err := a.app.state.Subscriptions(context.Background())
		if err != nil {
			return false
		}
		for _, s := range subs {
			if s.ID == followAlice && s.Status == "authorization_revoked" {
				return true
			}
		}
		return false
	})
	// A new session (after a drop) must not recreate the revoked subscription.
	first := sessionID(h)
	if err := h.tw.Drop(first); err != nil {
		t.Fatal(err)
	}
	h.waitFor("new session", 10*time.Second, func() bool {
		ok, _ := a.app.Ready()
		return ok && a.app.Status().SessionID != first
	})
	time.Sleep(500 * time.Millisecond)
	for _, s := range h.tw.EnabledSubscriptions() {
		if s.Type == "channel.follow" && s.Condition["broadcaster_user_id"] == aliceID {
			t.Fatalf("revoked subscription was recreated")
		}
	}
	if n := len(h.tw.EnabledSubscriptions()); n != 3 {
		t.Errorf("enabled = %d, want 3", n)
	}
	if !strings.Contains(h.logs.String(), `"severity":"WARNING","message":"eventsub: subscription revoked"`) {
		t.Errorf("revocation not logged at warning level")
	}
	// The new session's "subscriptions created" line counts what serves: 3 live, the
	// revoked one apart.
	second := a.app.Status().SessionID
	var created map[string]any
	h.waitFor("the new session's subscriptions-created line", 10*time.Second, func() bool {
		for _, l := range strings.Split(h.logs.String(), "\n") {
			var m map[string]any
			if json.Unmarshal([]byte(l), &m) == nil && m["message"] == "eventsub: subscriptions created" && m["sessionId"] == second {
				created = m
				return true
			}
		}
		return false
	})
	if created["count"] != 3.0 || created["notLive"] != 1.0 {
		t.Errorf("subscriptions created: count %v, notLive %v; want 3 live and 1 not", created["count"], created["notLive"])
	}
}

func TestSubscribeConflictAndLimitAreHandled(t *testing.T) {
	h := newHarness(t, twitchtest.Options{})
	// First create answers 409, second 429 (transports limit): both handled.
	h.tw.Script("POST", "/helix/eventsub/subscriptions",
		twitchtest.Response{Status: 409, Body: `{"error":"Conflict","status":409,"message":"subscription already exists"}`},
		twitchtest.Response{Status: 429, Body: `{"error":"Too Many Requests","status":429,"message":"number of websocket transports limit exceeded"}`},
	)
	a := h.start("a")
	h.waitReady(a, 10*time.Second)
	logs := h.logs.String()
	if !strings.Contains(logs, "subscription already exists") || !strings.Contains(logs, "cleaning up orphaned subscriptions") {
		t.Errorf("409/429 not reported clearly:\n%s", tail(logs, 3000))
	}
}

func TestTwoInstancesOnlyOneHoldsTheSession(t *testing.T) {
	h := newHarness(t, twitchtest.Options{})
	a := h.start("a")
	h.waitReady(a, 10*time.Second)
	b := h.start("b")
	time.Sleep(2 * time.Second)
	if ok, why := b.app.Ready(); ok || !strings.Contains(why, "standby") {
		t.Fatalf("second instance: ready=%v %q", ok, why)
	}
	if n := len(h.tw.Sessions()); n != 1 {
		t.Fatalf("%d sessions open, want 1", n)
	}
	// The holder stops (a deploy): the standby takes over.
	a.stop()
	h.waitReady(b, 10*time.Second)
	h.follow(aliceID, "9")
	if got := h.collect(1, 5*time.Second); len(got) != 1 {
		t.Fatalf("after take-over got %d", len(got))
	}
}

func TestHealthEndpoints(t *testing.T) {
	h := newHarness(t, twitchtest.Options{})
	a := h.start("a")
	srv := httptest.NewServer(a.app.Handler())
	defer srv.Close()
	h.waitReady(a, 10*time.Second)
	for path, want := range map[string]int{"/healthz": 200, "/readyz": 200, "/metrics": 200} {
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("%s = %d", path, resp.StatusCode)
		}
	}
	resp, err := http.Get(srv.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	for _, want := range []string{"eventsub_connected 1", "relay_buffer_depth", "connector_ready 1",
		`eventsub_subscriptions{status="enabled"} 4`, "# TYPE eventsub_notifications_total counter"} {
		if !strings.Contains(string(body), want) {
			t.Errorf("metrics lack %q:\n%s", want, body)
		}
	}
}

func TestPubSubOutageLosesNothing(t *testing.T) {
	// This test owns its Pub/Sub emulator, so that it can take it away.
	e, err := emulators.Start(context.Background(), emulators.PubSub)
	if err != nil {
		t.Fatal(err)
	}
	defer e.Stop()
	h := newHarnessOn(t, twitchtest.Options{}, e.Host, "")
	a := h.start("a")
	h.waitReady(a, 10*time.Second)

	if err := e.Pause(); err != nil {
		t.Fatal(err)
	}
	const n = 200
	sent := map[string]bool{}
	for i := 0; i < n; i++ {
		sent[h.follow(aliceID, fmt.Sprint(20_000+i))] = true
	}
	// Pub/Sub is unreachable: the relay holds the notifications and keeps retrying.
	h.waitFor("notifications buffered", 5*time.Second, func() bool {
		return a.app.Metrics().Notifications.Value() == n
	})
	time.Sleep(2 * time.Second)
	if err := e.Resume(); err != nil {
		t.Fatal(err)
	}
	got := h.collect(n+5, 10*time.Second)
	counts := countByID(got)
	for id := range sent {
		if counts[id] != 1 {
			t.Fatalf("message %s delivered %d times after the outage (%d of %d received)", id, counts[id], len(got), n)
		}
	}
}
