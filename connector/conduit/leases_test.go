package conduit

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/bitbrat/twitch-edge/shared/emulators"
	"github.com/bitbrat/twitch-edge/shared/store"
)

// instance is one connector instance's lease manager with what it was told.
type instance struct {
	m      *ShardLeases
	mu     sync.Mutex
	gained []string
	lost   []string
}

func (in *instance) events() (gained, lost []string) {
	in.mu.Lock()
	defer in.mu.Unlock()
	return slices.Clone(in.gained), slices.Clone(in.lost)
}

func newInstances(t *testing.T, clk *clock, shards int, owners ...string) []*instance {
	t.Helper()
	fs, err := store.NewClient(context.Background(), emulators.ProjectID(t), "", store.WithEmulator(emulators.Host(emulators.Firestore)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { fs.Close() })
	var out []*instance
	for _, o := range owners {
		in := &instance{}
		in.m = NewShardLeases(ShardLeasesOptions{
			Store: store.NewConduitStore(fs, "twitch", clk.Now), Owner: o, TTL: 15 * time.Second,
			Shards: func() int { return shards }, Now: clk.Now, Logger: testLogger(t),
			OnGain: func(id string, _ store.Lease) { in.mu.Lock(); in.gained = append(in.gained, id); in.mu.Unlock() },
			OnLose: func(id, _ string) { in.mu.Lock(); in.lost = append(in.lost, id); in.mu.Unlock() },
		})
		out = append(out, in)
	}
	return out
}

func round(t *testing.T, ins ...*instance) {
	t.Helper()
	for _, in := range ins {
		if err := in.m.Round(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
}

// Three instances, two shards: each shard held by exactly one instance, at most one
// per instance (the layout rule), the third on standby; when one stops renewing, the
// standby takes its shard once the lease TTL has passed, not before; the stopped one,
// coming back, is fenced out.
func TestShardLeasesClaimAndTakeOver(t *testing.T) {
	clk := &clock{t: time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)}
	ins := newInstances(t, clk, 2, "a", "b", "c")
	a, b, c := ins[0], ins[1], ins[2]
	round(t, a, b, c)
	if !slices.Equal(a.m.Held(), []string{"0"}) || !slices.Equal(b.m.Held(), []string{"1"}) || len(c.m.Held()) != 0 {
		t.Fatalf("held a=%v b=%v c=%v, want 0, 1, none", a.m.Held(), b.m.Held(), c.m.Held())
	}
	// b stops renewing (frozen or dead); a and c go on every TTL/3.
	for range 2 {
		clk.Advance(5 * time.Second)
		round(t, a, c)
		if len(c.m.Held()) != 0 {
			t.Fatalf("c took a shard %v while b's lease (TTL 15 s) was still valid", c.m.Held())
		}
	}
	clk.Advance(5*time.Second + time.Millisecond) // b's lease is now older than its TTL
	round(t, a, c)
	if !slices.Equal(c.m.Held(), []string{"1"}) || !slices.Equal(a.m.Held(), []string{"0"}) {
		t.Fatalf("after b's TTL: a=%v c=%v, want 0 and 1", a.m.Held(), c.m.Held())
	}
	// b comes back: its renewal names an old generation and is refused.
	round(t, b)
	if len(b.m.Held()) != 0 {
		t.Fatalf("b still holds %v after c took over", b.m.Held())
	}
	if _, lost := b.events(); !slices.Equal(lost, []string{"1"}) {
		t.Fatalf("b was told it lost %v, want [1]", lost)
	}
	if err := b.m.Fence(context.Background(), "1"); !errors.Is(err, store.ErrLeaseLost) {
		t.Fatalf("b's fence on shard 1: %v, want ErrLeaseLost", err)
	}
	if err := c.m.Fence(context.Background(), "1"); err != nil {
		t.Fatalf("c's fence on shard 1: %v", err)
	}
	// A released lease (SIGTERM) is taken at once, without waiting for the TTL.
	a.m.ReleaseAll(context.Background())
	round(t, b)
	if !slices.Equal(b.m.Held(), []string{"0"}) {
		t.Fatalf("b holds %v after a released, want [0]", b.m.Held())
	}
}

// A holder that cannot confirm its lease for ⅔ TTL drops it itself, before anyone
// else may take it at TTL; a failure younger than that is retried.
func TestShardLeasesDropWhenRenewalOverdue(t *testing.T) {
	clk := &clock{t: time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)}
	a := newInstances(t, clk, 1, "a")[0]
	round(t, a)
	dead, cancel := context.WithCancel(context.Background())
	cancel() // every renewal now fails, as with Firestore unreachable
	clk.Advance(5 * time.Second)
	_ = a.m.Round(dead)
	if !slices.Equal(a.m.Held(), []string{"0"}) {
		t.Fatalf("a failure at TTL/3 must be retried, not drop the lease: held %v", a.m.Held())
	}
	clk.Advance(5 * time.Second) // 10 s since the last confirmation: ⅔ of 15 s
	_ = a.m.Round(dead)
	if len(a.m.Held()) != 0 {
		t.Fatalf("lease kept %v after ⅔ TTL without a confirmed renewal", a.m.Held())
	}
	if _, lost := a.events(); !slices.Equal(lost, []string{"0"}) {
		t.Fatalf("lost %v, want [0]", lost)
	}
}
