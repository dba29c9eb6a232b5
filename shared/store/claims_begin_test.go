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

func TestClaimsBegin(t *testing.T) {
	ctx := context.Background()
	clk := &clock{t: time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)}
	claims := NewClaims(newFirestore(t), CollectionIdempotency, time.Hour, clk.Now)
	steps := []struct {
		name     string
		do       func() (Claim, error)
		state    ClaimState
		attempts int64
	}{
		{"new key: acquired", func() (Claim, error) { return claims.Begin(ctx, "b/1", "w1", "raw-1", time.Minute) }, Acquired, 1},
		// The client library retries a create whose answer was lost; the retry finds
		// the claim its first try wrote. Before, that was Held: the attempt failed,
		// and its own claim then held every redelivery off for the lease.
		{"own create again (a retried commit): acquired", func() (Claim, error) { return claims.Begin(ctx, "b/1", "w1", "raw-1", time.Minute) }, Acquired, 1},
		{"same origin inside the lease: held", func() (Claim, error) { return claims.Begin(ctx, "b/1", "w2", "raw-1", time.Minute) }, Held, 1},
		{"other origin: taken", func() (Claim, error) { return claims.Begin(ctx, "b/1", "w3", "raw-2", time.Minute) }, Taken, 1},
		{"same origin after the lease: taken over", func() (Claim, error) {
			clk.Advance(2 * time.Minute)
			return claims.Begin(ctx, "b/1", "w4", "raw-1", time.Minute)
		}, Acquired, 2},
		{"the old worker cannot release it", func() (Claim, error) {
			if err := claims.Release(ctx, "b/1", "w1"); err != nil {
				return Claim{}, err
			}
			return claims.Begin(ctx, "b/1", "w5", "raw-1", time.Minute)
		}, Held, 2},
		{"released by its holder: acquired afresh", func() (Claim, error) {
			if err := claims.Release(ctx, "b/1", "w4"); err != nil {
				return Claim{}, err
			}
			return claims.Begin(ctx, "b/1", "w6", "raw-2", time.Minute)
		}, Acquired, 1},
		{"completed (Acquire's way): completed", func() (Claim, error) {
			if err := claims.Complete(ctx, "b/1", "w6", "m-1"); err != nil {
				return Claim{}, err
			}
			return claims.Begin(ctx, "b/1", "w7", "raw-1", time.Minute)
		}, Completed, 1},
		{"a claim without origin (Acquire's) counts as this origin", func() (Claim, error) {
			if _, err := claims.Acquire(ctx, "b/2", "old", time.Minute); err != nil {
				return Claim{}, err
			}
			return claims.Begin(ctx, "b/2", "w8", "raw-9", time.Minute)
		}, Held, 1},
		{"empty origin: lease rules", func() (Claim, error) {
			if _, err := claims.Begin(ctx, "b/3", "w9", "raw-1", time.Minute); err != nil {
				return Claim{}, err
			}
			return claims.Begin(ctx, "b/3", "w10", "", time.Minute)
		}, Held, 1},
	}
	for _, s := range steps {
		c, err := s.do()
		if err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		if c.State != s.state || c.Attempts != s.attempts {
			t.Fatalf("%s: got %v attempts %d, want %v attempts %d", s.name, c.State, c.Attempts, s.state, s.attempts)
		}
	}
}

// Concurrent deliveries, and concurrent take-overs after the lease: exactly one wins.
func TestClaimsBeginConcurrentOneWins(t *testing.T) {
	ctx := context.Background()
	clk := &clock{t: time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)}
	claims := NewClaims(newFirestore(t), CollectionIdempotency, time.Hour, clk.Now)
	race := func() map[ClaimState]int {
		var mu sync.Mutex
		got := map[ClaimState]int{}
		var wg sync.WaitGroup
		for i := range 8 {
			wg.Go(func() {
				c, err := claims.Begin(ctx, "race", fmt.Sprint("w", i), "raw-1", time.Minute)
				if err != nil {
					t.Errorf("begin: %v", err)
					return
				}
				mu.Lock()
				got[c.State]++
				mu.Unlock()
			})
		}
		wg.Wait()
		return got
	}
	if got := race(); got[Acquired] != 1 || got[Held] != 7 {
		t.Fatalf("first deliveries: %v, want one acquired", got)
	}
	clk.Advance(2 * time.Minute)
	if got := race(); got[Acquired] != 1 || got[Held] != 7 {
		t.Fatalf("take-overs: %v, want one acquired", got)
	}
}

// BenchmarkClaimOnce is Normalize's claim per event on the emulator, as it is (Begin:
// one create) and as it was (Acquire's transaction, then Complete), through a
// counting proxy: writes/op and reads/op are the Firestore bill, ns/op the round
// trips (the emulator's, on this machine).
func BenchmarkClaimOnce(b *testing.B) {
	px, err := opcount.Start(emulators.Host(emulators.Firestore))
	if err != nil {
		b.Fatal(err)
	}
	defer px.Close()
	claims := NewClaims(newFirestoreOn(b, px.Addr), CollectionIdempotency, time.Hour, nil)
	ctx := context.Background()
	ways := []struct {
		name string
		do   func(key string) error
	}{
		{"begin", func(key string) error {
			_, err := claims.Begin(ctx, key, "w", "raw", time.Minute)
			return err
		}},
		{"acquire+complete", func(key string) error {
			if _, err := claims.Acquire(ctx, key, "w", time.Minute); err != nil {
				return err
			}
			return claims.Complete(ctx, key, "w", "id")
		}},
	}
	for _, w := range ways {
		b.Run(w.name, func(b *testing.B) {
			before := px.Counts()
			for i := 0; b.Loop(); i++ {
				if err := w.do(fmt.Sprintf("bench-%s-%d-%d", w.name, time.Now().UnixNano(), i)); err != nil {
					b.Fatal(err)
				}
			}
			c := px.Counts().Sub(before)
			b.ReportMetric(float64(c.Writes)/float64(b.N), "writes/op")
			b.ReportMetric(float64(c.Reads)/float64(b.N), "reads/op")
		})
	}
}
