package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"cloud.google.com/go/firestore"

	"github.com/bitbrat/twitch-edge/connector/eventsub"
	"github.com/bitbrat/twitch-edge/connector/metrics"
	"github.com/bitbrat/twitch-edge/connector/relay"
	"github.com/bitbrat/twitch-edge/shared/fault"
	"github.com/bitbrat/twitch-edge/shared/store"
	"github.com/bitbrat/twitch-edge/shared/telemetry"
	"github.com/bitbrat/twitch-edge/shared/twitch"
)

// CodeUnknownChannel: a TWITCH_CHANNELS login Twitch does not know.
const CodeUnknownChannel = "UNKNOWN_CHANNEL"

// preloadTimeout bounds reading the revoked subscriptions at take-over.
const preloadTimeout = 5 * time.Second

// leaseKey is the claim that makes one connector instance the session holder.
const leaseKey = "eventsub-lease"

// Lease is what the app needs from the lease store (store.Claims).
type Lease interface {
	Acquire(ctx context.Context, key, owner string, lease time.Duration) (store.Claim, error)
	Release(ctx context.Context, key, owner string) error
}

// UserResolver maps channel logins to user ids (*twitch.Client).
type UserResolver interface {
	GetUsers(ctx context.Context, logins, ids []string) ([]twitch.User, error)
}

// Deps are the app's collaborators, built by main (or a test).
type Deps struct {
	Helix     eventsub.Helix
	Users     UserResolver
	BotUserID string
	Publisher relay.Publisher
	Firestore *firestore.Client
	Log       *slog.Logger
	// HTTPClient dials the WebSocket (nil: default).
	HTTPClient *http.Client
	// Startup runs the start-up calls (nil: a new one logging to Log).
	Startup *Startup
	// AppHelix is Helix with the app access token: required in conduit mode.
	AppHelix ConduitHelix
	// WebhookShards keeps the conduit's webhook shards (conduit mode with
	// CONDUIT_WEBHOOK_SHARDS > 0): conduit.KeepWebhookShards.
	WebhookShards WebhookShardKeeper
	// Telemetry receives the metrics and serves /metrics (nil: recorded, not exported).
	Telemetry *telemetry.Telemetry
}

// App is the connector: lease, EventSub session, relay, health endpoints.
type App struct {
	cfg  Config
	deps Deps
	log  *slog.Logger

	reg    *metrics.Registry
	ms     *eventsub.Metrics
	window *eventsub.Window
	relay  *relay.Relay
	state  *store.ConnectorState
	lease  Lease
	specs  []eventsub.Spec
	hand   *handoff

	handler http.Handler
	// status publishes connector.status.changed events (both modes).
	status *statusEvents
	// conduit is the conduit mode (EVENTSUB_TRANSPORT=conduit); nil in WebSocket mode.
	conduit *conduitMode

	mu      sync.Mutex
	session *eventsub.Session
	holding bool
	// standbyWhy says why this instance does not hold the session.
	standbyWhy string
}

// NewApp resolves the channels and builds the parts. It does not connect yet.
func NewApp(ctx context.Context, cfg Config, d Deps) (*App, error) {
	if d.Startup == nil {
		d.Startup = NewStartup(d.Log)
	}
	if cfg.RevokedRetry == 0 {
		cfg.RevokedRetry = 30 * time.Minute
	}
	if cfg.TokenCheck == 0 {
		cfg.TokenCheck = time.Minute
	}
	var ids []string
	err := d.Startup.Do(ctx, "the channels' user ids (Helix users)", cfg.Twitch.APIBaseURL, func(ctx context.Context) error {
		var err error
		ids, err = resolveChannels(ctx, d.Users, cfg.Twitch.Channels)
		return err
	})
	if err != nil {
		return nil, err
	}
	if d.BotUserID == "" {
		return nil, errors.New("the bot's user id is unknown: set TWITCH_BOT_USER_ID")
	}
	reg := metrics.New()
	a := &App{
		cfg: cfg, deps: d, log: d.Log, reg: reg,
		ms:     eventsub.NewMetrics(reg),
		window: eventsub.NewWindow(200_000),
		state:  store.NewConnectorState(d.Firestore, "eventsub", cfg.InstanceID, nil),
		lease:  store.NewClaims(d.Firestore, store.CollectionConnector, 7*24*time.Hour, nil),
		specs:  eventsub.Specs(ids, d.BotUserID, cfg.Extra),
	}
	a.relay = relay.New(metrics.CountIngress(d.Publisher, reg), relay.Options{
		Topic: cfg.Topics.Raw, DeadLetterTopic: cfg.Topics.DeadLetter, Buffer: cfg.Buffer, Log: d.Log,
		Registry: reg, MaxBytes: cfg.BufferBytes, Spill: store.NewSpill(d.Firestore), Instance: cfg.InstanceID,
	})
	a.hand = newHandoff(a)
	a.status = newStatusEvents(d.Publisher, cfg.Topics.Ingress, cfg.InstanceID, reg, d.Log)
	if cfg.Transport == TransportConduit {
		switch {
		case d.AppHelix == nil:
			return nil, errors.New("conduit mode needs Helix with the app access token (TWITCH_CLIENT_SECRET)")
		case cfg.ConduitWebhookShards > 0 && d.WebhookShards == nil:
			return nil, errors.New("CONDUIT_WEBHOOK_SHARDS > 0 but no webhook-shard keeper was given (Deps.WebhookShards)")
		}
		a.conduit = newConduitMode(a, d.AppHelix, d.WebhookShards, ids)
	}
	a.handler = a.Handler()
	if err := a.observe(); err != nil {
		return nil, err
	}
	a.log.Info("connector: configured", "transport", cfg.Transport, "channels", cfg.Twitch.Channels, "broadcasterIds", ids,
		"subscriptions", len(a.specs), "topic", cfg.Topics.Raw, "instance", cfg.InstanceID)
	return a, nil
}

// resolveChannels turns logins into user ids; numeric entries are ids already (as
// with Twitch's CLI mock server, which has no users endpoint).
func resolveChannels(ctx context.Context, users UserResolver, channels []string) ([]string, error) {
	var logins []string
	ids := make([]string, 0, len(channels))
	for _, c := range channels {
		c = strings.ToLower(strings.TrimPrefix(c, "#"))
		if twitch.IsUserID(c) {
			ids = append(ids, c)
		} else {
			logins = append(logins, c)
		}
	}
	if len(logins) == 0 {
		return ids, nil
	}
	found, err := users.GetUsers(ctx, logins, nil)
	if err != nil {
		return nil, fmt.Errorf("resolve TWITCH_CHANNELS: %w", err)
	}
	byLogin := make(map[string]string, len(found))
	for _, u := range found {
		byLogin[u.Login] = u.ID
	}
	for _, l := range logins {
		id, ok := byLogin[l]
		if !ok {
			return nil, fault.New(fault.Invalid, CodeUnknownChannel, "TWITCH_CHANNELS: no Twitch user with login %q", l)
		}
		ids = append(ids, id)
	}
	return ids, nil
}

// Handler serves /healthz (process alive), /readyz (this instance holds the session,
// is connected and every subscription is enabled) and /metrics.
func (a *App) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		ready, why := a.Ready()
		if !ready {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
		fmt.Fprintln(w, why)
	})
	mux.Handle("GET /metrics", metricsHandler(a.deps.Telemetry))
	return mux
}

// Ready reports readiness and why.
func (a *App) Ready() (bool, string) {
	if a.conduit != nil {
		return a.conduit.ready()
	}
	a.mu.Lock()
	s, holding, why := a.session, a.holding, a.standbyWhy
	a.mu.Unlock()
	if !holding || s == nil {
		if why == "" {
			why = "another instance holds the EventSub session"
		}
		return false, "standby: " + why
	}
	st := s.Status()
	if len(st.Revoked) > 0 && len(st.Revoked) >= len(a.specs) {
		return false, fmt.Sprintf("every subscription is revoked (%s); retrying every %s or when the bot's token changes",
			revokedSummary(st.Revoked), a.cfg.RevokedRetry)
	}
	b := a.relay.Backlog()
	backlog := ""
	if b.Frames > 0 || b.SpillPending > 0 || b.Spilled > 0 {
		backlog = fmt.Sprintf("; backlog %d frames (%d bytes) in memory, %d on their way to the spill, %d spilled",
			b.Frames, b.Bytes, b.SpillPending, b.Spilled)
	}
	switch {
	case !st.Connected:
		return false, "not connected" + backlog
	case !st.Ready:
		return false, "connected, subscriptions not all enabled" + backlog
	case b.NearLimit:
		return false, "relay backlog near its limit (Pub/Sub and Firestore behind)" + backlog
	}
	return true, "ready: session " + st.SessionID + backlog
}

// Status is the current session's status (zero when standing by).
func (a *App) Status() eventsub.Status {
	a.mu.Lock()
	s := a.session
	a.mu.Unlock()
	if s == nil {
		return eventsub.Status{}
	}
	return s.Status()
}

// Relay exposes the relay (for load reports).
func (a *App) Relay() *relay.Relay { return a.relay }

// Metrics exposes the session counters.
func (a *App) Metrics() *eventsub.Metrics { return a.ms }

// Run holds the session while this instance holds the lease, until ctx ends; then it
// flushes the relay within the shutdown grace and releases the lease.
func (a *App) Run(ctx context.Context) error {
	if a.conduit != nil {
		return a.conduit.run(ctx)
	}
	// One shutdown deadline, counted from the moment ctx ends (SIGTERM): the session's
	// own wind-down spends from the same grace period as the flush.
	var stopAt atomic.Int64
	unwatch := context.AfterFunc(ctx, func() { stopAt.Store(time.Now().UnixNano()) })
	defer func() {
		unwatch()
		from := time.Now()
		if at := stopAt.Load(); at != 0 {
			from = time.Unix(0, at)
		}
		a.shutdown(from.Add(a.cfg.ShutdownGrace))
	}()
	stopHandoff := a.hand.start(ctx)
	for ctx.Err() == nil {
		acquired, err := a.waitForLease(ctx)
		if err != nil {
			break
		}
		a.holdSession(ctx, acquired)
	}
	stopHandoff()
	return nil
}

// holdSession runs one session for as long as the lease is renewed.
func (a *App) holdSession(ctx context.Context, acquired time.Time) {
	// Outlives ctx by the make-before-break hand-off (handoff.go).
	sctx, cancel := a.hand.sessionContext(ctx)
	defer cancel()
	// Renewal runs from the moment the lease is held: the start-up reads below may be
	// slow (or Firestore may hang), and fencing must not wait for it.
	renewed := make(chan struct{})
	go func() { defer close(renewed); a.renewLease(sctx, cancel, acquired) }()
	defer func() { cancel(); <-renewed }()
	s, run := a.hand.takeEarly() // opened before this instance held the lease
	if s == nil {
		if sctx.Err() != nil {
			return
		}
		s = a.newSession(sctx)
		run = func(ctx context.Context) { _ = s.Run(ctx) }
	}
	go a.watchToken(sctx, s)
	watched := make(chan struct{})
	go func() { defer close(watched); a.watchSession(sctx, s) }()
	defer func() { cancel(); <-watched }()
	a.mu.Lock()
	a.session, a.holding = s, true
	a.mu.Unlock()
	defer func() {
		a.mu.Lock()
		a.holding = false
		a.mu.Unlock()
	}()
	run(sctx)
}

// newSession builds an EventSub session (not yet running).
func (a *App) newSession(ctx context.Context) *eventsub.Session {
	return eventsub.New(eventsub.Options{
		URL: a.cfg.Twitch.EventSubWSURL, Specs: a.specs, Helix: a.deps.Helix, Sink: a.relay,
		State: stateAdapter{a.state}, Window: a.window, Log: a.log, Metrics: a.ms,
		KeepaliveGrace: a.cfg.KeepaliveGrace, HTTPClient: a.deps.HTTPClient,
		Revoked: a.loadRevoked(ctx), RevokedRetry: a.cfg.RevokedRetry, Overlap: a.hand.ov,
	})
}

// shutdown runs after the session has stopped reading, against one deadline. The
// relay goes first and gets most of it: what it publishes is what Twitch will not send
// again. Then the lease is released (a standby takes over at once rather than at the
// lease's expiry).
func (a *App) shutdown(deadline time.Time) {
	rctx, rcancel := context.WithDeadline(context.Background(), deadline.Add(-shutdownReserve))
	if err := a.relay.Close(rctx); err != nil {
		a.log.Error("connector: shutdown", "error", err.Error())
	}
	rcancel()
	sctx, scancel := context.WithDeadline(context.Background(), deadline.Add(-shutdownReserve*2/3))
	a.status.Close(sctx)
	scancel()
	lctx, lcancel := context.WithDeadline(context.Background(), deadline.Add(-shutdownReserve/3))
	if err := a.lease.Release(lctx, leaseKey, a.cfg.InstanceID); err != nil {
		a.log.Warn("connector: release lease", "host", firestoreHost(a.cfg), "error", err.Error())
	}
	lcancel()
	a.log.Info("connector: stopped", "published", a.relay.Published(),
		"overDeadline", max(0, time.Since(deadline)).Round(time.Millisecond).String())
}

// shutdownReserve is the part of the shutdown grace kept for the lease release after
// the relay's flush.
const shutdownReserve = 1500 * time.Millisecond

// stateAdapter records session state in Firestore.
type stateAdapter struct{ s *store.ConnectorState }

func (s stateAdapter) SessionStarted(ctx context.Context, id string, at time.Time) error {
	return s.s.SessionStarted(ctx, id, at)
}

func (s stateAdapter) SubscriptionChanged(ctx context.Context, st eventsub.SubscriptionState) error {
	return s.s.SaveSubscription(ctx, store.Subscription{
		Key: st.Key, ID: st.ID, Type: st.Type, Version: st.Version, Condition: st.Condition,
		SessionID: st.SessionID, Status: st.Status, Reason: st.Reason, UpdatedAt: st.UpdatedAt,
	})
}
