// Package telemetry sets up OpenTelemetry for the connector and the functions: one
// MeterProvider and one TracerProvider per process, exported with OTLP over gRPC when
// an endpoint is configured (Google's Telemetry API, telemetry.googleapis.com, in the
// cloud; a local or test receiver otherwise), and a Prometheus /metrics handler
// through the OpenTelemetry Prometheus exporter for local runs. It also names the
// instruments the functions share (instruments.go) and instruments HTTP clients
// (transport.go).
package telemetry

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	promclient "github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlpmetric/otlpmetricgrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	otelprom "go.opentelemetry.io/otel/exporters/prometheus"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/propagation"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/credentials/oauth"

	"github.com/bitbrat/twitch-edge/shared/config"
)

// GoogleEndpoint is Google Cloud's OTLP endpoint (the Telemetry API).
const GoogleEndpoint = "https://telemetry.googleapis.com"

// Config says where telemetry goes.
type Config struct {
	// Service is service.name ("connector", "functions").
	Service string
	// Instance is service.instance.id: each process's series stay apart.
	Instance string
	// Project is the Google Cloud project: gcp.project_id on every resource (the
	// Telemetry API files data under it) and the trace resource names in log lines.
	Project string
	// Endpoint is the OTLP gRPC endpoint URL; empty: no OTLP export. http:// is
	// plain gRPC without credentials (a local or test receiver); https:// is TLS with
	// the Application Default Credentials when the host is Google's.
	Endpoint string
	// SampleRatio is the share of new traces sampled (0..1). Spans that continue a
	// trace follow the parent's decision, so a trace is kept whole or not at all.
	SampleRatio float64
	// ExportInterval is how often metrics are pushed over OTLP.
	ExportInterval time.Duration
	// Prometheus serves the metrics on Handler() for scraping (`make run`).
	Prometheus bool
}

// ReadConfig reads the telemetry settings; service and instance come from the caller.
func ReadConfig(r *config.Reader, project, service, instance string) Config {
	c := Config{
		Service: service, Instance: instance, Project: project,
		Endpoint:       r.URL("OTEL_EXPORTER_OTLP_ENDPOINT", "", "http", "https"),
		SampleRatio:    0.1,
		ExportInterval: time.Duration(r.Int("OTEL_METRIC_EXPORT_INTERVAL", 60000, 1000, 3_600_000)) * time.Millisecond,
	}
	if s := r.String("OTEL_TRACES_SAMPLER_ARG", ""); s != "" {
		f, err := strconv.ParseFloat(s, 64)
		if err != nil || f < 0 || f > 1 {
			r.Invalid("OTEL_TRACES_SAMPLER_ARG", fmt.Errorf("%q is not a ratio between 0 and 1", s))
		} else {
			c.SampleRatio = f
		}
	}
	return c
}

// Telemetry is a process's providers.
type Telemetry struct {
	Meters  *sdkmetric.MeterProvider
	Tracers *sdktrace.TracerProvider
	// Propagator carries trace context across Pub/Sub attributes and HTTP headers
	// (W3C traceparent).
	Propagator propagation.TextMapPropagator
	project    string
	prom       http.Handler
	conn       *grpc.ClientConn
}

// Setup builds the providers. It does no I/O: the gRPC connection dials lazily, so a
// function's cold start does not wait for the endpoint.
func Setup(ctx context.Context, c Config) (*Telemetry, error) {
	res := resource.NewSchemaless(
		attribute.String("service.name", c.Service),
		attribute.String("service.instance.id", c.Instance),
		attribute.String("gcp.project_id", c.Project),
	)
	t := &Telemetry{project: c.Project, Propagator: propagation.TraceContext{}}
	mopts := []sdkmetric.Option{sdkmetric.WithResource(res)}
	topts := []sdktrace.TracerProviderOption{
		sdktrace.WithResource(res),
		sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.TraceIDRatioBased(c.SampleRatio))),
	}
	if c.Prometheus {
		reg := promclient.NewRegistry()
		exp, err := otelprom.New(otelprom.WithRegisterer(reg), otelprom.WithoutScopeInfo())
		if err != nil {
			return nil, fmt.Errorf("telemetry: prometheus exporter: %w", err)
		}
		mopts = append(mopts, sdkmetric.WithReader(exp))
		t.prom = promhttp.HandlerFor(reg, promhttp.HandlerOpts{})
	}
	if c.Endpoint != "" {
		conn, err := dial(ctx, c.Endpoint)
		if err != nil {
			return nil, err
		}
		t.conn = conn
		mexp, err := otlpmetricgrpc.New(ctx, otlpmetricgrpc.WithGRPCConn(conn),
			otlpmetricgrpc.WithTimeout(10*time.Second))
		if err != nil {
			return nil, fmt.Errorf("telemetry: otlp metric exporter: %w", err)
		}
		texp, err := otlptracegrpc.New(ctx, otlptracegrpc.WithGRPCConn(conn),
			otlptracegrpc.WithTimeout(10*time.Second))
		if err != nil {
			return nil, fmt.Errorf("telemetry: otlp trace exporter: %w", err)
		}
		interval := c.ExportInterval
		if interval <= 0 {
			interval = time.Minute
		}
		mopts = append(mopts, sdkmetric.WithReader(sdkmetric.NewPeriodicReader(mexp,
			sdkmetric.WithInterval(interval), sdkmetric.WithTimeout(10*time.Second))))
		topts = append(topts, sdktrace.WithBatcher(texp))
	}
	t.Meters = sdkmetric.NewMeterProvider(mopts...)
	t.Tracers = sdktrace.NewTracerProvider(topts...)
	return t, nil
}

// dial opens the lazily connecting gRPC client for endpoint.
func dial(ctx context.Context, endpoint string) (*grpc.ClientConn, error) {
	u, err := url.Parse(endpoint)
	if err != nil || u.Host == "" {
		return nil, fmt.Errorf("telemetry: OTEL_EXPORTER_OTLP_ENDPOINT %q is not a URL", endpoint)
	}
	host := u.Host
	var opts []grpc.DialOption
	if u.Scheme == "http" {
		opts = append(opts, grpc.WithTransportCredentials(insecure.NewCredentials()))
	} else {
		if u.Port() == "" {
			host += ":443"
		}
		opts = append(opts, grpc.WithTransportCredentials(credentials.NewClientTLSFromCert(nil, "")))
		if strings.HasSuffix(u.Hostname(), ".googleapis.com") {
			// Reading the credentials does no network I/O on Cloud Run (the metadata
			// server is asked for a token on the first export).
			creds, err := oauth.NewApplicationDefault(ctx, "https://www.googleapis.com/auth/cloud-platform")
			if err != nil {
				return nil, fmt.Errorf("telemetry: credentials for %s: %w", u.Host, err)
			}
			opts = append(opts, grpc.WithPerRPCCredentials(creds))
		}
	}
	conn, err := grpc.NewClient(host, opts...)
	if err != nil {
		return nil, fmt.Errorf("telemetry: otlp endpoint %s: %w", endpoint, err)
	}
	return conn, nil
}

// Disabled returns providers that record nothing but still give instruments (for
// tests and tools that do not care).
func Disabled() *Telemetry {
	t, _ := Setup(context.Background(), Config{SampleRatio: 0})
	return t
}

// Meter returns the meter for an instrumentation scope (a package path).
func (t *Telemetry) Meter(scope string) metric.Meter { return t.Meters.Meter(scope) }

// Tracer returns the tracer for an instrumentation scope.
func (t *Telemetry) Tracer(scope string) trace.Tracer { return t.Tracers.Tracer(scope) }

// Handler serves the metrics in the Prometheus exposition format; nil unless
// Config.Prometheus.
func (t *Telemetry) Handler() http.Handler { return t.prom }

// Project is the Google Cloud project traces are filed under.
func (t *Telemetry) Project() string { return t.project }

// Install makes these providers the process's OpenTelemetry globals. The Pub/Sub
// client library traces through otel.GetTracerProvider and the global propagator and
// offers no other way in; call it once, from main. The SDK's own errors (a failed
// export) go to log, as JSON lines like every other.
func (t *Telemetry) Install(log *slog.Logger) {
	otel.SetTracerProvider(t.Tracers)
	otel.SetMeterProvider(t.Meters)
	otel.SetTextMapPropagator(t.Propagator)
	otel.SetErrorHandler(otel.ErrorHandlerFunc(func(err error) {
		log.Warn("telemetry: export failed; the data of this interval is dropped", "error", err.Error())
	}))
}

// ForceFlush exports what is buffered now (a test's condition; a function at the end
// of an invocation that must not lose it).
func (t *Telemetry) ForceFlush(ctx context.Context) error {
	return errors.Join(t.Tracers.ForceFlush(ctx), t.Meters.ForceFlush(ctx))
}

// Shutdown flushes and stops the exporters within ctx's deadline.
func (t *Telemetry) Shutdown(ctx context.Context) error {
	err := errors.Join(t.Tracers.Shutdown(ctx), t.Meters.Shutdown(ctx))
	if t.conn != nil {
		err = errors.Join(err, t.conn.Close())
	}
	if err != nil {
		return fmt.Errorf("telemetry: shutdown: %w", err)
	}
	return nil
}
