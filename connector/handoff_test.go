package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bitbrat/twitch-edge/functions/normalize"
	"github.com/bitbrat/twitch-edge/functions/trigger"
	"github.com/bitbrat/twitch-edge/shared/bus"
	"github.com/bitbrat/twitch-edge/shared/event"
	"github.com/bitbrat/twitch-edge/shared/fault"
	"github.com/bitbrat/twitch-edge/shared/store"
	"github.com/bitbrat/twitch-edge/shared/twitch/twitchtest"
)

// TestDeployHandOffLosesAndRepeatsNothing (#14 case 6): a deploy-style hand-off
// between two instances during a steady stream. The holder is told to stop while a
// standby waits; the standby subscribes on its own session before the holder lets
// go (make-before-break), and what both forwarded during the overlap reaches
// internal.ingress.v1 once through Normalize. Every event Twitch generated — also
// those no socket was subscribed for, which break-before-make lost — is counted on
// the ingress topic: 0 lost, 0 duplicated.
func TestDeployHandOffLosesAndRepeatsNothing(t *testing.T) {
	h := newHarness(t, twitchtest.Options{})
	ctx := context.Background()
	// The hand-off waits up to half the grace for the standby: generous for a loaded
	// machine; the standby normally answers within a second.
	long := func(c *Config) { c.ShutdownGrace = 20 * time.Second }
	a := h.start("a", long)
	h.waitReady(a, 20*time.Second)
	b := h.start("b", long)
	h.waitFor("b standing by", 20*time.Second, func() bool {
		_, why := b.app.Ready()
		return strings.Contains(why, "held by another instance") || strings.Contains(why, "another instance holds")
	})

	// A steady stream, 50 events a second, each with its own follower id.
	var (
		mu       sync.Mutex
		events   []string // follower ids, one per event Twitch generated
		overlaps int      // events Twitch sent to two sessions
	)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(20 * time.Millisecond)
		defer t.Stop()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			case <-t.C:
			}
			follower := fmt.Sprint(50_000 + i)
			ids, _ := h.tw.Notify(twitchtest.Notification{Type: "channel.follow",
				Condition: map[string]string{"broadcaster_user_id": aliceID},
				Event:     h.tw.FollowEvent(aliceID, follower, time.Now())})
			mu.Lock()
			events = append(events, follower)
			if len(ids) > 1 {
				overlaps++
			}
			mu.Unlock()
		}
	}()
	count := func() int { mu.Lock(); defer mu.Unlock(); return len(events) }
	h.waitFor("events before the hand-off", 20*time.Second, func() bool { return count() >= 50 })

	// The deploy: a is told to stop (SIGTERM); b takes over.
	t0 := time.Now()
	a.stop()
	t.Logf("a stopped after %s", time.Since(t0))
	h.waitReady(b, 30*time.Second)
	t.Logf("b ready after %s", time.Since(t0))
	before := count()
	h.waitFor("events after the hand-off", 20*time.Second, func() bool { return count() >= before+50 })
	close(stop)
	wg.Wait()

	// Normalize, as the push subscription would run it, over everything on the raw
	// topic, to internal.ingress.v1.
	const ingress = "internal.ingress.v1"
	if err := bus.EnsureTopics(ctx, h.ps, ingress); err != nil {
		t.Fatal(err)
	}
	if err := bus.EnsureSubscription(ctx, h.ps, bus.SubscriptionSpec{Name: "ingress-watch", Topic: ingress}); err != nil {
		t.Fatal(err)
	}
	pub := bus.NewPublisher(h.ps, nil)
	defer pub.Close()
	svc := &normalize.Service{
		Builder: &normalize.Builder{Normalizers: normalize.Registry()}, Pub: pub,
		Ledger:       store.NewClaims(h.fs, store.CollectionIdempotency, time.Hour, nil),
		IngressTopic: ingress, Owner: "normalize-test", Lease: time.Minute, Now: time.Now,
		Log: slog.New(slog.NewJSONHandler(io.Discard, nil)),
	}
	t.Logf("collecting after %s", time.Since(t0))
	raw := h.collect(len(events)+overlaps, 5*time.Second)
	marked := 0
	work := make(chan bus.Received)
	var nwg sync.WaitGroup
	for range 8 { // Pub/Sub pushes concurrently too
		nwg.Add(1)
		go func() {
			defer nwg.Done()
			for r := range work {
				// As Pub/Sub would: a transient error (the other copy's claim is held) is
				// delivered again.
				for attempt := 1; ; attempt++ {
					err := svc.Handle(ctx, trigger.Message{ID: r.ID, Data: r.Data, Attributes: r.Attributes})
					if err == nil {
						break
					}
					if fault.KindOf(err) != fault.Transient || attempt == 100 {
						t.Errorf("normalize: %v", err)
						break
					}
					time.Sleep(100 * time.Millisecond)
				}
			}
		}()
	}
	for _, r := range raw {
		if r.Attributes[event.AttrEventSubOverlap] != "" {
			marked++
		}
		work <- r
	}
	close(work)
	nwg.Wait()
	// One more than expected: a duplicate would show within the quiet time.
	got, err := bus.CollectFor(ctx, h.ps, "ingress-watch", len(events)+1, 20*time.Second, 3*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]int{}
	for _, m := range got {
		var e event.InternalEventV2
		if err := json.Unmarshal(m.Data, &e); err != nil {
			t.Fatal(err)
		}
		seen[e.UserID]++
	}
	lost, dup := 0, 0
	for _, f := range events {
		switch seen[f] {
		case 0:
			lost++
		case 1:
		default:
			dup++
		}
	}
	t.Logf("%d events, %d sent to both sessions; %d on the raw topic (%d marked as overlap); %d on %s: lost %d, duplicated %d",
		len(events), overlaps, len(raw), marked, len(got), ingress, lost, dup)
	if lost != 0 || dup != 0 || len(got) != len(events) {
		t.Fatalf("lost %d, duplicated %d of %d events (%d on the ingress topic)", lost, dup, len(events), len(got))
	}
	if overlaps == 0 {
		t.Errorf("no event was sent to both sessions: the hand-off did not overlap")
	}
}
