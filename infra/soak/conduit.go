package soak

// The conduit script (Options.Transport "conduit"): two connector instances share a
// conduit of two WebSocket shards, one each (the layout rule), under a steady
// stream, and each fault is a step: session_reconnect on each shard, the SIGKILL of
// one instance and its restart, Twitch disabling a shard, a rolling restart of both
// (start a new instance, SIGTERM an old one, twice), and a channel added to and
// removed from the Firestore channels collection while the stream runs.
//
// What is expected, precisely (the rest of the counting is the WebSocket script's):
//
//   - Every notification the fake routed to a shard that took it: its target shard,
//     or — when the target was down (disabled, its socket gone) — the one other shard
//     Twitch retries it on. A retried notification is delivered, and counted so. What
//     neither shard took is what Twitch drops ("tw-drop"): not expected on the
//     topics, and a failure, since with one fault at a time the layout rule keeps one
//     shard up.
//   - SIGKILL: a crash loses what the process had read and not yet published, and
//     Twitch does not resend a frame it wrote to a socket; conduits cannot help
//     there (the README says so). So the stream is paused until what was sent is on
//     internal.ingress.v1, the instance is killed, and the stream resumes once the
//     fake has seen the socket end (its shard disabled): from then on Twitch retries
//     the dead shard's notifications on the other one, until the restarted instance
//     takes the shard back (after its lease's TTL).
//   - A channel added: Twitch sends nothing for it until its subscriptions exist;
//     what the stream tried before that found no subscription ("no-sub") and is not
//     expected. A channel removed: the connector keeps nothing for it; what Twitch
//     sent until the reconciler deleted its subscriptions is expected (Twitch sent
//     it, the connector forwards everything it gets); after the deletion Twitch sends
//     nothing for it, and the stream's attempts are "no-sub", not expected.

import (
	"context"
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bitbrat/twitch-edge/infra/faketwitch"
	"github.com/bitbrat/twitch-edge/infra/stack"
	"github.com/bitbrat/twitch-edge/shared/store"
	"github.com/bitbrat/twitch-edge/shared/twitch/twitchtest"
)

// conduitSteps is the conduit script, in order.
var conduitSteps = []step{
	{"stream", streamOn, (*script).stream},
	{stepShardReconnect, settled, (*script).shardReconnects},
	{"gap", pause, (*script).gap},
	{stepKill, settled, (*script).killInstance},
	{"gap", pause, (*script).gap},
	{stepShardDisabled, settled, (*script).disableShard},
	{"gap", pause, (*script).gap},
	{stepRolling, settled, (*script).rollingRestart},
	{"gap", pause, (*script).gap},
	{stepChannelAdded, settled, (*script).addChannel},
	{stepChannelRemoved, settled, (*script).removeChannel},
	{"drain", streamOn, (*script).conduitDrain},
}

// The conduit steps' names.
const (
	stepShardReconnect = "session_reconnect on each shard, stream on"
	stepKill           = "kill -9 of one instance, restart, stream on"
	stepShardDisabled  = "shard disabled by Twitch, stream on"
	stepRolling        = "rolling restart (start new, SIGTERM old)"
	stepChannelAdded   = "channel added to Firestore, stream on"
	stepChannelRemoved = "channel removed from Firestore, stream on"
)

// Conduit settings of the soak's instances.
const (
	// conduitShards is CONDUIT_SHARDS: one WebSocket shard per instance.
	conduitShards = 2
	// conduitLeaseTTL is CONNECTOR_LEASE_TTL: how long a killed instance's shard
	// stays unheld (its notifications retried on the other shard meanwhile).
	conduitLeaseTTL = 10 * time.Second
	// conduitWait bounds each wait for the fleet (a hang guard, not a margin): the
	// reconciler's round is 30 s, a lease TTL 10 s.
	conduitWait = 90 * time.Second
)

// addedChannel is the channel the script adds to the Firestore collection and
// removes again.
var addedChannel = twitchtest.User{ID: "4170", Login: "soak_added_channel", DisplayName: "Soak_Added_Channel"}

// fleet is the conduit script's connector instances.
type fleet struct {
	st       *stack.Stack
	hc       *http.Client
	channels *store.Channels
	mu       sync.Mutex
	running  []stack.Instance
	seq      int
	// handedOver and notHandedOver count the instances' log lines of a SIGTERM's
	// shard hand-over: taken by a standby before the old socket closed, or not.
	handedOver, notHandedOver atomic.Int64
}

// runConduit is the script in conduit mode.
func (sc *script) runConduit(begin time.Time) error {
	ctx, o := sc.ctx, sc.o
	f := &fleet{hc: &http.Client{Timeout: 2 * time.Second}}
	out := o.Output
	sc.logf("starting the stack in conduit mode (build, functions server, %d connector instances)", conduitShards)
	st, err := stack.Start(ctx, stack.Options{
		Project:    fmt.Sprintf("soak-conduit-%d", time.Now().Unix()),
		BinDir:     o.BinDir,
		FakeTwitch: faketwitch.Options{ReconnectGrace: 2 * time.Second},
		Output: func(component, line string) {
			switch {
			case strings.Contains(line, "conduit shard handed over; holder done"):
				f.handedOver.Add(1)
			case strings.Contains(line, "shard not handed over within the grace"):
				f.notHandedOver.Add(1)
			}
			if out != nil {
				out(component, line)
			}
		},
		MinBackoff: 500 * time.Millisecond,
		MaxBackoff: 5 * time.Second,
		Transport:  stack.TransportConduit,
		Connectors: conduitShards,
		ConnectorEnv: map[string]string{
			"CONNECTOR_LEASE_TTL": conduitLeaseTTL.String(), "CONNECTOR_SHUTDOWN_GRACE": "8s",
		},
	})
	if err != nil {
		return fmt.Errorf("start the stack: %w", err)
	}
	defer st.Stop()
	stopSignals := st.StopOnSignal()
	defer stopSignals()
	sc.st = st
	f.st, f.running, f.channels = st, st.Instances(), store.NewChannels(st.Firestore, nil)
	sc.fleet = f
	if err := f.wait(ctx, "both shards enabled, both instances ready", f.settled); err != nil {
		return err
	}
	sc.logf("stack ready after %s", time.Since(begin).Round(100*time.Millisecond))
	defer func() { sc.res.Instances = f.describe() }()
	return sc.play(conduitSteps, false)
}

// conduitID is the conduit's id on the fake ("" before there is one).
func (f *fleet) conduitID() string {
	cs := f.st.Fake.Twitch.Conduits()
	if len(cs) == 0 {
		return ""
	}
	return cs[len(cs)-1].ID
}

// shards are the conduit's shards on the fake.
func (f *fleet) shards() []twitchtest.ShardInfo {
	cs := f.st.Fake.Twitch.Conduits()
	if len(cs) == 0 {
		return nil
	}
	return cs[len(cs)-1].Shards
}

// shard is one shard's state on the fake.
func (f *fleet) shard(id string) twitchtest.ShardInfo {
	for _, sh := range f.shards() {
		if sh.ID == id {
			return sh
		}
	}
	return twitchtest.ShardInfo{ID: id, Status: "missing"}
}

// settled reports every shard enabled on the fake and every running instance
// holding one (its /readyz names it enabled on its session), and why not.
func (f *fleet) settled() (bool, string) {
	shards := f.shards()
	if len(shards) != conduitShards {
		return false, fmt.Sprintf("%d shards on the fake", len(shards))
	}
	for _, sh := range shards {
		if sh.Status != twitchtest.ShardEnabled {
			return false, fmt.Sprintf("shard %s %s", sh.ID, sh.Status)
		}
	}
	for _, in := range f.instances() {
		if id, _, why := f.held(in); id == "" {
			return false, in.Name() + ": " + why
		}
	}
	return true, ""
}

var heldRE = regexp.MustCompile(`shard (\d+) enabled on session (\S+)`)

// held is the shard an instance holds and its session, from its /readyz ("" and the
// answer when it holds none enabled).
func (f *fleet) held(in stack.Instance) (shard, session, why string) {
	resp, err := f.hc.Get(in.URL + "/readyz")
	if err != nil {
		return "", "", err.Error()
	}
	defer resp.Body.Close()
	var b strings.Builder
	buf := make([]byte, 2048)
	n, _ := resp.Body.Read(buf)
	b.Write(buf[:n])
	m := heldRE.FindStringSubmatch(b.String())
	if resp.StatusCode != http.StatusOK || m == nil {
		return "", "", fmt.Sprintf("HTTP %d %s", resp.StatusCode, strings.TrimSpace(b.String()))
	}
	return m[1], m[2], ""
}

// ready reports an instance's /readyz 200 (holding a shard, or standing by).
func (f *fleet) ready(in stack.Instance) bool {
	resp, err := f.hc.Get(in.URL + "/readyz")
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

func (f *fleet) instances() []stack.Instance {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]stack.Instance(nil), f.running...)
}

// replace puts fresh in old's place among the running instances.
func (f *fleet) replace(old, fresh stack.Instance) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for i, in := range f.running {
		if in.Process == old.Process {
			f.running[i] = fresh
		}
	}
}

// add prepares a new instance (not started).
func (f *fleet) add() (stack.Instance, error) {
	f.mu.Lock()
	f.seq++
	n := f.seq
	f.mu.Unlock()
	return f.st.AddInstance(fmt.Sprintf("connector-new-%d", n), fmt.Sprintf("soak-new-%d", n))
}

// wait polls cond every 100 ms until it holds, failing after conduitWait (a hang
// guard) with cond's last reason.
func (f *fleet) wait(ctx context.Context, what string, cond func() (bool, string)) error {
	ctx, cancel := context.WithTimeout(ctx, conduitWait)
	defer cancel()
	last := ""
	for {
		ok, why := cond()
		if ok {
			return nil
		}
		last = why
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for %s: %w (last: %s)", what, ctx.Err(), last)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// describe names each running instance and the shard it holds.
func (f *fleet) describe() string {
	var parts []string
	for _, in := range f.instances() {
		id, _, why := f.held(in)
		if id == "" {
			id = "none (" + why + ")"
		}
		parts = append(parts, in.Name()+" holds shard "+id)
	}
	return strings.Join(parts, ", ")
}
