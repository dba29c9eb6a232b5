package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sort"
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
	"github.com/bitbrat/twitch-edge/shared/twitch"
)

// CodeUnknownChannel: a TWITCH_CHANNELS login Twitch does not know.
const CodeUnknownChannel = "UNKNOWN_CHANNEL"

// preloadTimeout bounds reading the recently forwarded ids at take-over.
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

	handler http.Handler

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
		ledger: store.NewForwardedLedger(d.Firestore, 24*time.Hour, d.Log),
		state:  store.NewConnectorState(d.Firestore, "eventsub", cfg.InstanceID, nil),
		lease:  store.NewClaims(d.Firestore, store.CollectionConnector, 7*24*time.Hour, nil),
		specs:  eventsub.Specs(ids, d.BotUserID, cfg.Extra),
	}
	a.relay = relay.New(d.Publisher, relay.Options{
		Topic: cfg.Topics.Raw, DeadLetterTopic: cfg.Topics.DeadLetter, Buffer: cfg.Buffer, Recorder: a.ledger, Log: d.Log,
		Registry: reg, MaxBytes: cfg.BufferBytes, Spill: store.NewSpill(d.Firestore), Instance: cfg.InstanceID,
	})
	a.handler = a.Handler()
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
	mux.HandleFunc("GET /metrics", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; version=0.0.4")
		a.reg.Write(w)
	})
	return mux
}

// Ready reports readiness and why.
func (a *App) Ready() (bool, string) {
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
	for ctx.Err() == nil {
		acquired, err := a.waitForLease(ctx)
		if err != nil {
			break
		}
		a.holdSession(ctx, acquired)
	}
	return nil
}

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

// holdSession runs one session for as long as the lease is renewed.
func (a *App) holdSession(ctx context.Context, acquired time.Time) {
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	// Renewal runs from the moment the lease is held: the preload below may be slow
	// (or Firestore may hang), and fencing must not wait for it.
	renewed := make(chan struct{})
	go func() { defer close(renewed); a.renewLease(sctx, cancel, acquired) }()
	defer func() { cancel(); <-renewed }()
	a.preloadWindow(sctx)
	if sctx.Err() != nil {
		return
	}
	s := eventsub.New(eventsub.Options{
		URL: a.cfg.Twitch.EventSubWSURL, Specs: a.specs, Helix: a.deps.Helix, Sink: a.relay,
		State: stateAdapter{a.state}, Window: a.window, Log: a.log, Metrics: a.ms,
		KeepaliveGrace: a.cfg.KeepaliveGrace, HTTPClient: a.deps.HTTPClient,
		Revoked: a.loadRevoked(sctx), RevokedRetry: a.cfg.RevokedRetry,
	})
	go a.watchToken(sctx, s)
	a.mu.Lock()
	a.session, a.holding = s, true
	a.mu.Unlock()
	defer func() {
		a.mu.Lock()
		a.holding = false
		a.mu.Unlock()
	}()
	_ = s.Run(sctx)
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

// preloadWindow remembers the ids forwarded in the last ten minutes (by this or a
// previous instance), so a restart does not forward a redelivery again.
func (a *App) preloadWindow(ctx context.Context) {
	// Bounded: without the preload a restart may forward a redelivery once more, which
	// Normalize's ledger catches; without a session, Twitch's traffic is lost.
	ctx, cancel := context.WithTimeout(ctx, preloadTimeout)
	defer cancel()
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

// shutdown runs after the session has stopped reading, against one deadline. The
// relay goes first and gets most of it: what it publishes is what Twitch will not send
// again. Then the lease is released (a standby takes over at once rather than at the
// lease's expiry), and the ledger gets what is left.
func (a *App) shutdown(deadline time.Time) {
	rctx, rcancel := context.WithDeadline(context.Background(), deadline.Add(-shutdownReserve))
	if err := a.relay.Close(rctx); err != nil {
		a.log.Error("connector: shutdown", "error", err.Error())
	}
	rcancel()
	lctx, lcancel := context.WithDeadline(context.Background(), deadline.Add(-shutdownReserve/3))
	if err := a.lease.Release(lctx, leaseKey, a.cfg.InstanceID); err != nil {
		a.log.Warn("connector: release lease", "host", firestoreHost(a.cfg), "error", err.Error())
	}
	lcancel()
	dctx, dcancel := context.WithDeadline(context.Background(), deadline)
	a.ledger.Close(dctx)
	dcancel()
	a.log.Info("connector: stopped", "published", a.relay.Published(),
		"overDeadline", max(0, time.Since(deadline)).Round(time.Millisecond).String())
}

// shutdownReserve is the part of the shutdown grace kept for the lease release and the
// ledger after the relay's flush.
const shutdownReserve = 1500 * time.Millisecond

// loadRevoked reads the subscriptions an earlier instance recorded as revoked for
// good, so that a restart does not ask Twitch for them again at once.
func (a *App) loadRevoked(ctx context.Context) map[string]string {
	ctx, cancel := context.WithTimeout(ctx, preloadTimeout)
	defer cancel()
	subs, err := a.state.Subscriptions(ctx)
	if err != nil {
		a.log.Warn("connector: could not read recorded revocations", "host", firestoreHost(a.cfg), "error", err.Error())
		return nil
	}
	known := make(map[string]bool, len(a.specs))
	for _, sp := range a.specs {
		known[sp.Key()] = true
	}
	out := map[string]string{}
	for _, sub := range subs {
		if known[sub.Key] && eventsub.PermanentRevocation(sub.Status) {
			out[sub.Key] = sub.Status
		}
	}
	if len(out) > 0 {
		a.log.Warn("connector: subscriptions revoked earlier are not requested until the retry or a new token",
			"count", len(out), "retryEvery", a.cfg.RevokedRetry.String())
	}
	return out
}

// watchToken tells the session when the bot's token document changes (someone
// re-authorized): revoked subscriptions are worth trying again then.
func (a *App) watchToken(ctx context.Context, s *eventsub.Session) {
	tokens := store.NewTokenStore(a.deps.Firestore)
	last := ""
	t := time.NewTicker(a.cfg.TokenCheck)
	defer t.Stop()
	for first := true; ; first = false {
		tctx, cancel := context.WithTimeout(ctx, a.cfg.TokenCheck)
		tok, err := tokens.LoadToken(tctx, twitch.RoleBot)
		cancel()
		if err == nil {
			sum := sha256.Sum256([]byte(tok.AccessToken))
			fp := hex.EncodeToString(sum[:])
			if !first && fp != last {
				a.log.Info("connector: the bot's token changed; retrying revoked subscriptions")
				s.RetryRevoked()
			}
			last = fp
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func revokedSummary(revoked map[string]string) string {
	reasons := map[string]int{}
	for _, r := range revoked {
		reasons[r]++
	}
	parts := make([]string, 0, len(reasons))
	for r, n := range reasons {
		parts = append(parts, fmt.Sprintf("%d %s", n, r))
	}
	sort.Strings(parts)
	return strings.Join(parts, ", ")
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
