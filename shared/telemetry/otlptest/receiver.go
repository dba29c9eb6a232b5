// Package otlptest is an OTLP receiver for tests: the OpenTelemetry collector's gRPC
// MetricsService and TraceService (go.opentelemetry.io/proto/otlp) on a loopback port,
// keeping what it is sent so a test can wait for a metric's value or a trace's spans.
package otlptest

import (
	"context"
	"encoding/hex"
	"fmt"
	"net"
	"sort"
	"strings"
	"sync"

	colmetrics "go.opentelemetry.io/proto/otlp/collector/metrics/v1"
	coltrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	common "go.opentelemetry.io/proto/otlp/common/v1"
	metricspb "go.opentelemetry.io/proto/otlp/metrics/v1"
	"google.golang.org/grpc"
)

// Span is one received span.
type Span struct {
	Service, Name, TraceID, SpanID, ParentID string
	Kind                                     string
}

// Receiver is a running OTLP/gRPC receiver.
type Receiver struct {
	srv *grpc.Server
	ln  net.Listener

	mu      sync.Mutex
	changed chan struct{} // closed and replaced on every export
	// values are the latest value of each series: sums and gauges their value,
	// histograms their count. Key: Key(service, name, attrs).
	values map[string]float64
	names  map[string]bool
	spans  []Span
}

// Start listens on a loopback port; Stop ends it.
func Start() (*Receiver, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("otlptest: listen: %w", err)
	}
	r := &Receiver{srv: grpc.NewServer(), ln: ln, changed: make(chan struct{}),
		values: map[string]float64{}, names: map[string]bool{}}
	colmetrics.RegisterMetricsServiceServer(r.srv, metricsService{r: r})
	coltrace.RegisterTraceServiceServer(r.srv, traceService{r: r})
	go func() { _ = r.srv.Serve(ln) }()
	return r, nil
}

// Endpoint is the URL to give OTEL_EXPORTER_OTLP_ENDPOINT (plain gRPC).
func (r *Receiver) Endpoint() string { return "http://" + r.ln.Addr().String() }

// Stop stops serving.
func (r *Receiver) Stop() { r.srv.Stop() }

// Key names one series: service, metric name and attributes ("k=v" pairs, any order).
func Key(service, name string, attrs ...string) string {
	sort.Strings(attrs)
	return service + "|" + name + "|" + strings.Join(attrs, ",")
}

// Value is the latest value of a series and whether it was received.
func (r *Receiver) Value(key string) (float64, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	v, ok := r.values[key]
	return v, ok
}

// Names are the metric names received (any service).
func (r *Receiver) Names() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]string, 0, len(r.names))
	for n := range r.names {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// Spans returns the spans received so far.
func (r *Receiver) Spans() []Span {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Span(nil), r.spans...)
}

// Wait blocks until cond holds (checked after every export) or ctx ends.
func (r *Receiver) Wait(ctx context.Context, cond func() bool) error {
	for {
		r.mu.Lock()
		ch := r.changed
		r.mu.Unlock()
		if cond() {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

func (r *Receiver) notify() {
	close(r.changed)
	r.changed = make(chan struct{})
}

type metricsService struct {
	colmetrics.UnimplementedMetricsServiceServer
	r *Receiver
}

func (s metricsService) Export(_ context.Context, req *colmetrics.ExportMetricsServiceRequest) (*colmetrics.ExportMetricsServiceResponse, error) {
	r := s.r
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, rm := range req.GetResourceMetrics() {
		svc := attr(rm.GetResource().GetAttributes(), "service.name")
		for _, sm := range rm.GetScopeMetrics() {
			for _, m := range sm.GetMetrics() {
				r.names[m.GetName()] = true
				switch d := m.GetData().(type) {
				case *metricspb.Metric_Sum:
					for _, p := range d.Sum.GetDataPoints() {
						r.values[Key(svc, m.GetName(), pairs(p.GetAttributes())...)] = number(p)
					}
				case *metricspb.Metric_Gauge:
					for _, p := range d.Gauge.GetDataPoints() {
						r.values[Key(svc, m.GetName(), pairs(p.GetAttributes())...)] = number(p)
					}
				case *metricspb.Metric_Histogram:
					for _, p := range d.Histogram.GetDataPoints() {
						r.values[Key(svc, m.GetName(), pairs(p.GetAttributes())...)] = float64(p.GetCount())
					}
				}
			}
		}
	}
	r.notify()
	return &colmetrics.ExportMetricsServiceResponse{}, nil
}

type traceService struct {
	coltrace.UnimplementedTraceServiceServer
	r *Receiver
}

func (s traceService) Export(_ context.Context, req *coltrace.ExportTraceServiceRequest) (*coltrace.ExportTraceServiceResponse, error) {
	r := s.r
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, rs := range req.GetResourceSpans() {
		svc := attr(rs.GetResource().GetAttributes(), "service.name")
		for _, ss := range rs.GetScopeSpans() {
			for _, sp := range ss.GetSpans() {
				r.spans = append(r.spans, Span{Service: svc, Name: sp.GetName(),
					TraceID: hex.EncodeToString(sp.GetTraceId()), SpanID: hex.EncodeToString(sp.GetSpanId()),
					ParentID: hex.EncodeToString(sp.GetParentSpanId()), Kind: sp.GetKind().String()})
			}
		}
	}
	r.notify()
	return &coltrace.ExportTraceServiceResponse{}, nil
}

func number(p *metricspb.NumberDataPoint) float64 {
	if _, ok := p.GetValue().(*metricspb.NumberDataPoint_AsInt); ok {
		return float64(p.GetAsInt())
	}
	return p.GetAsDouble()
}

func pairs(kvs []*common.KeyValue) []string {
	out := make([]string, 0, len(kvs))
	for _, kv := range kvs {
		out = append(out, kv.GetKey()+"="+value(kv.GetValue()))
	}
	return out
}

func attr(kvs []*common.KeyValue, key string) string {
	for _, kv := range kvs {
		if kv.GetKey() == key {
			return value(kv.GetValue())
		}
	}
	return ""
}

func value(v *common.AnyValue) string {
	switch x := v.GetValue().(type) {
	case *common.AnyValue_StringValue:
		return x.StringValue
	case *common.AnyValue_IntValue:
		return fmt.Sprint(x.IntValue)
	case *common.AnyValue_BoolValue:
		return fmt.Sprint(x.BoolValue)
	case *common.AnyValue_DoubleValue:
		return fmt.Sprint(x.DoubleValue)
	}
	return ""
}
