// Command connector is the always-on holder of the Twitch EventSub WebSocket. It
// keeps the configured subscriptions alive across keepalive loss, session_reconnect,
// revocations and restarts, and forwards every notification, unchanged, to the raw
// Pub/Sub topic. One instance holds the session at a time (a Firestore lease); others
// stand by. It serves /healthz, /readyz and /metrics on $PORT and stops cleanly on
// SIGTERM, flushing pending publishes and releasing the lease.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/bitbrat/twitch-edge/shared/config"
	"github.com/bitbrat/twitch-edge/shared/logging"
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
	log := logging.New(os.Stdout, cfg.Common.LogLevel, "connector", logging.TraceProject(cfg.Common.Project))
	return Main(ctx, cfg, log)
}
