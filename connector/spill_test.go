package main

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/bitbrat/twitch-edge/shared/emulators"
	"github.com/bitbrat/twitch-edge/shared/twitch/twitchtest"
)

// startPubSub starts a Pub/Sub emulator this test owns, so that it can freeze it.
func startPubSub(t *testing.T) *emulators.Emulator {
	t.Helper()
	e, err := emulators.Start(context.Background(), emulators.PubSub)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.Resume(); e.Stop() })
	return e
}

func (h *harness) followMany(n, from int) map[string]bool {
	h.t.Helper()
	sent := map[string]bool{}
	for i := range n {
		sent[h.follow(aliceID, fmt.Sprint(from+i))] = true
	}
	return sent
}

// expectEachOnce checks every sent notification reached the raw topic; repeats are
// an error unless allowRepeats (a publish whose answer was lost at shutdown is both
// published and spilled: Normalize's message-id dedupe absorbs the repeat).
func (h *harness) expectEachOnce(sent map[string]bool, allowRepeats bool) {
	h.t.Helper()
	// With repeats allowed, room for every one to come twice: a cap of a few more
	// than sent ends the collection before the last ids when the repeats come first.
	limit := len(sent) + 10
	if allowRepeats {
		limit = 2*len(sent) + 10
	}
	got := h.collect(limit, 10*time.Second)
	counts := countByID(got)
	lost, dup := 0, 0
	for id := range sent {
		switch counts[id] {
		case 0:
			lost++
		case 1:
		default:
			dup++
		}
	}
	if lost != 0 || (dup != 0 && !allowRepeats) {
		h.t.Fatalf("sent %d, received %d: lost %d, duplicated %d", len(sent), len(got), lost, dup)
	}
}

// TestPubSubFrozenLongerThanTheBufferLosesNothing: with Pub/Sub frozen and far more
// notifications than the in-memory budget holds, the socket is still read (the same
// session lives on), the overflow is spilled to Firestore, /readyz shows the backlog,
// and when Pub/Sub is back everything is published once, in the end with no backlog.
// Before, Forward blocked, the socket went unread and Twitch closed it (4002).
func TestPubSubFrozenLongerThanTheBufferLosesNothing(t *testing.T) {
	e := startPubSub(t)
	h := newHarnessOn(t, twitchtest.Options{}, e.Host, "")
	a := h.start("a", func(c *Config) { c.BufferBytes = 16 << 10 })
	h.waitReady(a, 20*time.Second)
	session := sessionID(h)

	if err := e.Pause(); err != nil {
		t.Fatal(err)
	}
	const n = 300
	sent := h.followMany(n, 40_000)
	h.waitFor("every notification read from the socket while Pub/Sub is frozen", 30*time.Second, func() bool {
		return a.app.Metrics().Notifications.Value() == n
	})
	h.waitFor("the overflow spilled to Firestore", 30*time.Second, func() bool {
		return a.app.Relay().Backlog().Spilled > 0
	})
	if _, why := a.app.Ready(); !strings.Contains(why, "spilled") {
		t.Errorf("/readyz does not report the backlog: %q", why)
	}
	if sessionID(h) != session || len(h.tw.Sessions()) != 1 {
		t.Errorf("the session did not survive the outage")
	}
	if err := e.Resume(); err != nil {
		t.Fatal(err)
	}
	h.expectEachOnce(sent, false)
	h.waitFor("the backlog drained", 30*time.Second, func() bool {
		b := a.app.Relay().Backlog()
		return b.Frames == 0 && b.SpillPending == 0 && b.Spilled == 0
	})
}

// TestSIGTERMWithPubSubFrozenSpillsForTheNextInstance: what the relay holds when
// SIGTERM comes with Pub/Sub down is spilled within the shutdown grace, and the next
// instance replays it. Before, all of it was lost ("flush deadline passed").
func TestSIGTERMWithPubSubFrozenSpillsForTheNextInstance(t *testing.T) {
	e := startPubSub(t)
	h := newHarnessOn(t, twitchtest.Options{}, e.Host, "")
	a := h.start("a", func(c *Config) { c.ShutdownGrace = 3 * time.Second })
	h.waitReady(a, 20*time.Second)
	if err := e.Pause(); err != nil {
		t.Fatal(err)
	}
	const n = 50
	sent := h.followMany(n, 50_000)
	h.waitFor("notifications read", 20*time.Second, func() bool { return a.app.Metrics().Notifications.Value() == n })
	a.cancel() // SIGTERM
	<-a.done
	logs := h.logs.String()
	if strings.Contains(logs, "neither published nor spilled") || strings.Contains(logs, "notifications unpublished") ||
		!strings.Contains(logs, "spilled for the next instance") {
		t.Fatalf("shutdown did not spill what it could not publish:\n%s", tail(logs, 3000))
	}
	if err := e.Resume(); err != nil {
		t.Fatal(err)
	}
	b := h.start("b")
	h.waitReady(b, 20*time.Second)
	h.expectEachOnce(sent, true)
}
