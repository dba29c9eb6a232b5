package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync/atomic"
	"time"

	"cloud.google.com/go/firestore"

	"github.com/bitbrat/twitch-edge/connector/conduit"
	"github.com/bitbrat/twitch-edge/shared/bus"
	"github.com/bitbrat/twitch-edge/shared/store"
	"github.com/bitbrat/twitch-edge/shared/telemetry"
	"github.com/bitbrat/twitch-edge/shared/twitch"
	"github.com/bitbrat/twitch-edge/shared/twitchclient"
)

// Main runs the connector until ctx ends (SIGTERM). The health server comes first,
// before any call to another system, so that a start-up stuck on Firestore or Twitch
// is visible: /healthz answers, /readyz says what start-up waits for, and the log
// says it too.
func Main(ctx context.Context, cfg Config, log *slog.Logger) error {
	tel, err := startTelemetry(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer stopTelemetry(tel, log)
	start := NewStartup(log)
	h := &health{start: start, tel: tel}
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return fmt.Errorf("health server: %w", err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
	srvErr := make(chan error, 1)
	go func() { srvErr <- srv.Serve(ln) }()
	defer func() {
		sctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	log.Info("connector: serving health and metrics", "addr", ln.Addr().String())

	err = start.serve(ctx, cfg, log, h, tel)
	if err != nil && ctx.Err() != nil && errors.Is(err, context.Canceled) {
		log.Info("connector: stopped during start-up", "error", err.Error())
		return nil
	}
	return err
}

// serve builds the clients and the app, each start-up call through s, and runs the
// app until ctx ends.
func (s *Startup) serve(ctx context.Context, cfg Config, log *slog.Logger, h *health, tel *telemetry.Telemetry) error {
	// The clients connect lazily: building them does no I/O.
	ps, err := bus.NewClient(ctx, cfg.Common.Project, bus.WithEmulator(cfg.PubSubEmulator),
		bus.WithTracing(cfg.Telemetry.Endpoint != ""))
	if err != nil {
		return err
	}
	defer closeWithin(log, "the Pub/Sub client", func() { _ = ps.Close() })
	fs, err := store.NewClient(ctx, cfg.Common.Project, cfg.Common.Database, store.WithEmulator(cfg.FirestoreEmulator))
	if err != nil {
		return err
	}
	defer closeWithin(log, "the Firestore client", func() { _ = fs.Close() })
	ins, err := telemetry.NewInstruments(tel.Meter("github.com/bitbrat/twitch-edge/connector"))
	if err != nil {
		return fmt.Errorf("connector instruments: %w", err)
	}
	var tw *twitchclient.Twitch
	err = s.Do(ctx, "the bot's token (Firestore oauth/twitch/bot/token, then Twitch validation)",
		firestoreHost(cfg)+", "+cfg.Twitch.AuthBaseURL, func(ctx context.Context) error {
			var err error
			tw, err = twitchclient.New(ctx, cfg.Twitch, fs, cfg.InstanceID, log, twitchclient.WithTelemetry(tel, ins))
			return err
		})
	if err != nil {
		return err
	}
	pub := bus.NewPublisher(ps, nil)
	// By the time this runs the app has flushed or spilled every frame within its
	// shutdown deadline; what the publisher still holds is also in the spill.
	defer closeWithin(log, "the Pub/Sub publisher's flush", pub.Close)
	deps := Deps{
		Helix: tw.Client, Users: tw.Client, BotUserID: tw.BotUserID, Publisher: pub, Firestore: fs, Log: log,
		Startup: s, Telemetry: tel,
	}
	if cfg.Transport == TransportConduit {
		api, err := appHelix(cfg, fs, tw, log)
		if err != nil {
			return err
		}
		deps.AppHelix = api
		deps.WebhookShards = func(ctx context.Context, conduitID string, ids []string) ([]string, error) {
			return conduit.KeepWebhookShards(ctx, api, conduitID, conduit.WebhookShards{
				IDs: ids, Callback: cfg.WebhookCallback, Secret: cfg.WebhookSecret.Reveal()})
		}
	}
	app, err := NewApp(ctx, cfg, deps)
	if err != nil {
		return err
	}
	h.app.Store(app)
	return app.Run(ctx)
}

// closeTimeout bounds each client's Close at exit: with Pub/Sub or Firestore frozen,
// a Close waits on the server (a publisher's flush for its publish timeout), and the
// process would outlive its shutdown deadline until Cloud Run kills it.
const closeTimeout = time.Second

// closeWithin runs stop, waiting at most closeTimeout; past it, it logs what it
// abandons and returns (the process is exiting).
func closeWithin(log *slog.Logger, what string, stop func()) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		stop()
	}()
	select {
	case <-done:
	case <-time.After(closeTimeout):
		log.Warn("connector: not waiting longer to close "+what+" at exit", "waited", closeTimeout.String())
	}
}

// appHelix is Helix with the app access token (client-credentials grant, shared
// by every instance through Firestore), for conduit mode.
func appHelix(cfg Config, fs *firestore.Client, tw *twitchclient.Twitch, log *slog.Logger) (*twitch.Client, error) {
	apps, err := twitch.NewAppTokenProvider(twitch.AppTokenProviderOptions{
		Store: store.NewAppTokenStore(fs), OAuth: tw.OAuth, Holder: cfg.InstanceID, Logger: log,
	})
	if err != nil {
		return nil, fmt.Errorf("conduit mode: %w", err)
	}
	return twitch.NewClient(twitch.Options{
		APIBaseURL: cfg.Twitch.APIBaseURL, AuthBaseURL: cfg.Twitch.AuthBaseURL,
		EventSubSubscriptionsURL: cfg.Twitch.EventSubSubscriptionsURL, ClientID: cfg.Twitch.ClientID,
		HTTPClient: &http.Client{Timeout: 30 * time.Second}, AppTokens: apps, Logger: log,
	}), nil
}

// firestoreHost names the Firestore endpoint for logs.
func firestoreHost(cfg Config) string {
	if cfg.FirestoreEmulator != "" {
		return "Firestore emulator " + cfg.FirestoreEmulator
	}
	return "firestore.googleapis.com"
}

// health serves /healthz, /readyz and /metrics from the process's first moment; until
// the app exists, /readyz reports the pending start-up step.
type health struct {
	start *Startup
	tel   *telemetry.Telemetry
	app   atomic.Pointer[App]
}

func (h *health) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if a := h.app.Load(); a != nil {
		a.handler.ServeHTTP(w, r)
		return
	}
	switch r.URL.Path {
	case "/healthz":
		fmt.Fprintln(w, "ok")
	case "/readyz":
		why := h.start.Pending()
		if why == "" {
			why = "starting"
		}
		w.WriteHeader(http.StatusServiceUnavailable)
		fmt.Fprintln(w, why)
	case "/metrics":
		metricsHandler(h.tel).ServeHTTP(w, r)
	default:
		http.NotFound(w, r)
	}
}
