package main

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/bitbrat/twitch-edge/connector/conduit"
	"github.com/bitbrat/twitch-edge/connector/eventsub"
	"github.com/bitbrat/twitch-edge/shared/event"
	"github.com/bitbrat/twitch-edge/shared/fault"
	"github.com/bitbrat/twitch-edge/shared/twitch"
)

func (m *conduitMode) shardUp(id string, h *holderState, sessionID string) {
	m.patches.Inc()
	m.mu.Lock()
	was := h.up
	h.up, h.session, h.since, h.reason = true, sessionID, time.Now(), ""
	m.mu.Unlock()
	prev := event.StateConnecting
	if was {
		prev = event.StateConnected
	}
	m.emitShard(id, prev, event.StateConnected, "shard pointed at session "+sessionID)
}

func (m *conduitMode) shardDown(id string, h *holderState, reason string) {
	m.downs.Inc()
	m.mu.Lock()
	h.up, h.since, h.reason = false, time.Now(), reason
	m.mu.Unlock()
	m.emitShard(id, event.StateConnected, event.StateDisconnected, reason)
}

func (m *conduitMode) emitShard(id, prev, cur, reason string) {
	m.a.status.Emit("shard", prev, cur, func(e *event.ConnectorStatus) {
		e.Shard, e.Reason = id, reason
		e.Details = map[string]any{"conduitId": m.currentConduit()}
	})
}

// revoked records a revocation a shard received and reports it.
func (m *conduitMode) revoked(ctx context.Context, sub twitch.Subscription) {
	m.rec.Revoked(ctx, sub)
	m.a.status.Emit("subscription", event.StateConnected, event.StateError, func(e *event.ConnectorStatus) {
		e.SubscriptionID, e.SubscriptionType, e.Reason = sub.ID, sub.Type, sub.Status
		e.BroadcasterID = sub.Condition["broadcaster_user_id"]
	})
}

// createFailed reports a subscription Twitch refused, once until a round has no
// failures (a round every 30 s must not repeat the same event).
func (m *conduitMode) createFailed(s eventsub.Spec, err error) {
	key := s.Key()
	m.mu.Lock()
	seen := m.failedKeys[key]
	m.failedKeys[key] = true
	m.mu.Unlock()
	if seen {
		return
	}
	m.a.status.Emit("subscription", event.StateConnecting, event.StateError, func(e *event.ConnectorStatus) {
		e.SubscriptionType, e.BroadcasterID = s.Type, s.Condition["broadcaster_user_id"]
		e.Reason = fault.CodeOf(err, "CREATE_FAILED") + ": " + err.Error()
	})
}

// reconciled keeps a round's outcome for /readyz, reports a change, and keeps the
// webhook shards (one instance at a time: the reconciler's lease holder).
func (m *conduitMode) reconciled(res conduit.Result, err error) {
	if res.Skipped && err == nil {
		return
	}
	m.rounds.Inc()
	ok := err == nil && res.Failed == 0 && len(res.OverBudget) == 0
	if !ok {
		m.roundFailures.Inc()
	}
	m.mu.Lock()
	wasOK, had := m.resultOK, !m.resultAt.IsZero()
	m.result, m.resultOK, m.resultAt, m.resultErr = res, ok, time.Now(), ""
	if err != nil {
		m.resultErr = err.Error()
	}
	if res.Failed == 0 && err == nil {
		clear(m.failedKeys)
	}
	conduitID := m.conduitID
	m.mu.Unlock()
	if !res.Skipped {
		m.checkConduit(conduitID)
	}
	if !had || ok != wasOK || res.Created > 0 || res.Deleted > 0 || res.Failed > 0 {
		prev, cur := event.StateConnecting, event.StateConnected
		if had && wasOK {
			prev = event.StateConnected
		} else if had {
			prev = event.StateError
		}
		if !ok {
			cur = event.StateError
		}
		m.a.status.Emit("reconcile", prev, cur, func(e *event.ConnectorStatus) {
			e.Reason = res.String()
			if err != nil {
				e.Reason = err.Error()
			}
			e.Details = map[string]any{"conduitId": conduitID, "desired": res.Desired, "existing": res.Existing,
				"created": res.Created, "deleted": res.Deleted, "revoked": res.Revoked, "failed": res.Failed,
				"overBudget": len(res.OverBudget), "totalCost": res.TotalCost, "maxTotalCost": res.MaxTotalCost}
		})
	}
	m.keepWebhookShards(conduitID)
}

// keepWebhookShards runs one round of the webhook-shard keeper, when there are
// webhook shards.
func (m *conduitMode) keepWebhookShards(conduitID string) {
	cfg := m.a.cfg
	if cfg.ConduitWebhookShards == 0 || m.hooks == nil || conduitID == "" {
		return
	}
	ids := conduit.WebhookShardIDs(cfg.ConduitShards, cfg.ConduitWebhookShards)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	changed, err := m.hooks(ctx, conduitID, ids)
	if err != nil {
		m.log.Warn("connector: webhook shards not kept; next round retries", "ids", ids, "error", err.Error())
		return
	}
	for _, id := range changed {
		m.emitShard(id, event.StateDisconnected, event.StateConnected, "webhook shard re-associated with "+cfg.WebhookCallback)
	}
}

// ready is /readyz in conduit mode: the held shard is enabled on our session, or
// this instance holds nothing because every shard is held elsewhere (a standby).
// An instance that holds nothing while a shard is unheld is not ready.
func (m *conduitMode) ready() (bool, string) {
	m.mu.Lock()
	conduitID, count := m.conduitID, m.shardCount
	var parts []string
	up := true
	for id, h := range m.holders {
		if h.up {
			parts = append(parts, fmt.Sprintf("shard %s enabled on session %s since %s", id, h.session, h.since.UTC().Format(time.RFC3339)))
		} else {
			up = false
			parts = append(parts, fmt.Sprintf("shard %s not connected (%s)", id, h.reason))
		}
	}
	rec := "reconcile: no round by this instance yet"
	if !m.resultAt.IsZero() {
		rec = "reconcile at " + m.resultAt.UTC().Format(time.RFC3339) + ": " + m.result.String()
		if m.resultErr != "" {
			rec += "; error: " + m.resultErr
		}
	}
	n := len(m.holders)
	m.mu.Unlock()
	if conduitID == "" {
		return false, "starting: the conduit is not found or created yet"
	}
	head := fmt.Sprintf("conduit %s (%d shards, %d WebSocket)", conduitID, count, m.a.cfg.ConduitShards)
	b := m.a.relay.Backlog()
	switch {
	case n == 0 && !m.leases.EveryShardHeld():
		return false, head + ": holds no shard while a shard is unheld (or its lease unreadable); " + rec
	case n == 0:
		return true, head + ": standby, every shard held by another instance; " + rec
	case !up:
		return false, head + ": " + strings.Join(parts, "; ") + "; " + rec
	case b.NearLimit:
		return false, head + ": relay backlog near its limit (Pub/Sub and Firestore behind); " + rec
	}
	return true, "ready: " + head + ": " + strings.Join(parts, "; ") + "; " + rec
}
