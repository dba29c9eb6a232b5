package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"cloud.google.com/go/firestore"

	"github.com/bitbrat/twitch-edge/connector/eventsub"
	"github.com/bitbrat/twitch-edge/connector/metrics"
	"github.com/bitbrat/twitch-edge/connector/relay"
	"github.com/bitbrat/twitch-edge/shared/store"
	"github.com/bitbrat/twitch-edge/shared/twitch"
)

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
	ledger *store.ForwardedLedger
	state  *store.ConnectorState
	lease  Lease
	specs  []eventsub.Spec

	mu       sync.Mutex
	session  *eventsub.Session
	holding  bool
	listener net.Listener
}

// NewApp resolves the channels and builds the parts. It does not connect yet.
func NewApp(ctx context.Context, cfg Config, d Deps) (*App, error) {
	ids, err := resolveChannels(ctx, d.Users, cfg.Twitch.Channels)
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
		ledger: store.NewForwardedLedger(d.Firestore, 24*time.Hour, d.Log),
		state:  store.NewConnectorState(d.Firestore, "eventsub", cfg.InstanceID, nil),
		lease:  store.NewClaims(d.Firestore, store.CollectionConnector, 7*24*time.Hour, nil),
		specs:  eventsub.Specs(ids, d.BotUserID, cfg.Extra),
	}
	a.relay = relay.New(d.Publisher, relay.Options{
		Topic: cfg.Topics.Raw, Buffer: cfg.Buffer, Recorder: a.ledger, Log: d.Log, Registry: reg,
	})
	a.log.Info("connector: configured", "channels", cfg.Twitch.Channels, "broadcasterIds", ids,
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
			return nil, fmt.Errorf("TWITCH_CHANNELS: no Twitch user with login %q", l)
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
	mux.HandleFunc("GET /metrics", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; version=0.0.4")
		a.reg.Write(w)
	})
	return mux
}

// Ready reports readiness and why.
func (a *App) Ready() (bool, string) {
	a.mu.Lock()
	s, holding := a.session, a.holding
	a.mu.Unlock()
	if !holding || s == nil {
		return false, "standby: another instance holds the EventSub session"
	}
	st := s.Status()
	switch {
	case !st.Connected:
		return false, "not connected"
	case !st.Ready:
		return false, "connected, subscriptions not all enabled"
	}
	return true, "ready: session " + st.SessionID
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
	defer a.shutdown()
	for ctx.Err() == nil {
		if err := a.waitForLease(ctx); err != nil {
			break
		}
		a.holdSession(ctx)
	}
	return nil
}

func (a *App) waitForLease(ctx context.Context) error {
	for {
		c, err := a.lease.Acquire(ctx, leaseKey, a.cfg.InstanceID, a.cfg.LeaseTTL)
		if err == nil && c.State == store.Acquired {
			a.log.Info("connector: lease acquired, holding the EventSub session", "instance", a.cfg.InstanceID, "attempt", c.Attempts)
			return nil
		}
		// Standbys look often: after a clean hand-off (the holder released the lease)
		// the gap without a session is at most this.
		wait := min(a.cfg.LeaseTTL/3, 2*time.Second)
		if err != nil {
			a.log.Warn("connector: lease check failed", "error", err.Error())
		} else {
			a.log.Info("connector: standing by, lease held by another instance", "holder", c.Owner,
				"until", c.LeaseUntil.Format(time.RFC3339))
			if d := time.Until(c.LeaseUntil); d > 0 && d < wait {
				wait = d + 50*time.Millisecond
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(wait):
		}
	}
}

// holdSession runs one session for as long as the lease is renewed.
func (a *App) holdSession(ctx context.Context) {
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	a.preloadWindow(sctx)
	s := eventsub.New(eventsub.Options{
		URL: a.cfg.Twitch.EventSubWSURL, Specs: a.specs, Helix: a.deps.Helix, Sink: a.relay,
		State: stateAdapter{a.state}, Window: a.window, Log: a.log, Metrics: a.ms,
		KeepaliveGrace: a.cfg.KeepaliveGrace, HTTPClient: a.deps.HTTPClient,
	})
	a.mu.Lock()
	a.session, a.holding = s, true
	a.mu.Unlock()
	defer func() {
		a.mu.Lock()
		a.holding = false
		a.mu.Unlock()
	}()
	go a.renewLease(sctx, cancel)
	_ = s.Run(sctx)
}

// renewLease renews every third of the TTL; losing it stops the session at once, so
// two instances never hold sessions together for long.
func (a *App) renewLease(ctx context.Context, lost context.CancelFunc) {
	t := time.NewTicker(a.cfg.LeaseTTL / 3)
	defer t.Stop()
	lastOK := time.Now()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		c, err := a.lease.Acquire(ctx, leaseKey, a.cfg.InstanceID, a.cfg.LeaseTTL)
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			// Without a renewal the lease runs out and a standby may take over: stop
			// holding the session before that can happen (fencing), not after.
			if time.Since(lastOK) > a.cfg.LeaseTTL*2/3 {
				a.log.Error("connector: lease could not be renewed in time, dropping the session", "error", err.Error())
				lost()
				return
			}
			a.log.Warn("connector: lease renewal failed; will retry", "error", err.Error())
			continue
		}
		if c.State != store.Acquired {
			a.log.Error("connector: lease lost to another instance, dropping the session", "holder", c.Owner)
			lost()
			return
		}
		lastOK = time.Now()
	}
}

// preloadWindow remembers the ids forwarded in the last ten minutes (by this or a
// previous instance), so a restart does not forward a redelivery again.
func (a *App) preloadWindow(ctx context.Context) {
	ids, ats, err := a.ledger.Recent(ctx, time.Now().Add(-eventsub.MaxMessageAge))
	if err != nil {
		a.log.Warn("connector: could not load recently forwarded ids", "error", err.Error())
		return
	}
	for i, id := range ids {
		a.window.Remember(id, ats[i])
	}
	if len(ids) > 0 {
		a.log.Info("connector: remembered recently forwarded notifications", "count", len(ids))
	}
}

// shutdown runs after the session has stopped reading. The lease goes first, so that
// a standby can take over while this instance flushes what it already read; then the
// relay gets what is left of the grace period, and the ledger the rest.
func (a *App) shutdown() {
	deadline := time.Now().Add(a.cfg.ShutdownGrace)
	lctx, lcancel := context.WithTimeout(context.Background(), min(2*time.Second, a.cfg.ShutdownGrace/4))
	if err := a.lease.Release(lctx, leaseKey, a.cfg.InstanceID); err != nil {
		a.log.Warn("connector: release lease", "error", err.Error())
	}
	lcancel()
	rctx, rcancel := context.WithDeadline(context.Background(), deadline.Add(-time.Second))
	if err := a.relay.Close(rctx); err != nil {
		a.log.Error("connector: shutdown", "error", err.Error())
	}
	rcancel()
	a.ledger.Close()
	a.log.Info("connector: stopped", "published", a.relay.Published())
}

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
