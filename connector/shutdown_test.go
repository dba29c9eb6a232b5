package main

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"runtime"
	"testing"
	"time"

	"github.com/bitbrat/twitch-edge/shared/emulators"
	"github.com/bitbrat/twitch-edge/shared/logging"
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
	// The waits bound a hang, not a speed: a loaded machine may take long to get here.
	h.waitReady(a, time.Minute)

	if err := e.Pause(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = e.Resume() }()
	// A new session while Firestore hangs queues its records (session, subscriptions).
	old := sessionID(h)
	if err := h.tw.CloseSession(old, 4000, "internal server error"); err != nil {
		t.Fatal(err)
	}
	h.waitFor("a new session", time.Minute, func() bool {
		ok, _ := a.app.Ready()
		cur := sessionID(h)
		return ok && cur != old && a.app.Status().SessionID == cur && len(h.tw.EnabledSubscriptions()) == 4
	})
	const n = 20
	sent := map[string]bool{}
	for i := range n {
		sent[h.follow(aliceID, fmt.Sprint(30_000+i))] = true
	}
	h.waitFor("notifications read", time.Minute, func() bool { return a.app.Metrics().Notifications.Value() == n })

	began := time.Now()
	a.stop()
	took := time.Since(began)
	// The old code took the state writer's 10 s per queued record (the session and
	// four subscriptions: 50 s) on top of the grace; the limit tells the two apart
	// with room for a loaded machine.
	if limit := grace + 30*time.Second; took > limit {
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

// TestProcessExitsWithPubSubFrozen: the whole process (Main), told to stop while
// the Pub/Sub emulator hangs, returns within its shutdown grace plus the bounded
// closes of its clients: what could not be published is in the spill, and the
// publisher's flush at exit no longer waits for the server (its publish timeout,
// a minute) — before, the process outlived the grace until it was killed.
func TestProcessExitsWithPubSubFrozen(t *testing.T) {
	e, err := emulators.Start(context.Background(), emulators.PubSub)
	if err != nil {
		t.Fatal(err)
	}
	defer e.Stop()
	h := newHarnessOn(t, twitchtest.Options{}, e.Host, "")
	h.seedToken()
	cfg := h.mainConfig("frozen-exit")
	cfg.ShutdownGrace = 2 * time.Second
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	log := logging.New(h.logs, slog.LevelDebug, "connector-main")
	go func() { done <- Main(ctx, cfg, log) }()
	base := "http://" + cfg.Addr
	h.waitFor("ready", 60*time.Second, func() bool {
		code, _ := get(base + "/readyz")
		return code == http.StatusOK
	})
	if err := e.Pause(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = e.Resume() }()
	for i := range 5 {
		h.follow(aliceID, fmt.Sprint(40_000+i))
	}
	began := time.Now()
	cancel()
	// A hang guard, not a timing margin: the old flush waited out the publish
	// timeout (60 s); the bound here is the grace, three 1 s closes and room.
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Main: %v", err)
		}
		t.Logf("exited %s after the stop (grace %s)", time.Since(began).Round(time.Millisecond), cfg.ShutdownGrace)
		// In production the process ends here; in a test the abandoned flush must end
		// before the leak check: let Pub/Sub answer it.
		if err := e.Resume(); err != nil {
			t.Fatal(err)
		}
		h.waitFor("the abandoned flush to end once Pub/Sub is back", 90*time.Second, func() bool {
			buf := make([]byte, 1<<20)
			return !bytes.Contains(buf[:runtime.Stack(buf, true)], []byte("connector.closeWithin"))
		})
	case <-time.After(cfg.ShutdownGrace + 3*closeTimeout + 20*time.Second):
		t.Fatalf("the process did not exit with Pub/Sub frozen:\n%s", tail(h.logs.String(), 3000))
	}
}
