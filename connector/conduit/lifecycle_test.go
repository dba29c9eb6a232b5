package conduit

import (
	"context"
	"sync"
	"testing"

	"github.com/bitbrat/twitch-edge/shared/store"
	"github.com/bitbrat/twitch-edge/shared/twitch/twitchtest"
)

func TestEnsureConduitLifecycle(t *testing.T) {
	f := newFixture(t, twitchtest.Options{})
	ctx := context.Background()
	records := store.NewConduitStore(f.fs, "twitch", nil)
	ensure := func(shards int) Ensured {
		t.Helper()
		got, err := EnsureConduit(ctx, LifecycleOptions{API: f.client, Records: records, Shards: shards, Owner: "a", Logger: testLogger(t)})
		if err != nil {
			t.Fatal(err)
		}
		rec, ok, err := records.LoadConduit(ctx)
		if err != nil || !ok || rec.ID != got.Conduit.ID || rec.ShardCount != got.Conduit.ShardCount {
			t.Fatalf("record %+v %v %v after ensure gave %+v", rec, ok, err, got)
		}
		return got
	}
	fakeShards := func(id string) int {
		t.Helper()
		sh, err := f.fake.Shards(id)
		if err != nil {
			t.Fatal(err)
		}
		return len(sh)
	}

	first := ensure(2)
	if !first.Created || first.Conduit.ShardCount != 2 || fakeShards(first.Conduit.ID) != 2 {
		t.Fatalf("first start: %+v", first)
	}
	again := ensure(2)
	if again.Created || again.Grown || again.Conduit.ID != first.Conduit.ID || len(f.fake.Conduits()) != 1 {
		t.Fatalf("restart must find the recorded conduit: %+v, fake has %d", again, len(f.fake.Conduits()))
	}
	grown := ensure(3)
	if !grown.Grown || grown.Conduit.ID != first.Conduit.ID || fakeShards(first.Conduit.ID) != 3 {
		t.Fatalf("grow to 3: %+v (fake %d shards)", grown, fakeShards(first.Conduit.ID))
	}
	kept := ensure(1)
	if kept.Grown || kept.Conduit.ShardCount != 3 || fakeShards(first.Conduit.ID) != 3 {
		t.Fatalf("a lower configured count must not shrink the conduit: %+v", kept)
	}
	if err := f.client.DeleteConduit(ctx, first.Conduit.ID); err != nil {
		t.Fatal(err)
	}
	re := ensure(3)
	if !re.Created || re.Conduit.ID == first.Conduit.ID || re.Conduit.ShardCount != 3 || len(f.fake.Conduits()) != 1 {
		t.Fatalf("after Twitch deleted the conduit it must be recreated: %+v, fake %+v", re, f.fake.Conduits())
	}
}

// Instances starting together create one conduit, not one each.
func TestEnsureConduitConcurrentStarts(t *testing.T) {
	f := newFixture(t, twitchtest.Options{})
	ctx := context.Background()
	var wg sync.WaitGroup
	ids := make([]string, 3)
	errs := make([]error, 3)
	for i := range ids {
		wg.Add(1)
		go func() {
			defer wg.Done()
			records := store.NewConduitStore(f.fs, "twitch", nil)
			got, err := EnsureConduit(ctx, LifecycleOptions{API: f.client, Records: records, Shards: 2, Owner: string(rune('a' + i)), Logger: testLogger(t)})
			ids[i], errs[i] = got.Conduit.ID, err
		}()
	}
	wg.Wait()
	for i := range ids {
		if errs[i] != nil || ids[i] != ids[0] {
			t.Fatalf("instance %d: %q %v (instance 0: %q)", i, ids[i], errs[i], ids[0])
		}
	}
	if n := len(f.fake.Conduits()); n != 1 {
		t.Fatalf("%d conduits created, want 1", n)
	}
}
