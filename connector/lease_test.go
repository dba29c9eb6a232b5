package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/bitbrat/twitch-edge/shared/emulators"
	"github.com/bitbrat/twitch-edge/shared/twitch/twitchtest"
)

// TestLeaseFencingWithFirestoreFrozen: when Firestore hangs while this instance holds
// the session, the renewal call times out and the session is dropped (a standby could
// take the lease once it expires); the instance reports why it is not ready, and holds
// the session again once Firestore is back.
func TestLeaseFencingWithFirestoreFrozen(t *testing.T) {
	e, err := emulators.Start(context.Background(), emulators.Firestore)
	if err != nil {
		t.Fatal(err)
	}
	defer e.Stop()
	h := newHarnessOn(t, twitchtest.Options{}, "", e.Host)
	a := h.start("a")
	h.waitReady(a, 20*time.Second)

	if err := e.Pause(); err != nil {
		t.Fatal(err)
	}
	paused := true
	defer func() {
		if paused {
			_ = e.Resume()
		}
	}()
	h.waitFor("the session dropped for want of a renewal", 30*time.Second, func() bool {
		ok, _ := a.app.Ready()
		return !ok && len(h.tw.Sessions()) == 0
	})
	if !strings.Contains(h.logs.String(), "lease could not be renewed in time, dropping the session") {
		t.Fatalf("no fencing log line:\n%s", tail(h.logs.String(), 3000))
	}
	// The standby loop's lease checks are bounded too: /readyz says why.
	h.waitFor("readiness to name the failing lease check", 30*time.Second, func() bool {
		_, why := a.app.Ready()
		return strings.Contains(why, "lease check failed")
	})
	if err := e.Resume(); err != nil {
		t.Fatal(err)
	}
	paused = false
	h.waitReady(a, 60*time.Second)
}
