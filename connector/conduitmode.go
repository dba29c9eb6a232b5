package main

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bitbrat/twitch-edge/connector/conduit"
	"github.com/bitbrat/twitch-edge/connector/eventsub"
	"github.com/bitbrat/twitch-edge/connector/metrics"
	"github.com/bitbrat/twitch-edge/shared/event"
	"github.com/bitbrat/twitch-edge/shared/store"
	"github.com/bitbrat/twitch-edge/shared/twitch"
)

// ConduitHelix is what conduit mode needs from Helix, with the app access token
// (*twitch.Client built with AppTokens).
type ConduitHelix interface {
	conduit.ConduitAPI
	conduit.ShardAPI
	conduit.SubscriptionAPI
}

// WebhookShardKeeper runs one round of keeping the webhook shards ids pointed at the
// webhook callback (conduit.KeepWebhookShards) and returns the ids it re-associated.
type WebhookShardKeeper func(ctx context.Context, conduitID string, ids []string) (changed []string, err error)

// standbyClaimEvery is how often an instance holding no shard looks for a free one:
// well within the SIGTERM hand-over window, so that a deploy's new instance claims
// the released shard while the old one still reads its socket.
const standbyClaimEvery = time.Second

// conduitName is the conduit's Firestore record (conduits/twitch).
const conduitName = store.ConduitName

// typeShardDisabled is the notification Twitch sends when a shard of the conduit is
// disabled; the connector subscribes to it and handles it itself (not forwarded).
const typeShardDisabled = "conduit.shard.disabled"

// conduitMode is the connector in EVENTSUB_TRANSPORT=conduit: every instance
// shares one conduit; each holds at most one WebSocket shard (the layout rule,
// connector/conduit's doc), and one at a time reconciles the subscriptions.
type conduitMode struct {
	a      *App
	api    ConduitHelix
	log    *slog.Logger
	leases *conduit.ShardLeases
	rec    *conduit.Reconciler
	hooks  WebhookShardKeeper
	cs     *store.ConduitStore

	drain  chan struct{}
	hctx   context.Context // the holders' hard stop
	hstop  context.CancelFunc
	wg     sync.WaitGroup
	closed atomic.Bool // draining: lost leases no longer stop holders at once

	held, patches, downs, disabled *metrics.Counter
	rounds, roundFailures          *metrics.Counter
	heldNow                        *metrics.Gauge

	mu         sync.Mutex
	conduitID  string
	shardCount int
	holders    map[string]*holderState
	result     conduit.Result
	resultErr  string
	resultAt   time.Time
	resultOK   bool
	failedKeys map[string]bool
}

// holderState is one held shard as /readyz shows it.
type holderState struct {
	stop    context.CancelFunc
	recheck chan struct{}
	// drain, closed by letGo, makes the holder stop PATCHing and read its socket
	// only until Twitch shows the shard on another session (HolderOptions.Drain).
	drain     chan struct{}
	drainOnce sync.Once
	session   string
	up        bool
	since     time.Time
	reason    string
}

func newConduitMode(a *App, api ConduitHelix, hooks WebhookShardKeeper, channelIDs []string) *conduitMode {
	cfg, reg := a.cfg, a.reg
	m := &conduitMode{
		a: a, api: api, log: a.log, hooks: hooks, drain: make(chan struct{}),
		holders: map[string]*holderState{}, failedKeys: map[string]bool{},
		held:          reg.Counter("connector_conduit_shard_claims_total", "conduit shard leases taken"),
		patches:       reg.Counter("connector_conduit_shard_patches_total", "conduit shards pointed at a session"),
		downs:         reg.Counter("connector_conduit_shard_downs_total", "conduit shard sockets ended"),
		disabled:      reg.Counter("connector_conduit_shard_disabled_total", "conduit.shard.disabled notifications received"),
		rounds:        reg.Counter("connector_conduit_reconcile_rounds_total", "subscription reconcile rounds run by this instance"),
		roundFailures: reg.Counter("connector_conduit_reconcile_failures_total", "reconcile rounds that failed or left subscriptions failed"),
		heldNow:       reg.Gauge("connector_conduit_shards_held", "conduit shards this instance holds"),
	}
	metrics.ShardsByStatus(reg, m.shardsByStatus)
	m.hctx, m.hstop = context.WithCancel(context.Background())
	cs := store.NewConduitStore(a.deps.Firestore, conduitName, nil)
	m.cs = cs
	m.leases = conduit.NewShardLeases(conduit.ShardLeasesOptions{
		Store: cs, Owner: cfg.InstanceID, TTL: cfg.LeaseTTL, Shards: func() int { return cfg.ConduitShards },
		OnGain: m.gain, OnLose: m.lose, ClaimEvery: standbyClaimEvery, Logger: a.log,
	})
	types := append([]eventsub.TypeVersion{
		{Type: twitch.TypeChannelFollow, Version: twitch.VersionChannelFollow},
		{Type: twitch.TypeChannelUpdate, Version: twitch.VersionChannelUpdate},
	}, cfg.Extra...)
	m.rec = conduit.NewReconciler(conduit.ReconcilerOptions{
		API: api, Channels: store.NewChannels(a.deps.Firestore, nil), Revocations: cs, Leases: cs,
		Owner: cfg.InstanceID, LeaseTTL: cfg.LeaseTTL, ConduitID: m.currentConduit,
		StaticChannels: channelIDs, Types: types, ModeratorUserID: a.deps.BotUserID,
		Fixed: func(id string) []eventsub.Spec {
			return []eventsub.Spec{{Type: typeShardDisabled, Version: "1",
				Condition: map[string]string{"client_id": cfg.Twitch.ClientID, "conduit_id": id}}}
		},
		OnCreateFailed: m.createFailed, OnResult: m.reconciled, Every: cfg.ReconcileEvery, Logger: a.log,
	})
	return m
}

// shardsByStatus counts the shards this instance holds by their state as it last
// saw it: "enabled" while the socket is welcomed and the shard points at it, else
// "down". Summed over instances, the dashboard shows the conduit's shards;
// shards nobody holds are the difference to CONDUIT_SHARDS.
func (m *conduitMode) shardsByStatus() map[string]int64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := map[string]int64{}
	for _, h := range m.holders {
		// Two values only: the reasons are free text, unfit as a metric label (the
		// log and /readyz carry them).
		if h.up {
			out["enabled"]++
		} else {
			out["down"]++
		}
	}
	return out
}

func (m *conduitMode) currentConduit() string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.conduitID
}

// run serves the conduit until ctx ends (SIGTERM), then hands its shard over and
// shuts down within one grace period: the holders drain first (the shard released,
// its socket read until the next holder's PATCH lands), then the relay flushes.
func (m *conduitMode) run(ctx context.Context) error {
	var stopAt atomic.Int64
	unwatch := context.AfterFunc(ctx, func() { stopAt.Store(time.Now().UnixNano()) })
	defer unwatch()
	cfg := m.a.cfg
	var ens conduit.Ensured
	err := m.a.deps.Startup.Do(ctx, "the conduit (Firestore conduits/"+conduitName+", then Helix conduits)",
		firestoreHost(cfg)+", "+cfg.Twitch.APIBaseURL, func(ctx context.Context) error {
			var err error
			ens, err = m.ensure(ctx)
			return err
		})
	if err != nil {
		m.a.shutdown(time.Now().Add(cfg.ShutdownGrace))
		return err
	}
	m.mu.Lock()
	m.conduitID, m.shardCount = ens.Conduit.ID, ens.Conduit.ShardCount
	m.mu.Unlock()
	m.log.Info("connector: conduit mode", "conduitId", ens.Conduit.ID, "shards", ens.Conduit.ShardCount,
		"websocketShards", cfg.ConduitShards, "webhookShards", cfg.ConduitWebhookShards, "created", ens.Created, "grown", ens.Grown)
	m.a.status.Emit("instance", event.StateDisconnected, event.StateConnected, func(e *event.ConnectorStatus) {
		e.Reason = "instance joined"
		e.Details = map[string]any{"conduitId": ens.Conduit.ID, "shards": ens.Conduit.ShardCount}
	})

	lctx, lstop := context.WithCancel(context.Background())
	rctx, rstop := context.WithCancel(context.Background())
	var bg sync.WaitGroup
	bg.Add(3)
	go func() { defer bg.Done(); _ = m.leases.Run(lctx) }()
	go func() { defer bg.Done(); _ = m.rec.Run(rctx) }()
	go func() { defer bg.Done(); m.followConduit(rctx) }()
	<-ctx.Done()

	from := time.Unix(0, stopAt.Load())
	deadline := from.Add(cfg.ShutdownGrace)
	m.closed.Store(true)
	close(m.drain)
	lstop() // releases the leases: a standby claims the shard and PATCHes it
	rstop()
	handover := deadline.Add(-shutdownReserve - cfg.ShutdownGrace/4)
	done := make(chan struct{})
	go func() { m.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(time.Until(handover)):
		m.log.Warn("connector: shard not handed over within the grace; closing its socket",
			"held", m.heldIDs(), "waited", time.Since(from).Round(time.Millisecond).String())
	}
	m.hstop()
	<-done
	bg.Wait()
	m.a.status.Emit("instance", event.StateConnected, event.StateDisconnected, func(e *event.ConnectorStatus) {
		e.Reason = "instance left"
	})
	m.a.shutdown(deadline)
	return nil
}

// gain starts the holder of a newly claimed shard.
func (m *conduitMode) gain(id string, _ store.Lease) {
	hctx, stop := context.WithCancel(m.hctx)
	h := &holderState{stop: stop, recheck: make(chan struct{}, 1), drain: make(chan struct{}), since: time.Now(), reason: "claimed, connecting"}
	go func() { // SIGTERM drains every holder
		select {
		case <-m.drain:
			h.letGo()
		case <-hctx.Done():
		}
	}()
	m.mu.Lock()
	m.holders[id] = h
	conduitID := m.conduitID
	m.mu.Unlock()
	m.held.Inc()
	m.heldNow.Add(1)
	cfg := m.a.cfg
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		err := conduit.RunShard(hctx, conduit.HolderOptions{
			ConduitID: conduitID, ShardID: id, URL: cfg.Twitch.EventSubWSURL, API: m.api, Sink: conduitSink{m},
			Fence:        func(ctx context.Context) error { return m.leases.Fence(ctx, id) },
			OnRevocation: m.revoked,
			OnPatched:    func(sid string) { m.shardUp(id, h, sid) },
			OnDown:       func(reason string) { m.shardDown(id, h, reason) },
			Recheck:      h.recheck, Drain: h.drain, CheckEvery: cfg.ShardCheck, HTTPClient: m.a.deps.HTTPClient, Logger: m.log,
		})
		if err != nil {
			m.log.Warn("connector: conduit shard holder ended", "shard", id, "error", err.Error())
		}
		m.mu.Lock()
		wasUp := h.up
		if m.holders[id] == h {
			delete(m.holders, id)
		}
		m.mu.Unlock()
		m.heldNow.Add(-1)
		stop()
		if wasUp {
			m.emitShard(id, event.StateConnected, event.StateDisconnected, "holder stopped")
		}
	}()
}

// lose lets go of a shard whose lease is gone: its holder no longer PATCHes it, and
// reads its socket on until Twitch shows the shard on another session (the next
// holder's PATCH, or this instance's own when it claims the shard again), as at
// SIGTERM. Closing the socket at once disabled the shard until someone PATCHed it:
// when Firestore stalls for ⅔ of the lease TTL, every instance's renewal is overdue
// at the same moment, every shard was closed together, and Twitch dropped what it
// sent meanwhile (a notification's target and its one retry both down). Reading on
// is safe: Twitch sends a shard's notifications only to the session it points at,
// and the fence keeps a former holder from PATCHing.
func (m *conduitMode) lose(id, reason string) {
	if m.closed.Load() {
		return
	}
	m.mu.Lock()
	h := m.holders[id]
	m.mu.Unlock()
	if h != nil {
		m.log.Warn("connector: conduit shard lease lost; reading its socket until Twitch shows the shard on another session",
			"shard", id, "reason", reason)
		h.letGo()
	}
}

// letGo puts the holder into its hand-over: no more PATCHes, reading until moved.
func (h *holderState) letGo() { h.drainOnce.Do(func() { close(h.drain) }) }

// conduitSink forwards a shard's notifications to the relay (the raw topic, as in
// WebSocket mode) and handles conduit.shard.disabled itself.
type conduitSink struct{ m *conduitMode }

func (s conduitSink) Forward(ctx context.Context, f eventsub.Frame) error {
	if f.SubscriptionType == typeShardDisabled {
		s.m.shardDisabled(f)
		return nil
	}
	return s.m.a.relay.Forward(ctx, f)
}

// shardDisabled handles Twitch's notice that a shard of the conduit was disabled:
// a status event, and, if this instance holds the shard, an immediate status check
// that PATCHes it again (re-association). Another instance's holder finds it on its
// own check.
func (m *conduitMode) shardDisabled(f eventsub.Frame) {
	m.disabled.Inc()
	var n struct {
		Payload struct {
			Event struct {
				ConduitID string `json:"conduit_id"`
				ShardID   string `json:"shard_id"`
				Status    string `json:"status"`
			} `json:"event"`
		} `json:"payload"`
	}
	if err := json.Unmarshal(f.Data, &n); err != nil || n.Payload.Event.ShardID == "" {
		m.log.Error("connector: unreadable conduit.shard.disabled notification; ignored", "messageId", f.MessageID, "error", fmt.Sprint(err))
		return
	}
	ev := n.Payload.Event
	m.log.Warn("connector: Twitch disabled a conduit shard", "conduitId", ev.ConduitID, "shard", ev.ShardID, "status", ev.Status)
	m.emitShard(ev.ShardID, event.StateConnected, event.StateDisconnected, ev.Status)
	m.mu.Lock()
	h := m.holders[ev.ShardID]
	m.mu.Unlock()
	if h != nil {
		select {
		case h.recheck <- struct{}{}:
		default:
		}
	}
}

func (m *conduitMode) heldIDs() []string { return m.leases.Held() }
