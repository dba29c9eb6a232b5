package conduit

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bitbrat/twitch-edge/connector/eventsub"
	"github.com/bitbrat/twitch-edge/shared/store"
	"github.com/bitbrat/twitch-edge/shared/twitch"
	"github.com/bitbrat/twitch-edge/shared/twitch/twitchtest"
)

// recordingSink is the raw topic of the test: every frame forwarded, by message id.
type recordingSink struct {
	mu     sync.Mutex
	frames map[string]eventsub.Frame
	count  map[string]int
}

func newSink() *recordingSink {
	return &recordingSink{frames: map[string]eventsub.Frame{}, count: map[string]int{}}
}

func (s *recordingSink) Forward(_ context.Context, f eventsub.Frame) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.frames[f.MessageID] = f
	s.count[f.MessageID]++
	return nil
}

func (s *recordingSink) has(id string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.count[id] > 0
}

// connectorInstance wires what the connector will: shard leases whose gains start
// a RunShard and whose losses stop it.
type connectorInstance struct {
	leases  *ShardLeases
	mu      sync.Mutex
	stops   map[string]context.CancelFunc
	patched []string
}

func (ci *connectorInstance) patches() []string {
	ci.mu.Lock()
	defer ci.mu.Unlock()
	return append([]string(nil), ci.patched...)
}

func startInstance(t *testing.T, f *fixture, conduitID, owner string, shards int, sink Sink, checkEvery time.Duration) *connectorInstance {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	ci := &connectorInstance{stops: map[string]context.CancelFunc{}}
	log := testLogger(t)
	ci.leases = NewShardLeases(ShardLeasesOptions{
		Store: store.NewConduitStore(f.fs, "twitch", nil), Owner: owner, Shards: func() int { return shards }, Logger: log,
		OnGain: func(id string, _ store.Lease) {
			sctx, stop := context.WithCancel(ctx)
			ci.mu.Lock()
			ci.stops[id] = stop
			ci.mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				err := RunShard(sctx, HolderOptions{ConduitID: conduitID, ShardID: id, URL: f.fake.EventSubWSURL(), API: f.client, Sink: sink,
					Fence: func(ctx context.Context) error { return ci.leases.Fence(ctx, id) }, CheckEvery: checkEvery, Logger: log,
					OnPatched: func(sid string) { ci.mu.Lock(); ci.patched = append(ci.patched, sid); ci.mu.Unlock() }})
				if err != nil {
					log.Warn("shard holder ended", "shard", id, "error", err)
				}
			}()
		},
		OnLose: func(id, _ string) {
			ci.mu.Lock()
			if stop := ci.stops[id]; stop != nil {
				stop()
			}
			ci.mu.Unlock()
		},
	})
	wg.Add(1)
	go func() { defer wg.Done(); _ = ci.leases.Run(ctx) }()
	t.Cleanup(func() { cancel(); wg.Wait() })
	return ci
}

// shardOn reports the shard's status and session on the fake.
func shardOn(t *testing.T, f *fixture, conduitID, id string) twitchtest.ShardInfo {
	t.Helper()
	shards, err := f.fake.Shards(conduitID)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range shards {
		if s.ID == id {
			return s
		}
	}
	t.Fatalf("no shard %s", id)
	return twitchtest.ShardInfo{}
}

// Two instances each hold one shard: each PATCHes its shard within 10 s of the
// welcome; notifications routed by the fake's conduit reach the sink; a killed
// socket is replaced and the shard re-PATCHed with the new session; a
// session_reconnect is followed without losing the shard; a shard Twitch disabled is
// found by the status check and re-associated.
func TestShardHolders(t *testing.T) {
	f := newFixture(t, twitchtest.Options{})
	ctx := context.Background()
	ens, err := EnsureConduit(ctx, LifecycleOptions{API: f.client, Records: store.NewConduitStore(f.fs, "twitch", nil), Shards: 2, Owner: "setup"})
	if err != nil {
		t.Fatal(err)
	}
	cid := ens.Conduit.ID
	var broadcasters []string
	for _, id := range []string{"1001", "1002", "1003", "1004", "1005", "1006", "1007", "1008"} {
		f.fake.AddUser(twitchtest.User{ID: id, Login: "user" + id})
		if _, err := f.client.CreateEventSubSubscription(ctx, twitch.CreateSubscriptionRequest{Type: "stream.online", Version: "1",
			Condition: map[string]string{"broadcaster_user_id": id}, Transport: twitch.ConduitTransport(cid)}); err != nil {
			t.Fatal(err)
		}
		broadcasters = append(broadcasters, id)
	}
	sink := newSink()
	a := startInstance(t, f, cid, "a", 2, sink, 200*time.Millisecond)
	b := startInstance(t, f, cid, "b", 2, sink, 200*time.Millisecond)
	enabled := func(id string) bool {
		s := shardOn(t, f, cid, id)
		return s.Status == twitchtest.ShardEnabled && s.SessionID != ""
	}
	waitFor(t, "both shards enabled", func() bool { return enabled("0") && enabled("1") })
	if len(a.leases.Held()) != 1 || len(b.leases.Held()) != 1 {
		t.Fatalf("held a=%v b=%v, want one each", a.leases.Held(), b.leases.Held())
	}
	// Each PATCH came within the window after its session's welcome.
	sessions := map[string]time.Time{}
	for _, s := range f.fake.Sessions() {
		sessions[s.ID] = s.ConnectedAt
	}
	for _, id := range []string{"0", "1"} {
		sid := shardOn(t, f, cid, id).SessionID
		var patchAt time.Time
		for _, r := range f.fake.RequestsTo("PATCH", "/helix/eventsub/conduits/shards") {
			if strings.Contains(string(r.Body), sid) {
				patchAt = r.Time
			}
		}
		if gap := patchAt.Sub(sessions[sid]); sessions[sid].IsZero() || patchAt.IsZero() || gap > 10*time.Second {
			t.Fatalf("shard %s: session %s connected %v, last PATCH %v (gap %v)", id, sid, sessions[sid], patchAt, gap)
		}
	}

	notifyAll := func(what string) {
		t.Helper()
		for _, id := range broadcasters {
			ids, err := f.fake.Notify(twitchtest.Notification{Type: "stream.online", Condition: map[string]string{"broadcaster_user_id": id},
				Event: map[string]any{"broadcaster_user_id": id, "type": "live"}})
			if err != nil || len(ids) != 1 {
				t.Fatalf("%s: notify %s: %v %v", what, id, ids, err)
			}
			waitFor(t, what+": notification "+ids[0]+" in the sink", func() bool { return sink.has(ids[0]) })
		}
	}
	notifyAll("steady")
	landed := map[string]bool{}
	for _, d := range f.fake.ConduitDeliveries() {
		landed[d.DeliveredTo] = true
	}
	if !landed["0"] || !landed["1"] {
		t.Fatalf("notifications landed on shards %v, want both (routing spreads 8 broadcasters)", landed)
	}

	// Kill shard 0's socket: a new session, PATCHed again.
	before := shardOn(t, f, cid, "0").SessionID
	if err := f.fake.KillShardSocket(cid, "0", 4000); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "shard 0 re-PATCHed with a new session", func() bool {
		s := shardOn(t, f, cid, "0")
		return s.Status == twitchtest.ShardEnabled && s.SessionID != before && s.SessionID != ""
	})
	notifyAll("after socket kill")

	// session_reconnect on shard 1: the holder moves to the reconnect URL.
	s1 := shardOn(t, f, cid, "1").SessionID
	holder1 := a
	if len(b.leases.Held()) == 1 && b.leases.Held()[0] == "1" {
		holder1 = b
	}
	patchesBefore := len(holder1.patches())
	if _, err := f.fake.Reconnect(s1); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the reconnect handed over", func() bool {
		for _, s := range f.fake.Sessions() {
			if s.ID == s1 && s.HandedOver {
				return true
			}
		}
		return false
	})
	if err := f.fake.EndReconnectGrace(s1); err != nil {
		t.Fatal(err)
	}
	notifyAll("after reconnect")
	// Twitch is reported to keep the session id across a reconnect; the fake issues
	// a new one. Either way the shard ends on the holder's session, PATCHed only if
	// the id changed.
	s := shardOn(t, f, cid, "1")
	extra := len(holder1.patches()) - patchesBefore
	switch {
	case s.Status != twitchtest.ShardEnabled:
		t.Fatalf("after reconnect shard 1 is %+v", s)
	case s.SessionID == s1 && extra != 0:
		t.Fatalf("shard 1 PATCHed %d times after a reconnect that kept the session", extra)
	case s.SessionID != s1 && (extra != 1 || holder1.patches()[len(holder1.patches())-1] != s.SessionID):
		t.Fatalf("reconnect changed the session to %s: %d PATCHes (%v), want one with it", s.SessionID, extra, holder1.patches())
	}

	// Twitch disables shard 1 (socket left open): the status check re-associates it.
	if err := f.fake.DisableShard(cid, "1", ""); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "shard 1 re-associated after being disabled", func() bool { return enabled("1") })
	notifyAll("after disable")
	if lost := f.fake.LostNotifications(); len(lost) != 0 {
		t.Fatalf("%d notifications lost: %+v", len(lost), lost)
	}
}

// A holder whose lease is gone never PATCHes the shard: it returns at once.
func TestShardHolderFenced(t *testing.T) {
	f := newFixture(t, twitchtest.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), patience)
	defer cancel()
	ens, err := EnsureConduit(ctx, LifecycleOptions{API: f.client, Records: store.NewConduitStore(f.fs, "twitch", nil), Shards: 1, Owner: "setup"})
	if err != nil {
		t.Fatal(err)
	}
	err = RunShard(ctx, HolderOptions{ConduitID: ens.Conduit.ID, ShardID: "0", URL: f.fake.EventSubWSURL(), API: f.client, Sink: newSink(),
		Fence: func(context.Context) error { return store.ErrLeaseLost }, Logger: testLogger(t)})
	if !errors.Is(err, store.ErrLeaseLost) {
		t.Fatalf("RunShard without the lease: %v, want ErrLeaseLost", err)
	}
	if n := len(f.fake.RequestsTo("PATCH", "/helix/eventsub/conduits/shards")); n != 0 {
		t.Fatalf("%d PATCHes without the lease", n)
	}
}
