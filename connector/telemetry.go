package main

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/bitbrat/twitch-edge/connector/metrics"
	"github.com/bitbrat/twitch-edge/shared/telemetry"
)

// observe exports the registry's series through the app's telemetry and adds the
// series computed from the app's state at each collection: readiness, the buffer's
// fill and the subscriptions by status.
func (a *App) observe() error {
	metrics.SubscriptionsByStatus(a.reg, a.subscriptionsByStatus)
	a.reg.GaugeFunc(metrics.NameReady, "1 while this instance holds the session and is ready (see /readyz).", func() float64 {
		if ok, _ := a.Ready(); ok {
			return 1
		}
		return 0
	})
	a.reg.GaugeFunc(metrics.NameBufferFill, "Share of the relay's in-memory budget in use (bytes with a spill, frames without); at 0.9 the instance reports not ready.", a.bufferFill)
	if a.deps.Telemetry == nil {
		return nil
	}
	if err := a.reg.Export(a.deps.Telemetry.Meter("github.com/bitbrat/twitch-edge/connector")); err != nil {
		return fmt.Errorf("connector metrics: %w", err)
	}
	return nil
}

func (a *App) subscriptionsByStatus() map[string]int64 {
	out := map[string]int64{"enabled": 0, "revoked": 0, "failed": 0}
	st := a.Status()
	seen := make(map[string]bool, len(st.Subscriptions))
	for _, s := range st.Subscriptions {
		seen[s.Key] = true
		status := s.Status
		if _, gone := st.Revoked[s.Key]; gone {
			status = "revoked"
		}
		if status != "" {
			out[status]++
		}
	}
	for k := range st.Revoked {
		if !seen[k] {
			out["revoked"]++
		}
	}
	return out
}

func (a *App) bufferFill() float64 {
	b := a.relay.Backlog()
	if a.cfg.BufferBytes > 0 {
		return float64(b.Bytes) / float64(a.cfg.BufferBytes)
	}
	if a.cfg.Buffer > 0 {
		return float64(b.Frames) / float64(a.cfg.Buffer)
	}
	return 0
}

// metricsHandler serves /metrics from the Prometheus exporter (empty without one).
func metricsHandler(t *telemetry.Telemetry) http.Handler {
	if t != nil && t.Handler() != nil {
		return t.Handler()
	}
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; version=0.0.4")
	})
}

// telemetryFlush bounds the last export at shutdown: Cloud Run allows 10 s after
// SIGTERM, the relay's flush and the lease release spend CONNECTOR_SHUTDOWN_GRACE (8 s)
// of it and the health server's shutdown up to 1 s more.
const telemetryFlush = time.Second

// startTelemetry builds the providers. With an OTLP endpoint they become the
// process's globals, which the Pub/Sub client's tracing reads.
func startTelemetry(ctx context.Context, cfg Config, log *slog.Logger) (*telemetry.Telemetry, error) {
	tel, err := telemetry.Setup(ctx, cfg.Telemetry)
	if err != nil {
		return nil, err
	}
	if cfg.Telemetry.Endpoint != "" {
		tel.Install(log)
		log.Info("connector: exporting metrics and traces over OTLP", "endpoint", cfg.Telemetry.Endpoint,
			"sampleRatio", cfg.Telemetry.SampleRatio, "interval", cfg.Telemetry.ExportInterval.String())
	}
	return tel, nil
}

// stopTelemetry exports what is left, within telemetryFlush.
func stopTelemetry(tel *telemetry.Telemetry, log *slog.Logger) {
	ctx, cancel := context.WithTimeout(context.Background(), telemetryFlush)
	defer cancel()
	if err := tel.Shutdown(ctx); err != nil {
		log.Warn("connector: last telemetry export", "error", err.Error())
	}
}
