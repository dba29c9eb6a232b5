package main

import (
	"context"
	"time"

	"github.com/bitbrat/twitch-edge/shared/store"
)

// waitForLease returns once this instance holds the lease, with the time the call
// that took it began (the lease runs from no earlier).
func (a *App) waitForLease(ctx context.Context) (time.Time, error) {
	for attempt := 1; ; attempt++ {
		// Bounded like a renewal: a hanging Firestore must not hang the standby.
		began := time.Now()
		actx, cancel := context.WithTimeout(ctx, a.cfg.LeaseTTL/3)
		c, err := a.lease.Acquire(actx, leaseKey, a.cfg.InstanceID, a.cfg.LeaseTTL)
		cancel()
		if err == nil && c.State == store.Acquired {
			a.setStandby("")
			a.log.Info("connector: lease acquired, holding the EventSub session", "instance", a.cfg.InstanceID, "attempt", c.Attempts)
			return began, nil
		}
		if ctx.Err() != nil {
			return time.Time{}, ctx.Err()
		}
		// Standbys look often: after a clean hand-off (the holder released the lease)
		// the gap without a session is at most this.
		wait := min(a.cfg.LeaseTTL/3, 2*time.Second)
		if err != nil {
			a.setStandby("lease check failed: " + err.Error())
			a.log.Warn("connector: waiting for the lease: check failed", "host", firestoreHost(a.cfg), "attempt", attempt,
				"error", err.Error())
		} else {
			a.setStandby("another instance holds the EventSub session (" + c.Owner + ")")
			a.log.Info("connector: standing by, lease held by another instance", "holder", c.Owner,
				"until", c.LeaseUntil.Format(time.RFC3339))
			if d := time.Until(c.LeaseUntil); d > 0 && d < wait {
				wait = d + 50*time.Millisecond
			}
			wait = a.hand.standbyWait(c.Owner, wait)
		}
		select {
		case <-ctx.Done():
			return time.Time{}, ctx.Err()
		case <-time.After(wait):
		}
	}
}

func (a *App) setStandby(why string) {
	a.mu.Lock()
	a.standbyWhy = why
	a.mu.Unlock()
}

// renewLease renews every third of the TTL, each call bounded so that it ends before
// two thirds of the TTL have passed since the last renewal began. Without a renewal by
// then the session is dropped at once (fencing): the lease is still ours for the last
// third, so two instances never hold sessions together. acquired is when the call
// that took the lease began.
func (a *App) renewLease(ctx context.Context, lost context.CancelFunc, acquired time.Time) {
	ttl := a.cfg.LeaseTTL
	t := time.NewTicker(ttl / 3)
	defer t.Stop()
	lastOK := acquired // when the last successful call began: the lease runs from no earlier
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		began := time.Now()
		fence := lastOK.Add(ttl * 2 / 3)
		deadline := began.Add(ttl / 3)
		if fence.Before(deadline) {
			deadline = fence
		}
		rctx, cancel := context.WithDeadline(ctx, deadline)
		c, err := a.lease.Acquire(rctx, leaseKey, a.cfg.InstanceID, ttl)
		cancel()
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			// Without a renewal the lease runs out and a standby may take over: stop
			// holding the session before that can happen (fencing), not after.
			if !time.Now().Before(fence) {
				a.log.Error("connector: lease could not be renewed in time, dropping the session", "host", firestoreHost(a.cfg),
					"leaseExpiresIn", time.Until(lastOK.Add(ttl)).Round(time.Millisecond).String(), "error", err.Error())
				lost()
				return
			}
			a.log.Warn("connector: lease renewal failed; will retry", "host", firestoreHost(a.cfg), "error", err.Error())
			continue
		}
		if c.State != store.Acquired {
			a.log.Error("connector: lease lost to another instance, dropping the session", "holder", c.Owner)
			lost()
			return
		}
		lastOK = began
	}
}
