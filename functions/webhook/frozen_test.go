package webhook_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/bitbrat/twitch-edge/functions/webhook"
	"github.com/bitbrat/twitch-edge/shared/bus"
	"github.com/bitbrat/twitch-edge/shared/emulators"
	"github.com/bitbrat/twitch-edge/shared/event"
	"github.com/bitbrat/twitch-edge/shared/twitch/twitchtest"
)

// With Pub/Sub frozen (SIGSTOP), the function answers 503 after its bounded wait
// instead of holding Twitch past its limit; after SIGCONT, Twitch's retry of the same
// message is answered 2xx and the notification is on the raw topic exactly once
// (the retry waits for the first attempt's publish, which was still in flight,
// instead of publishing a second copy).
func TestPubSubFrozenAnswers503ThenDeliversOnceOnRetry(t *testing.T) {
	// This test owns its Pub/Sub emulator, so that it can freeze it.
	e, err := emulators.Start(context.Background(), emulators.PubSub)
	if err != nil {
		t.Fatal(err)
	}
	defer e.Stop()
	h := newHarness(t, e.Host)
	const wait = 2 * time.Second
	h.svc.PublishWait = wait
	// The fake waits as long as the function takes and retries plenty of times.
	f := fake(t, twitchtest.Options{WebhookRetries: 50, WebhookFailureLimit: 100, WebhookTimeout: patience})
	webhookConduit(t, f, h.srv.URL)

	// One notification first, so that the claim's first write in this project (slow
	// on a cold emulator) is not part of what is timed below.
	if _, err := f.Notify(twitchtest.Notification{Type: "channel.update", Event: f.UpdateEvent(broadcaster, "warm", "en", "1", "Cat", nil)}); err != nil {
		t.Fatal(err)
	}
	if got := h.collectUntilSentinel(1); len(got) != 1 {
		t.Fatalf("warm-up: %d messages", len(got))
	}
	before := len(h.answered()) // the verification and the warm-up
	// The check below reads a subscription no pull has used yet: the warm-up's
	// streaming pull on h.sub may still be open in the emulator when it is frozen (its
	// close not yet read), and on SIGCONT the emulator can hand the next message to
	// that dead stream, which holds it until the stream's ack deadline runs out (our
	// reading of one CI run, where the raw message was acknowledged to the publisher
	// yet did not arrive on h.sub within the minute's patience). A fresh subscription
	// has no stream to lose it to; it starts empty, so it sees only what follows.
	const afterSub = "raw-after-freeze"
	if err := bus.EnsureSubscription(context.Background(), h.ps, bus.SubscriptionSpec{Name: afterSub, Topic: h.topic}); err != nil {
		t.Fatal(err)
	}
	if err := e.Pause(); err != nil {
		t.Fatal(err)
	}
	resumed := false
	defer func() {
		if !resumed {
			_ = e.Resume()
		}
	}()
	id := uuid.NewString()
	start := time.Now()
	done := make(chan error, 1)
	go func() {
		_, err := f.Notify(twitchtest.Notification{Type: "channel.update", MessageID: id, Timestamp: time.Now(),
			Event: f.UpdateEvent(broadcaster, "frozen", "en", "1", "Cat", nil)})
		done <- err
	}()
	waitFor(t, f, "the first answer", func() bool { return len(h.answered()) > before })
	elapsed := time.Since(start)
	if got := h.answered()[before]; got != http.StatusServiceUnavailable {
		t.Fatalf("first attempt with Pub/Sub frozen answered %d, want 503", got)
	}
	// Bounded: not before the wait, and nowhere near the fake's patience.
	if elapsed < wait || elapsed > wait+20*time.Second {
		t.Fatalf("503 after %s, wait %s", elapsed, wait)
	}
	t.Logf("503 after %s (publish wait %s)", elapsed.Round(time.Millisecond), wait)
	if err := e.Resume(); err != nil {
		t.Fatal(err)
	}
	resumed = true
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(patience):
		t.Fatal("Notify did not return after Pub/Sub resumed")
	}
	d := f.ConduitDeliveries()
	if len(d) != 2 || d[1].MessageID != id || d[1].Lost || d[1].DeliveredTo != "0" {
		t.Fatalf("deliveries %+v", d)
	}
	st := h.answered()[before:]
	if st[len(st)-1] != http.StatusNoContent {
		t.Fatalf("answers %v: the last retry was not acknowledged", st)
	}
	got := h.collectOn(h.topic, afterSub, 1)
	if len(got) != 1 || got[0].Attributes[event.AttrEventSubMessageID] != id {
		t.Fatalf("%d messages on the raw topic after %d attempts (%v), want exactly 1\n%s", len(got), len(st), st, h.logs.String())
	}
	t.Logf("answers %v", st)
	if !strings.Contains(h.logs.String(), "Pub/Sub did not acknowledge in time") {
		t.Error("the timeout was not logged")
	}
}

// With Pub/Sub frozen, a revocation is recorded but its status event cannot be
// published: the function answers 503 after its bounded wait, so that Twitch sends
// the revocation again, rather than 2xx with the status event lost.
func TestRevocationStatusUnpublishedAnswers503(t *testing.T) {
	e, err := emulators.Start(context.Background(), emulators.PubSub)
	if err != nil {
		t.Fatal(err)
	}
	defer e.Stop()
	h := newHarness(t, e.Host)
	h.svc.PublishWait = time.Second
	if err := e.Pause(); err != nil {
		t.Fatal(err)
	}
	resumed := false
	defer func() {
		if !resumed {
			_ = e.Resume()
		}
	}()
	body := []byte(`{"subscription":{"id":"sub-9","status":"authorization_revoked","type":"channel.update","version":"2",
		"condition":{"broadcaster_user_id":"1001"},"transport":{"method":"conduit","conduit_id":"c-1"},"created_at":"2026-01-01T00:00:00Z","cost":0}}`)
	id := uuid.NewString()
	r := signed(h.srv.URL, secret, webhook.TypeRevocation, id, time.Now(), body)
	if code, hdr, _ := do(t, r); code != http.StatusServiceUnavailable || hdr.Get("Retry-After") == "" {
		t.Fatalf("revocation with Pub/Sub frozen answered %d (Retry-After %q), want 503", code, hdr.Get("Retry-After"))
	}
	if !strings.Contains(h.logs.String(), "cannot publish the revocation's status event") {
		t.Error("the failed status event was not logged")
	}
	if err := e.Resume(); err != nil {
		t.Fatal(err)
	}
	resumed = true
	// Twitch's retry of the same message is acknowledged once the event is out.
	r = signed(h.srv.URL, secret, webhook.TypeRevocation, id, time.Now(), body)
	if code, _, _ := do(t, r); code != http.StatusNoContent {
		t.Fatalf("the retry after Pub/Sub resumed answered %d", code)
	}
	// The first attempt's publish may have gone out after the resume too: a status
	// event may repeat, never be missing.
	if got := h.collectOn(event.TopicIngress, h.ingressSub, 1); len(got) < 1 || len(got) > 2 {
		t.Fatalf("%d status events after the retry, want 1 or 2", len(got))
	}
}
