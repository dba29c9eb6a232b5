package main

import (
	"context"
	"time"

	"github.com/bitbrat/twitch-edge/connector/conduit"
	"github.com/bitbrat/twitch-edge/shared/event"
	"github.com/bitbrat/twitch-edge/shared/store"
)

// ensure finds or creates the conduit with the configured shard count.
func (m *conduitMode) ensure(ctx context.Context) (conduit.Ensured, error) {
	cfg := m.a.cfg
	return conduit.EnsureConduit(ctx, conduit.LifecycleOptions{
		API: m.api, Records: m.cs, Shards: cfg.ConduitShards + cfg.ConduitWebhookShards,
		Owner: cfg.InstanceID, LeaseTTL: cfg.LeaseTTL, Logger: m.log,
	})
}

// followConduit reads the conduit's record every TTL/3: when another instance
// recreated the conduit (Twitch deleted it), this one moves its holder onto it.
func (m *conduitMode) followConduit(ctx context.Context) {
	t := time.NewTicker(m.a.cfg.LeaseTTL / 3)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		rctx, cancel := context.WithTimeout(ctx, m.a.cfg.LeaseTTL/3)
		rec, ok, err := m.cs.LoadConduit(rctx)
		cancel()
		if err != nil {
			m.log.Warn("connector: conduit record not read; next look later", "host", firestoreHost(m.a.cfg), "error", err.Error())
			continue
		}
		if ok && rec.ID != m.currentConduit() {
			m.switchConduit(rec.ID, rec.ShardCount)
		}
	}
}

// checkConduit runs after each of this instance's reconcile rounds (it holds the
// reconciler's lease): if Twitch no longer has the conduit, it is created anew (its
// subscriptions went with it; the next round creates them) and every instance
// follows the record.
func (m *conduitMode) checkConduit(conduitID string) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	list, err := m.api.GetConduits(ctx)
	if err != nil {
		m.log.Warn("connector: conduits not listed; next round checks again", "error", err.Error())
		return
	}
	for _, c := range list {
		if c.ID == conduitID {
			return
		}
	}
	m.log.Warn("connector: the conduit is gone from Twitch; creating a new one", "conduitId", conduitID)
	ens, err := m.ensure(ctx)
	if err != nil {
		m.log.Error("connector: conduit not recreated; next round retries", "error", err.Error())
		return
	}
	m.a.status.Emit("conduit", event.StateDisconnected, event.StateConnecting, func(e *event.ConnectorStatus) {
		e.Reason = "conduit " + conduitID + " deleted by Twitch; created " + ens.Conduit.ID
		e.Details = map[string]any{"conduitId": ens.Conduit.ID, "previousConduitId": conduitID}
	})
	m.switchConduit(ens.Conduit.ID, ens.Conduit.ShardCount)
}

// switchConduit moves this instance onto conduit id: each held shard's holder is
// restarted on it (the leases are per shard id, so they stay held).
func (m *conduitMode) switchConduit(id string, shards int) {
	m.mu.Lock()
	old := m.conduitID
	m.conduitID, m.shardCount = id, shards
	held := make(map[string]*holderState, len(m.holders))
	for sid, h := range m.holders {
		held[sid] = h
	}
	m.mu.Unlock()
	m.log.Warn("connector: moving to the recreated conduit", "from", old, "to", id, "held", len(held))
	for sid, h := range held {
		h.stop()
		m.gain(sid, store.Lease{})
	}
}
