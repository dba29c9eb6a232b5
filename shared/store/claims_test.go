package store

import (
	"context"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"cloud.google.com/go/firestore"

	"github.com/bitbrat/twitch-edge/shared/emulators"
)

func newFirestore(t *testing.T) *firestore.Client {
	t.Helper()
	return newFirestoreOn(t, emulators.Host(emulators.Firestore))
}

// newFirestoreOn is newFirestore on the Firestore emulator at host.
func newFirestoreOn(t testing.TB, host string) *firestore.Client {
	t.Helper()
	c, err := NewClient(context.Background(), emulators.ProjectID(t), "", WithEmulator(host))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// clock is a settable test clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time          { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Advance(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

func TestClaimsConcurrentAcquireOneWins(t *testing.T) {
	ctx := context.Background()
	claims := NewClaims(newFirestore(t), CollectionIdempotency, time.Hour, nil)
	const workers = 8
	var acquired, held, completed atomic.Int32
	var wg sync.WaitGroup
	for i := 0; i < workers; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			c, err := claims.Acquire(ctx, "msg-1", "worker-"+string(rune('a'+i)), time.Minute)
			if err != nil {
				t.Errorf("acquire: %v", err)
				return
			}
			switch c.State {
			case Acquired:
				acquired.Add(1)
			case Held:
				held.Add(1)
			case Completed:
				completed.Add(1)
			}
		}(i)
	}
	wg.Wait()
	if acquired.Load() != 1 || held.Load() != workers-1 {
		t.Fatalf("acquired=%d held=%d completed=%d, want exactly one acquired", acquired.Load(), held.Load(), completed.Load())
	}
}

func TestClaimsLifecycle(t *testing.T) {
	ctx := context.Background()
	clk := &clock{t: time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)}
	fs := newFirestore(t)
	claims := NewClaims(fs, CollectionDeliveries, 7*24*time.Hour, clk.Now)

	steps := []struct {
		name    string
		do      func() (Claim, error)
		state   ClaimState
		attempt int64
	}{
		{"first acquire", func() (Claim, error) { return claims.Acquire(ctx, "k/1", "a", time.Minute) }, Acquired, 1},
		{"other worker inside lease", func() (Claim, error) { return claims.Acquire(ctx, "k/1", "b", time.Minute) }, Held, 1},
		{"same worker again", func() (Claim, error) { return claims.Acquire(ctx, "k/1", "a", time.Minute) }, Acquired, 2},
		{"take-over after lease", func() (Claim, error) {
			clk.Advance(2 * time.Minute)
			return claims.Acquire(ctx, "k/1", "b", time.Minute)
		}, Acquired, 3},
		{"old owner cannot release", func() (Claim, error) {
			if err := claims.Release(ctx, "k/1", "a"); err != nil {
				return Claim{}, err
			}
			return claims.Acquire(ctx, "k/1", "c", time.Minute)
		}, Held, 3},
		{"complete then redelivery sees result", func() (Claim, error) {
			if err := claims.Complete(ctx, "k/1", "b", `{"id":"m-9"}`); err != nil {
				return Claim{}, err
			}
			return claims.Acquire(ctx, "k/1", "c", time.Minute)
		}, Completed, 3},
	}
	for _, s := range steps {
		c, err := s.do()
		if err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		if c.State != s.state || c.Attempts != s.attempt {
			t.Fatalf("%s: got %v attempt %d, want %v attempt %d", s.name, c.State, c.Attempts, s.state, s.attempt)
		}
	}
	c, ok, err := claims.Peek(ctx, "k/1")
	if err != nil || !ok || c.Result != `{"id":"m-9"}` {
		t.Fatalf("get = %+v %v %v", c, ok, err)
	}
	// The TTL field is set for Firestore's TTL policy (the emulator does not apply it).
	snap, err := fs.Collection(CollectionDeliveries).Doc(DocID("k/1")).Get(ctx)
	if err != nil {
		t.Fatal(err)
	}
	exp, ok := snap.Data()[FieldExpireAt].(time.Time)
	if !ok || !exp.Equal(clk.Now().Add(7*24*time.Hour)) {
		t.Errorf("expireAt = %v, want %v", snap.Data()[FieldExpireAt], clk.Now().Add(7*24*time.Hour))
	}
}

func TestClaimsReleaseLetsRetryAcquire(t *testing.T) {
	ctx := context.Background()
	claims := NewClaims(newFirestore(t), CollectionIdempotency, time.Hour, nil)
	if c, err := claims.Acquire(ctx, "m", "a", time.Hour); err != nil || c.State != Acquired {
		t.Fatalf("acquire: %+v %v", c, err)
	}
	if err := claims.Release(ctx, "m", "a"); err != nil {
		t.Fatal(err)
	}
	if c, err := claims.Acquire(ctx, "m", "b", time.Hour); err != nil || c.State != Acquired || c.Attempts != 1 {
		t.Fatalf("after release: %+v %v", c, err)
	}
}

func TestDocID(t *testing.T) {
	cases := map[string]bool{ // key → kept as is
		"befa7b53-d79d-478f-86b9-120f112b044e": true,
		"a/b":                                  false,
		"..":                                   false,
		"__x__":                                false,
		strings.Repeat("x", 600):               false,
	}
	for k, keep := range cases {
		got := DocID(k)
		if (got == k) != keep || strings.Contains(got, "/") {
			t.Errorf("DocID(%.20q) = %.20q", k, got)
		}
	}
}
