package main

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/bitbrat/twitch-edge/shared/emulators"
	"github.com/bitbrat/twitch-edge/shared/twitch/twitchtest"
)

// TestShutdownWithFirestoreFrozenMeetsTheDeadline: state records queued behind a
// hanging Firestore are abandoned at shutdown, so the process stops within its one
// shutdown grace (Cloud Run kills at 10 s) and the relay's notifications are
// published first. Before, each queued record could hold shutdown up to 10 s.
func TestShutdownWithFirestoreFrozenMeetsTheDeadline(t *testing.T) {
	e, err := emulators.Start(context.Background(), emulators.Firestore)
	if err != nil {
		t.Fatal(err)
	}
	defer e.Stop()
	h := newHarnessOn(t, twitchtest.Options{}, "", e.Host)
	const grace = 3 * time.Second
	a := h.start("a", func(c *Config) { c.ShutdownGrace = grace; c.LeaseTTL = time.Minute })
	h.waitReady(a, 20*time.Second)

	if err := e.Pause(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = e.Resume() }()
	// A new session while Firestore hangs queues its records (session, subscriptions).
	old := sessionID(h)
	if err := h.tw.CloseSession(old, 4000, "internal server error"); err != nil {
		t.Fatal(err)
	}
	h.waitFor("a new session", 20*time.Second, func() bool {
		ok, _ := a.app.Ready()
		cur := sessionID(h)
		return ok && cur != old && a.app.Status().SessionID == cur && len(h.tw.EnabledSubscriptions()) == 4
	})
	const n = 20
	sent := map[string]bool{}
	for i := range n {
		sent[h.follow(aliceID, fmt.Sprint(30_000+i))] = true
	}
	h.waitFor("notifications read", 10*time.Second, func() bool { return a.app.Metrics().Notifications.Value() == n })

	began := time.Now()
	a.stop()
	took := time.Since(began)
	// The limit is the grace plus room for a loaded machine; the old code took the
	// state writer's 10 s per queued record on top.
	if limit := grace + 5*time.Second; took > limit {
		t.Fatalf("shutdown took %s with Firestore frozen; the grace is %s", took, grace)
	}
	t.Logf("shutdown took %s (grace %s)", took.Round(time.Millisecond), grace)
	counts := countByID(h.collect(n, 5*time.Second))
	for id := range sent {
		if counts[id] != 1 {
			t.Fatalf("notification %s published %d times, want 1", id, counts[id])
		}
	}
}
