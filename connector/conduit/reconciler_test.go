package conduit

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/bitbrat/twitch-edge/connector/eventsub"
	"github.com/bitbrat/twitch-edge/shared/store"
	"github.com/bitbrat/twitch-edge/shared/twitch"
	"github.com/bitbrat/twitch-edge/shared/twitch/twitchtest"
)

var testTypes = []eventsub.TypeVersion{{Type: "channel.update", Version: "2"}, {Type: "stream.online", Version: "1"}}

type reconcileFixture struct {
	*fixture
	conduitID string
	channels  *store.Channels
	state     *store.ConduitStore
}

func newReconcileFixture(t *testing.T, fo twitchtest.Options, n int) *reconcileFixture {
	t.Helper()
	f := newFixture(t, fo)
	ctx := context.Background()
	state := store.NewConduitStore(f.fs, "twitch", nil)
	ens, err := EnsureConduit(ctx, LifecycleOptions{API: f.client, Records: state, Shards: 1, Owner: "setup"})
	if err != nil {
		t.Fatal(err)
	}
	chs := store.NewChannels(f.fs, nil)
	var all []store.Channel
	for i := range n {
		id := fmt.Sprintf("%d", 10000+i)
		f.fake.AddUser(twitchtest.User{ID: id, Login: "c" + id})
		all = append(all, store.Channel{BroadcasterID: id})
	}
	if err := chs.AddAll(ctx, all); err != nil {
		t.Fatal(err)
	}
	return &reconcileFixture{fixture: f, conduitID: ens.Conduit.ID, channels: chs, state: state}
}

func (rf *reconcileFixture) reconciler(t *testing.T, owner string, budget int) *Reconciler {
	return NewReconciler(ReconcilerOptions{API: rf.client, Channels: rf.channels, Revocations: rf.state, Leases: rf.state,
		Owner: owner, ConduitID: func() string { return rf.conduitID }, Types: testTypes, Budget: budget, Logger: testLogger(t)})
}

func (rf *reconcileFixture) conduitSubs() map[string]twitchtest.Subscription {
	out := map[string]twitchtest.Subscription{}
	for _, s := range rf.fake.Subscriptions() {
		if s.Transport.ConduitID == rf.conduitID {
			out[eventsub.Spec{Type: s.Type, Version: s.Version, Condition: s.Condition}.Key()] = s
		}
	}
	return out
}

func roundOK(t *testing.T, r *Reconciler, what string) Result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	start := time.Now()
	res, err := r.Round(ctx)
	if err != nil {
		t.Fatalf("%s: %v (%s)", what, err, res)
	}
	t.Logf("%s: %s in %s", what, res, time.Since(start).Round(time.Millisecond))
	return res
}

// 1,000 channels × 2 types onto one conduit within the fake's cost and rate limits
// (a bucket of 800 requests per 3 s window, so the client must wait for refills);
// then a channel added and one removed at runtime; a second instance's round is
// skipped while the first holds the lease; a revoked subscription is recorded,
// removed and not recreated, round after round.
func TestReconcilerThousandChannels(t *testing.T) {
	rf := newReconcileFixture(t, twitchtest.Options{RateLimitWindow: 3 * time.Second}, 1000)
	ctx := context.Background()
	r := rf.reconciler(t, "a", 0)

	res := roundOK(t, r, "first round")
	if res.Created != 2000 || res.Failed != 0 || len(res.OverBudget) != 0 || res.Desired != 2000 {
		t.Fatalf("first round: %s %v", res, res.Errors)
	}
	if n := len(rf.conduitSubs()); n != 2000 {
		t.Fatalf("fake has %d conduit subscriptions, want 2000", n)
	}

	f := rf.fake
	f.AddUser(twitchtest.User{ID: "20000", Login: "newcomer"})
	if err := rf.channels.Add(ctx, store.Channel{BroadcasterID: "20000"}); err != nil {
		t.Fatal(err)
	}
	if err := rf.channels.Remove(ctx, "10005"); err != nil {
		t.Fatal(err)
	}
	res = roundOK(t, r, "after a channel added and one removed")
	if res.Created != 2 || res.Deleted != 2 || res.Existing != 1998 || res.Failed != 0 {
		t.Fatalf("second round: %s %v", res, res.Errors)
	}
	subs := rf.conduitSubs()
	for _, want := range []string{"channel.update@2 broadcaster_user_id=20000", "stream.online@1 broadcaster_user_id=20000"} {
		if _, ok := subs[want]; !ok {
			t.Errorf("missing %s", want)
		}
	}
	for _, gone := range []string{"channel.update@2 broadcaster_user_id=10005", "stream.online@1 broadcaster_user_id=10005"} {
		if _, ok := subs[gone]; ok {
			t.Errorf("still there: %s", gone)
		}
	}

	if res, err := rf.reconciler(t, "b", 0).Round(ctx); err != nil || !res.Skipped {
		t.Fatalf("a second instance's round while a holds the lease: %s %v, want skipped", res, err)
	}

	revokedKey := "stream.online@1 broadcaster_user_id=10010"
	if err := f.Revoke(subs[revokedKey].ID, twitch.StatusAuthorizationRevoked); err != nil {
		t.Fatal(err)
	}
	res = roundOK(t, r, "after a revocation")
	if res.Revoked != 1 || res.Deleted != 1 || res.Created != 0 {
		t.Fatalf("revocation round: %s", res)
	}
	recs, err := rf.state.Revocations(ctx)
	if err != nil || recs[revokedKey].Reason != twitch.StatusAuthorizationRevoked {
		t.Fatalf("revocation records %+v %v", recs, err)
	}
	posts := len(f.RequestsTo("POST", "/helix/eventsub/subscriptions"))
	res = roundOK(t, r, "the round after")
	if res.Revoked != 1 || res.Created != 0 || res.Deleted != 0 || len(f.RequestsTo("POST", "/helix/eventsub/subscriptions")) != posts {
		t.Fatalf("the revoked subscription must not be recreated: %s", res)
	}
	// Once an operator clears the record, it is created again.
	if err := rf.state.ClearRevocation(ctx, revokedKey); err != nil {
		t.Fatal(err)
	}
	if res = roundOK(t, r, "after the record was cleared"); res.Created != 1 || res.Revoked != 0 {
		t.Fatalf("after clearing: %s", res)
	}
}

func TestReconcilerCostBudget(t *testing.T) {
	cases := []struct {
		name       string
		fakeMax    int // the fake's max_total_cost
		budget     int // ReconcilerOptions.Budget
		wantCreate int
	}{
		{"twitch's limit", 5, 0, 5},
		{"own budget below twitch's", 100, 3, 3},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			rf := newReconcileFixture(t, twitchtest.Options{MaxConduitCost: tc.fakeMax}, 4)
			r := rf.reconciler(t, "a", tc.budget)
			res := roundOK(t, r, "first round")
			if res.Created != tc.wantCreate || len(res.OverBudget) != 8-tc.wantCreate || res.Failed != 0 {
				t.Fatalf("%s, over budget %v, errors %v", res, res.OverBudget, res.Errors)
			}
			posts := len(rf.fake.RequestsTo("POST", "/helix/eventsub/subscriptions"))
			res = roundOK(t, r, "second round")
			if res.Created != 0 || len(res.OverBudget) != 8-tc.wantCreate || len(rf.fake.RequestsTo("POST", "/helix/eventsub/subscriptions")) != posts {
				t.Fatalf("a full budget must be reported, not retried: %s", res)
			}
		})
	}
}
