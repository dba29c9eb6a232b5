package soak

import (
	"fmt"
	"strings"
	"syscall"
	"time"

	"github.com/bitbrat/twitch-edge/infra/faketwitch"
	"github.com/bitbrat/twitch-edge/shared/store"
	"github.com/bitbrat/twitch-edge/shared/twitch/twitchtest"
)

// The conduit script's faults (conduit.go says what each expects).

// shardReconnects sends session_reconnect on each shard's session in turn and waits
// until the shard is served by the new session and the old socket is gone.
func (sc *script) shardReconnects() (string, error) {
	f, tw := sc.fleet, sc.st.Fake.Twitch
	if err := f.wait(sc.ctx, "a settled fleet", f.settled); err != nil {
		return "", err
	}
	var took []string
	for _, sh := range f.shards() {
		old, t0 := sh.SessionID, time.Now()
		if _, err := tw.Reconnect(old); err != nil {
			return "", fmt.Errorf("session_reconnect on shard %s (session %s): %w", sh.ID, old, err)
		}
		sc.reconnects++
		err := f.wait(sc.ctx, "shard "+sh.ID+" on the new session, the old one closed", func() (bool, string) {
			now := f.shard(sh.ID)
			if now.Status != twitchtest.ShardEnabled || now.SessionID == old {
				return false, fmt.Sprintf("shard %s %s on %s", now.ID, now.Status, now.SessionID)
			}
			for _, x := range tw.Sessions() {
				if x.ID == old {
					return false, "the old session still open"
				}
			}
			return true, ""
		})
		if err != nil {
			return "", err
		}
		took = append(took, fmt.Sprintf("shard %s in %s", sh.ID, time.Since(t0).Round(100*time.Millisecond)))
	}
	if err := f.wait(sc.ctx, "a settled fleet", f.settled); err != nil {
		return "", err
	}
	sc.sleep(sc.gapLen)
	return "moved to the new session: " + strings.Join(took, "; "), nil
}

// killInstance SIGKILLs the second instance with nothing in flight (the stream
// drained first), resumes the stream once the fake has seen the socket end, and
// restarts the instance: until it holds its shard again (after the lease's TTL),
// Twitch retries that shard's notifications on the other one.
func (sc *script) killInstance() (string, error) {
	f := sc.fleet
	if err := f.wait(sc.ctx, "a settled fleet", f.settled); err != nil {
		return "", err
	}
	victim := f.instances()[1]
	shardID, _, _ := f.held(victim)
	sc.h.s.Pause()
	if err := sc.h.drain(sc.ctx, 60*time.Second); err != nil {
		return "", err
	}
	t0 := time.Now()
	victim.Stop(syscall.SIGKILL, 5*time.Second)
	err := f.wait(sc.ctx, "the fake seeing shard "+shardID+"'s socket end", func() (bool, string) {
		sh := f.shard(shardID)
		return sh.Status != twitchtest.ShardEnabled, sh.Status
	})
	sc.h.s.Resume(stepKill)
	if err != nil {
		return "", err
	}
	status := f.shard(shardID).Status
	if err := victim.Start(); err != nil {
		return "", err
	}
	if err := f.wait(sc.ctx, "the killed instance's shard held again", f.settled); err != nil {
		return "", err
	}
	back := time.Since(t0)
	sc.sleep(sc.gapLen)
	return fmt.Sprintf("%s (shard %s) SIGKILLed, the fake disabled the shard (%s); restarted, shard held again %s after the kill (lease TTL %s)",
		victim.Name(), shardID, status, back.Round(100*time.Millisecond), conduitLeaseTTL), nil
}

// disableShard has Twitch disable shard 0 (websocket_disconnected, its socket left
// open): conduit.shard.disabled goes out, the holder re-reads the shard and PATCHes
// it again; meanwhile its notifications are retried on the other shard.
func (sc *script) disableShard() (string, error) {
	f := sc.fleet
	if err := f.wait(sc.ctx, "a settled fleet", f.settled); err != nil {
		return "", err
	}
	const id = "0"
	t0 := time.Now()
	if err := sc.st.Fake.Twitch.DisableShard(f.conduitID(), id, ""); err != nil {
		return "", fmt.Errorf("disable shard %s: %w", id, err)
	}
	err := f.wait(sc.ctx, "shard "+id+" re-enabled by its holder", func() (bool, string) {
		sh := f.shard(id)
		return sh.Status == twitchtest.ShardEnabled, sh.Status
	})
	if err != nil {
		return "", err
	}
	took := time.Since(t0)
	if err := f.wait(sc.ctx, "a settled fleet", f.settled); err != nil {
		return "", err
	}
	sc.sleep(sc.gapLen)
	return fmt.Sprintf("shard %s disabled; PATCHed again by its holder after %s", id, took.Round(100*time.Millisecond)), nil
}

// rollingRestart replaces both instances as a rolling deploy does: a new instance
// starts and stands by, the old one gets SIGTERM and hands its shard over before
// its socket closes. Each replacement is its own fault in the report.
func (sc *script) rollingRestart() (string, error) {
	f := sc.fleet
	if err := f.wait(sc.ctx, "a settled fleet", f.settled); err != nil {
		return "", err
	}
	handed0, closed0 := f.handedOver.Load(), f.notHandedOver.Load()
	var took []string
	for i, old := range f.instances() {
		sc.h.s.SetPhase(fmt.Sprintf("%s %d", stepRolling, i+1))
		fresh, err := f.add()
		if err != nil {
			return "", err
		}
		if err := fresh.Start(); err != nil {
			return "", err
		}
		if err := f.wait(sc.ctx, fresh.Name()+" standing by", func() (bool, string) { return f.ready(fresh), "not ready" }); err != nil {
			return "", fmt.Errorf("%w\n--- its output ---\n%s", err, fresh.LogTail())
		}
		t0 := time.Now()
		old.Stop(syscall.SIGTERM, 15*time.Second)
		stopped := time.Since(t0)
		f.replace(old, fresh)
		if err := f.wait(sc.ctx, fresh.Name()+" holding the handed-over shard", f.settled); err != nil {
			return "", err
		}
		took = append(took, fmt.Sprintf("%s → %s, old stopped in %s", old.Name(), fresh.Name(), stopped.Round(100*time.Millisecond)))
	}
	sc.sleep(2 * time.Second)
	return fmt.Sprintf("%s; %d shards handed over before the old socket closed, %d closed without a taker",
		strings.Join(took, "; "), f.handedOver.Load()-handed0, f.notHandedOver.Load()-closed0), nil
}

// subscriptionsFor counts the conduit's enabled subscriptions for a broadcaster.
func (f *fleet) subscriptionsFor(broadcasterID string) int {
	cid, n := f.conduitID(), 0
	for _, x := range f.st.Fake.Twitch.EnabledSubscriptions() {
		if x.Transport.ConduitID == cid && x.Condition["broadcaster_user_id"] == broadcasterID {
			n++
		}
	}
	return n
}

// addChannel adds a channel to the fake and to the Firestore channels collection,
// and streams to it at once: until the reconciler's next round has subscribed it,
// Twitch sends nothing for it (no-sub, not expected).
func (sc *script) addChannel() (string, error) {
	f, tw, u := sc.fleet, sc.st.Fake.Twitch, addedChannel
	tw.AddUser(u)
	tw.AddModerator(u.ID, faketwitch.BotID)
	t0 := time.Now()
	if err := f.channels.Add(sc.ctx, store.Channel{BroadcasterID: u.ID, Login: u.Login}); err != nil {
		return "", err
	}
	sc.h.s.AddChannel(u)
	err := f.wait(sc.ctx, "the added channel's 2 subscriptions on the conduit", func() (bool, string) {
		n := f.subscriptionsFor(u.ID)
		return n == 2, fmt.Sprintf("%d enabled", n)
	})
	if err != nil {
		return "", err
	}
	took, before := time.Since(t0), sc.h.s.NoSubscriptionFor(u.ID)
	sc.sleep(sc.gapLen + time.Second)
	return fmt.Sprintf("subscribed %s after the add (a reconcile round every 30 s); %d tried before that (no subscription yet)",
		took.Round(100*time.Millisecond), before), nil
}

// removeChannel removes the added channel from the collection with the stream still
// sending to it: what Twitch sends until the reconciler deletes the subscriptions is
// expected; after that Twitch sends nothing for it.
func (sc *script) removeChannel() (string, error) {
	f, u := sc.fleet, addedChannel
	noSub0 := sc.h.s.NoSubscriptionFor(u.ID)
	t0 := time.Now()
	if err := f.channels.Remove(sc.ctx, u.ID); err != nil {
		return "", err
	}
	err := f.wait(sc.ctx, "the removed channel's subscriptions deleted", func() (bool, string) {
		n := f.subscriptionsFor(u.ID)
		return n == 0, fmt.Sprintf("%d still enabled", n)
	})
	if err != nil {
		return "", err
	}
	deleted := time.Now()
	sc.sleep(sc.gapLen)
	sc.h.s.RemoveChannel(u.ID)
	meanwhile, later := 0, 0
	for _, x := range sc.h.s.Sent() {
		if x.channel == u.ID && !x.at.Before(t0) {
			if x.at.After(deleted) {
				later++
			} else {
				meanwhile++
			}
		}
	}
	if later > 0 {
		return "", fmt.Errorf("the fake sent %d notifications for %s after its subscriptions were deleted", later, u.Login)
	}
	return fmt.Sprintf("subscriptions deleted %s after the removal; %d sent for it meanwhile (expected); %d tried after the deletion (no subscription, not expected)",
		deleted.Sub(t0).Round(100*time.Millisecond), meanwhile, sc.h.s.NoSubscriptionFor(u.ID)-noSub0), nil
}

// conduitDrain pauses the stream and waits until everything expected is on the
// topics.
func (sc *script) conduitDrain() (string, error) {
	sc.h.s.Pause()
	err := sc.h.drain(sc.ctx, 60*time.Second)
	sc.sleep(2 * time.Second) // late duplicates
	return "", err
}
