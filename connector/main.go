// Command connector is the always-on holder of the Twitch EventSub WebSocket. It
// keeps the configured subscriptions alive across keepalive loss, session_reconnect,
// revocations and restarts, and forwards every notification, unchanged, to the raw
// Pub/Sub topic. One instance holds the session at a time (a Firestore lease); others
// stand by. It serves /healthz, /readyz and /metrics on $PORT and stops cleanly on
// SIGTERM, flushing pending publishes and releasing the lease.
package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/bitbrat/twitch-edge/shared/bus"
	"github.com/bitbrat/twitch-edge/shared/config"
	"github.com/bitbrat/twitch-edge/shared/logging"
	"github.com/bitbrat/twitch-edge/shared/store"
	"github.com/bitbrat/twitch-edge/shared/twitchclient"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "connector:", err)
		os.Exit(1)
	}
}

func run() error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	cfg, err := ReadConfig(config.Env())
	if err != nil {
		return fmt.Errorf("configuration: %w", err)
	}
	log := logging.New(os.Stdout, cfg.Common.LogLevel, "connector")

	ps, err := bus.NewClient(ctx, cfg.Common.Project)
	if err != nil {
		return err
	}
	defer ps.Close()
	fs, err := store.NewClient(ctx, cfg.Common.Project, cfg.Common.Database)
	if err != nil {
		return err
	}
	defer fs.Close()
	tw, err := twitchclient.New(ctx, cfg.Twitch, fs, cfg.InstanceID, log)
	if err != nil {
		return err
	}
	pub := bus.NewPublisher(ps, nil)
	defer pub.Close()

	app, err := NewApp(ctx, cfg, Deps{
		Helix: tw.Client, Users: tw.Client, BotUserID: tw.BotUserID, Publisher: pub, Firestore: fs, Log: log,
	})
	if err != nil {
		return err
	}
	srv := &http.Server{Addr: cfg.Addr, Handler: app.Handler(), ReadHeaderTimeout: 5 * time.Second}
	srvErr := make(chan error, 1)
	go func() { srvErr <- srv.ListenAndServe() }()
	log.Info("connector: serving health and metrics", "addr", cfg.Addr)

	runErr := make(chan error, 1)
	go func() { runErr <- app.Run(ctx) }()
	select {
	case err := <-srvErr:
		stop()
		<-runErr
		return fmt.Errorf("health server: %w", err)
	case err := <-runErr:
		sctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
		if err != nil && !errors.Is(err, context.Canceled) {
			return err
		}
		log.Info("connector: bye")
		return nil
	}
}
