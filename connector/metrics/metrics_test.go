package metrics_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/bitbrat/twitch-edge/connector/metrics"
	"github.com/bitbrat/twitch-edge/shared/event"
)

// collect reads every series through the SDK's manual reader as "name{k=v,...}" → value
// (histograms: their count).
func collect(t *testing.T, r *sdkmetric.ManualReader) map[string]float64 {
	t.Helper()
	var rm metricdata.ResourceMetrics
	if err := r.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			switch d := m.Data.(type) {
			case metricdata.Sum[int64]:
				for _, p := range d.DataPoints {
					out[m.Name+p.Attributes.Encoded(attribute.DefaultEncoder())] = float64(p.Value)
				}
			case metricdata.Gauge[int64]:
				for _, p := range d.DataPoints {
					out[m.Name+p.Attributes.Encoded(attribute.DefaultEncoder())] = float64(p.Value)
				}
			case metricdata.Gauge[float64]:
				for _, p := range d.DataPoints {
					out[m.Name+p.Attributes.Encoded(attribute.DefaultEncoder())] = p.Value
				}
			case metricdata.Histogram[float64]:
				for _, p := range d.DataPoints {
					out[m.Name+p.Attributes.Encoded(attribute.DefaultEncoder())] = float64(p.Count)
				}
			}
		}
	}
	return out
}

func TestRegistrySeriesBecomeInstruments(t *testing.T) {
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	reg := metrics.New()
	before := reg.Counter("published_total", "before export")
	if err := reg.Export(mp.Meter("test")); err != nil {
		t.Fatal(err)
	}
	before.Add(3)
	reg.Counter(`reconnects_total{reason="keepalive"}`, "after export").Inc()
	reg.Counter(`reconnects_total{reason="network"}`, "after export").Add(2)
	g := reg.Gauge("depth", "a gauge")
	g.Set(7)
	reg.GaugeFunc("fill_ratio", "a ratio", func() float64 { return 0.5 })
	metrics.SubscriptionsByStatus(reg, func() map[string]int64 { return map[string]int64{"enabled": 4, "revoked": 1} })
	h := reg.Histogram("latency_seconds", "a histogram", metrics.LatencyBuckets)
	h.Observe(2 * time.Millisecond)
	h.Observe(3 * time.Millisecond)

	got := collect(t, reader)
	for k, want := range map[string]float64{
		"published_total":                           3,
		"reconnects_total" + "reason=keepalive":     1,
		"reconnects_total" + "reason=network":       2,
		"depth":                                     7,
		"fill_ratio":                                0.5,
		"eventsub_subscriptions" + "status=enabled": 4,
		"eventsub_subscriptions" + "status=revoked": 1,
		"latency_seconds":                           2,
	} {
		if got[k] != want {
			t.Errorf("%s = %v, want %v (all: %v)", k, got[k], want, got)
		}
	}
	if q := h.Quantile(0.5); q != 2500*time.Microsecond {
		t.Errorf("median %v", q)
	}
	if err := reg.Export(mp.Meter("again")); err == nil {
		t.Error("a second Export succeeded")
	}
}

type recorder struct{ n int }

func (r *recorder) Publish(context.Context, string, []byte, map[string]string) (string, error) {
	r.n++
	return "id", nil
}

func TestCountIngressByTypeAndChannel(t *testing.T) {
	reader := sdkmetric.NewManualReader()
	reg := metrics.New()
	if err := reg.Export(sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader)).Meter("test")); err != nil {
		t.Fatal(err)
	}
	next := &recorder{}
	pub := metrics.CountIngress(next, reg)
	for _, a := range []map[string]string{
		{event.AttrEventSubSubscriptionType: "channel.chat.message", event.AttrEventSubBroadcasterID: "1"},
		{event.AttrEventSubSubscriptionType: "channel.chat.message", event.AttrEventSubBroadcasterID: "1"},
		{event.AttrEventSubSubscriptionType: "channel.follow", event.AttrEventSubBroadcasterID: "2"},
	} {
		if _, err := pub.Publish(context.Background(), "raw", nil, a); err != nil {
			t.Fatal(err)
		}
	}
	got := collect(t, reader)
	if next.n != 3 || got[metrics.NameIngress+"channel=1,type=channel.chat.message"] != 2 ||
		got[metrics.NameIngress+"channel=2,type=channel.follow"] != 1 {
		t.Errorf("published %d, series %v", next.n, got)
	}
}

// Series registered while the SDK collects (a new reconnect reason, a new channel)
// neither deadlock with the collection nor lose their counts.
func TestRegisteringDuringCollections(t *testing.T) {
	reader := sdkmetric.NewManualReader()
	reg := metrics.New()
	if err := reg.Export(sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader)).Meter("test")); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	collected := make(chan struct{})
	go func() {
		defer close(collected)
		for {
			select {
			case <-done:
				return
			default:
			}
			var rm metricdata.ResourceMetrics
			if err := reader.Collect(context.Background(), &rm); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	for i := range 200 {
		reg.Counter(fmt.Sprintf(`reconnects_total{reason="r%d"}`, i), "by reason").Inc()
		reg.Counter(fmt.Sprintf(`base%d_total`, i%7)+fmt.Sprintf(`{n="%d"}`, i), "new bases too").Inc()
	}
	close(done)
	<-collected
	got := collect(t, reader)
	for _, k := range []string{"reconnects_totalreason=r0", "reconnects_totalreason=r199", "base0_totaln=0", "base6_totaln=195"} {
		if got[k] != 1 {
			t.Errorf("%s = %v", k, got[k])
		}
	}
}
