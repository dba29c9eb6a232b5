package store

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"
)

func TestWebhookMessages(t *testing.T) {
	ctx := context.Background()
	clk := &clock{t: time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)}
	w := NewWebhookMessages(newFirestore(t), time.Hour, clk.Now)
	state := func(id, owner string) ClaimState {
		t.Helper()
		c, err := w.Claim(ctx, id, owner, 30*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		return c.State
	}
	// First sight: acquired with one write; a second request meanwhile is held off.
	if s := state("m1", "a"); s != Acquired {
		t.Fatalf("first claim %s", s)
	}
	if s := state("m1", "b"); s != Held {
		t.Fatalf("second claim while held %s", s)
	}
	// Completed: every later claim says so, with the result.
	if err := w.Complete(ctx, "m1", "a", "pubsub-1"); err != nil {
		t.Fatal(err)
	}
	c, err := w.Claim(ctx, "m1", "c", time.Second)
	if err != nil || c.State != Completed || c.Result != "pubsub-1" {
		t.Fatalf("claim after complete %+v %v", c, err)
	}
	// Released: the next request acquires at once; a stranger cannot release.
	if s := state("m2", "a"); s != Acquired {
		t.Fatal(s)
	}
	if err := w.Release(ctx, "m2", "someone-else"); err != nil {
		t.Fatal(err)
	}
	if s := state("m2", "b"); s != Held {
		t.Fatalf("claim after a stranger's release %s", s)
	}
	if err := w.Release(ctx, "m2", "a"); err != nil {
		t.Fatal(err)
	}
	if s := state("m2", "b"); s != Acquired {
		t.Fatalf("claim after release %s", s)
	}
	// A holder that died: after its lease the claim is taken over.
	clk.Advance(31 * time.Second)
	if s := state("m2", "c"); s != Acquired {
		t.Fatalf("take-over after the lease %s", s)
	}
	// A completed claim is never released.
	if err := w.Release(ctx, "m1", "a"); err != nil {
		t.Fatal(err)
	}
	if s := state("m1", "d"); s != Completed {
		t.Fatalf("completed claim released: %s", s)
	}
	snap, err := w.doc("m1").Get(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if exp, _ := snap.Data()[FieldExpireAt].(time.Time); !exp.Equal(clk.Now().Add(-31 * time.Second).Add(time.Hour)) {
		t.Errorf("expireAt %v", snap.Data()[FieldExpireAt])
	}
}

// Concurrent first deliveries and concurrent take-overs: exactly one acquires.
func TestWebhookMessagesOneWinner(t *testing.T) {
	ctx := context.Background()
	clk := &clock{t: time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)}
	w := NewWebhookMessages(newFirestore(t), time.Hour, clk.Now)
	race := func(id string) int {
		var wg sync.WaitGroup
		var mu sync.Mutex
		won := 0
		for i := 0; i < 8; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				c, err := w.Claim(ctx, id, fmt.Sprint("owner-", i), 30*time.Second)
				if err != nil {
					t.Error(err)
					return
				}
				if c.State == Acquired {
					mu.Lock()
					won++
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
		return won
	}
	if n := race("m1"); n != 1 {
		t.Fatalf("%d first claims acquired", n)
	}
	clk.Advance(time.Minute)
	if n := race("m1"); n != 1 {
		t.Fatalf("%d take-overs acquired", n)
	}
}
