package telemetry_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/bitbrat/twitch-edge/shared/config"
	"github.com/bitbrat/twitch-edge/shared/telemetry"
	"github.com/bitbrat/twitch-edge/shared/telemetry/otlptest"
)

func TestReadConfig(t *testing.T) {
	for _, c := range []struct {
		name    string
		env     map[string]string
		ratio   float64
		every   time.Duration
		wantErr string
	}{
		{"defaults", nil, 0.1, time.Minute, ""},
		{"set", map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4317", "OTEL_TRACES_SAMPLER_ARG": "1",
			"OTEL_METRIC_EXPORT_INTERVAL": "5000"}, 1, 5 * time.Second, ""},
		{"ratio above one", map[string]string{"OTEL_TRACES_SAMPLER_ARG": "2"}, 0.1, time.Minute, "OTEL_TRACES_SAMPLER_ARG"},
		{"not a URL", map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "telemetry.googleapis.com"}, 0.1, time.Minute, "OTEL_EXPORTER_OTLP_ENDPOINT"},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := config.NewReader(config.Map(c.env))
			got := telemetry.ReadConfig(r, "p", "svc", "i1")
			err := r.Err()
			if c.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), c.wantErr) {
					t.Fatalf("err = %v, want one naming %s", err, c.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got.SampleRatio != c.ratio || got.ExportInterval != c.every || got.Service != "svc" || got.Project != "p" {
				t.Errorf("config %+v", got)
			}
		})
	}
}

// TestExportsOverOTLPAndServesPrometheus runs the real SDK against the in-test OTLP
// receiver and scrapes the Prometheus handler.
func TestExportsOverOTLPAndServesPrometheus(t *testing.T) {
	rcv, err := otlptest.Start()
	if err != nil {
		t.Fatal(err)
	}
	defer rcv.Stop()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second) // hang guard
	defer cancel()
	tel, err := telemetry.Setup(ctx, telemetry.Config{Service: "svc", Instance: "i1", Project: "p",
		Endpoint: rcv.Endpoint(), SampleRatio: 1, ExportInterval: time.Hour, Prometheus: true})
	if err != nil {
		t.Fatal(err)
	}
	ins, err := telemetry.NewInstruments(tel.Meter("test"))
	if err != nil {
		t.Fatal(err)
	}
	ins.Message(ctx, "Normalize", telemetry.OutcomeOK, "")
	ins.Message(ctx, "Normalize", telemetry.OutcomeOK, "")
	ins.EgressOutcome(ctx, "chat", "FAILED", "CHANNEL_NOT_ALLOWED")
	ins.WhisperRecipientsRemaining(ctx, 39)
	ins.TokenRefresh(ctx, "ok")

	// A Twitch-like server answering with the rate-limit headers.
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Ratelimit-Limit", "800")
		w.Header().Set("Ratelimit-Remaining", "799")
		w.WriteHeader(http.StatusOK)
	}))
	defer api.Close()
	sctx, span := tel.Tracer("test").Start(ctx, "parent")
	hc := &http.Client{Transport: tel.Transport(nil, ins)}
	req, _ := http.NewRequestWithContext(sctx, http.MethodGet, api.URL+"/helix/users", nil)
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if h := resp.Request.Header.Get("Traceparent"); h != "" {
		t.Errorf("a trace header went to Twitch: %s", h)
	}
	span.End()
	if err := tel.ForceFlush(ctx); err != nil {
		t.Fatal(err)
	}
	host := strings.TrimPrefix(api.URL, "http://")
	want := map[string]float64{
		otlptest.Key("svc", telemetry.MetricFunctionMessages, "function=Normalize", "outcome=ok", "code="):            2,
		otlptest.Key("svc", telemetry.MetricEgressOutcomes, "kind=chat", "status=FAILED", "code=CHANNEL_NOT_ALLOWED"): 1,
		otlptest.Key("svc", telemetry.MetricWhisperCap):                                                               39,
		otlptest.Key("svc", telemetry.MetricTokenRefreshes, "outcome=ok"):                                             1,
		otlptest.Key("svc", telemetry.MetricHelixRemaining, "host="+host):                                             799,
		otlptest.Key("svc", telemetry.MetricHelixRequests, "host="+host, "class=2xx"):                                 1,
	}
	err = rcv.Wait(ctx, func() bool {
		for k, v := range want {
			if got, ok := rcv.Value(k); !ok || got != v {
				return false
			}
		}
		return len(rcv.Spans()) >= 2
	})
	if err != nil {
		for k, v := range want {
			got, ok := rcv.Value(k)
			t.Logf("%s: got %v (%v), want %v", k, got, ok, v)
		}
		t.Fatalf("waiting for the exports: %v; names %v", err, rcv.Names())
	}
	var client, parent otlptest.Span
	for _, s := range rcv.Spans() {
		switch s.Kind {
		case "SPAN_KIND_CLIENT":
			client = s
		case "SPAN_KIND_INTERNAL":
			parent = s
		}
	}
	if client.TraceID != parent.TraceID || client.ParentID != parent.SpanID {
		t.Errorf("the HTTP client span is not the caller's child: %+v, %+v", client, parent)
	}

	rec := httptest.NewRecorder()
	tel.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	body, _ := io.ReadAll(rec.Body)
	for _, line := range []string{
		`function_messages_total{code="",function="Normalize",outcome="ok"} 2`,
		`egress_whisper_recipients_remaining 39`,
	} {
		if !strings.Contains(string(body), line) {
			t.Errorf("/metrics lacks %q:\n%s", line, body)
		}
	}
	if err := tel.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
}

func TestDisabledRecordsNothingAndNeedsNoEndpoint(t *testing.T) {
	tel := telemetry.Disabled()
	if tel.Handler() != nil {
		t.Error("a disabled setup serves /metrics")
	}
	var ins *telemetry.Instruments
	ins.Message(context.Background(), "x", "ok", "") // nil instruments: no-op
	if err := tel.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// BenchmarkSetup is what a function instance adds to its first message (cold start):
// providers with the OTLP exporters (no dial) and the Prometheus reader, and the
// instruments.
func BenchmarkSetup(b *testing.B) {
	rcv, err := otlptest.Start()
	if err != nil {
		b.Fatal(err)
	}
	defer rcv.Stop()
	ctx := context.Background()
	for b.Loop() {
		tel, err := telemetry.Setup(ctx, telemetry.Config{Service: "functions", Instance: "i", Project: "p",
			Endpoint: rcv.Endpoint(), SampleRatio: 0.1, ExportInterval: time.Minute, Prometheus: true})
		if err != nil {
			b.Fatal(err)
		}
		if _, err := telemetry.NewInstruments(tel.Meter("bench")); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		sctx, cancel := context.WithTimeout(ctx, time.Second)
		_ = tel.Shutdown(sctx)
		cancel()
		b.StartTimer()
	}
}
