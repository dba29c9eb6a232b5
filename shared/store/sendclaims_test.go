package store

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/bitbrat/twitch-edge/infra/load/opcount"
	"github.com/bitbrat/twitch-edge/shared/emulators"
)

// ClaimSend's states, step by step on one key and one budget of 2 sends per minute.
func TestClaimsClaimSend(t *testing.T) {
	ctx := context.Background()
	clk := &clock{t: time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC)}
	fs := newFirestore(t)
	claims := NewClaims(fs, CollectionDeliveries, time.Hour, clk.Now)
	budgets := NewSendBudgets(fs)
	windows := []Window{{Span: time.Minute, Max: 2}}
	send := func(key, owner string) (Claim, time.Time, error) {
		slot := budgets.Slot(Budget{Key: "b/claimsend", Windows: windows}, clk.Now)
		return claims.ClaimSend(ctx, key, owner, time.Minute, &slot)
	}
	type want struct {
		state     ClaimState
		sending   bool
		attempts  int64
		full      bool // no room: retryAt set
		finalized string
	}
	steps := []struct {
		name string
		do   func() (Claim, time.Time, error)
		want want
	}{
		{"new key: acquired, one slot taken", func() (Claim, time.Time, error) { return send("s/1", "a1") }, want{state: Acquired, attempts: 1}},
		{"again inside the lease: held, no slot taken", func() (Claim, time.Time, error) { return send("s/1", "a2") }, want{state: Held, attempts: 1}},
		{"second key: the budget's last slot", func() (Claim, time.Time, error) { return send("s/2", "b1") }, want{state: Acquired, attempts: 1}},
		{"third key: no room, nothing claimed", func() (Claim, time.Time, error) { return send("s/3", "c1") }, want{full: true}},
		{"a claimed key while the budget is full: held, not told to wait", func() (Claim, time.Time, error) { return send("s/2", "b2") }, want{state: Held, attempts: 1}},
		{"in flight and its lease ran out: taken over, outcome unknown, no slot", func() (Claim, time.Time, error) {
			clk.Advance(2 * time.Minute)
			return send("s/1", "a3")
		}, want{state: Acquired, sending: true, attempts: 2}},
		{"finished: completed with what Finish recorded", func() (Claim, time.Time, error) {
			if err := claims.Finish(ctx, "s/1", "a3", "outcome", "FAILED"); err != nil {
				return Claim{}, time.Time{}, err
			}
			return send("s/1", "a4")
		}, want{state: Completed, attempts: 2, finalized: "FAILED"}},
		{"released (nothing sent): claimed afresh with a slot", func() (Claim, time.Time, error) {
			if err := claims.Release(ctx, "s/2", "b1"); err != nil {
				return Claim{}, time.Time{}, err
			}
			return send("s/2", "b3")
		}, want{state: Acquired, attempts: 1}},
		{"a claim of Acquire's, not in flight, lease run out: taken over to send", func() (Claim, time.Time, error) {
			if _, err := claims.Acquire(ctx, "s/4", "old", time.Minute); err != nil {
				return Claim{}, time.Time{}, err
			}
			clk.Advance(2 * time.Minute)
			return send("s/4", "d1")
		}, want{state: Acquired, attempts: 2}},
		{"without a slot: a plain claim, not in flight", func() (Claim, time.Time, error) {
			return claims.ClaimSend(ctx, "s/5", "e1", time.Minute, nil)
		}, want{state: Acquired, attempts: 1}},
		{"a claim without a slot whose lease ran out is not in flight: taken over to send", func() (Claim, time.Time, error) {
			clk.Advance(2 * time.Minute)
			return send("s/5", "e2")
		}, want{state: Acquired, attempts: 2}},
	}
	for _, s := range steps {
		got, retryAt, err := s.do()
		if err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		if s.want.full {
			if retryAt.IsZero() || got.State != 0 {
				t.Fatalf("%s: %+v, retry at %v; want no claim and a retry time", s.name, got, retryAt)
			}
			if _, ok, err := claims.Peek(ctx, "s/3"); err != nil || ok {
				t.Fatalf("%s: a claim was made (%v)", s.name, err)
			}
			continue
		}
		if !retryAt.IsZero() || got.State != s.want.state || got.Sending != s.want.sending || got.Attempts != s.want.attempts ||
			got.Finalized != s.want.finalized {
			t.Fatalf("%s: %+v (retry at %v), want %+v", s.name, got, retryAt, s.want)
		}
	}
	// Peek sees the in-flight mark of a new claim made with a slot.
	clk.Advance(2 * time.Minute)
	if _, _, err := send("s/6", "f1"); err != nil {
		t.Fatal(err)
	}
	if c, ok, err := claims.Peek(ctx, "s/6"); err != nil || !ok || c.State != Held || !c.Sending {
		t.Fatalf("peek: %+v %t %v; want held, in flight", c, ok, err)
	}
}

// Of concurrent ClaimSends on one key, one gets the claim, and the budget is charged
// once; a full budget charges nothing.
func TestClaimsClaimSendConcurrentOneWins(t *testing.T) {
	ctx := context.Background()
	clk := &clock{t: time.Date(2026, 12, 2, 11, 0, 0, 0, time.UTC)}
	fs := newFirestore(t)
	claims := NewClaims(fs, CollectionDeliveries, time.Hour, clk.Now)
	budgets := NewSendBudgets(fs)
	windows := []Window{{Span: time.Minute, Max: 3}}
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		acquired int
	)
	for i := range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			slot := budgets.Slot(Budget{Key: "b/concurrent", Windows: windows}, clk.Now)
			c, _, err := claims.ClaimSend(ctx, "s/one", fmt.Sprint("w", i), time.Minute, &slot)
			if err != nil {
				t.Errorf("claim %d: %v", i, err)
				return
			}
			if c.State == Acquired {
				mu.Lock()
				acquired++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if acquired != 1 {
		t.Fatalf("%d acquired, want 1", acquired)
	}
	// One slot was taken: two more keys fit, the third does not.
	for i, wantFull := range []bool{false, false, true} {
		slot := budgets.Slot(Budget{Key: "b/concurrent", Windows: windows}, clk.Now)
		_, retryAt, err := claims.ClaimSend(ctx, fmt.Sprint("s/other-", i), "x", time.Minute, &slot)
		if err != nil || retryAt.IsZero() != !wantFull {
			t.Fatalf("key %d: retry at %v, %v; want full=%t", i, retryAt, err, wantFull)
		}
	}
}

// A new send's claim and slot: one transaction, 2 document writes, 1 read (the
// budget; the claim is created, not read); its finish: 1 write.
func TestClaimSendFirestoreOps(t *testing.T) {
	px, err := opcount.Start(emulators.Host(emulators.Firestore))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(px.Close)
	ctx := context.Background()
	fs, err := NewClient(ctx, emulators.ProjectID(t), "", WithEmulator(px.Addr))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { fs.Close() })
	claims := NewClaims(fs, CollectionDeliveries, time.Hour, nil)
	slot := NewSendBudgets(fs).Slot(Budget{Key: "b/ops", Windows: []Window{{Span: time.Minute, Max: 10}}}, time.Now)
	before := px.Counts()
	if c, _, err := claims.ClaimSend(ctx, "s/ops", "w", time.Minute, &slot); err != nil || c.State != Acquired {
		t.Fatalf("claim: %+v %v", c, err)
	}
	if c := px.Counts().Sub(before); c.Writes != 2 || c.Reads != 1 || c.Transactions != 1 {
		t.Errorf("claim with a slot: %s; want 2 writes, 1 read, 1 transaction", c)
	}
	before = px.Counts()
	if err := claims.Finish(ctx, "s/ops", "w", "r", "SENT"); err != nil {
		t.Fatal(err)
	}
	if c := px.Counts().Sub(before); c.Writes != 1 || c.Reads != 0 {
		t.Errorf("finish: %s; want 1 write, 0 reads", c)
	}
}
