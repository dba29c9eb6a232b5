// Package metrics holds the connector's counters, gauges and latency histograms as
// OpenTelemetry instruments. The hot path (a notification every few hundred
// microseconds under load) only touches atomics: counters and gauges are observable
// instruments the SDK reads at each collection (an OTLP export, a Prometheus scrape),
// and the local values stay readable for tests, logs and load reports. Exposition is
// the SDK's (shared/telemetry): nothing here writes a wire format.
package metrics

import (
	"context"
	"errors"
	"math"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
)

// Registry is a set of named series, exported to a meter once Export is called.
//
// Two locks, never held together with the SDK's: mu guards the maps and is what a
// collection's callback takes (while the SDK holds its own lock); instMu serialises
// creating instruments and registering callbacks, which take the SDK's lock. Neither
// path holds mu while calling into the SDK, so a series registered during a collection
// cannot deadlock with it.
type Registry struct {
	mu     sync.Mutex
	series map[string]*series
	meter  metric.Meter
	// instruments by base name, created on Export or on first use after it.
	counters map[string]metric.Int64ObservableCounter
	gauges   map[string]metric.Int64ObservableGauge
	fgauges  map[string]metric.Float64ObservableGauge
	hists    map[string]metric.Float64Histogram

	instMu sync.Mutex
	err    error // guarded by instMu
}

type series struct {
	base  string
	kind  string // counter, gauge, histogram, func
	help  string
	attrs attribute.Set
	c     *Counter
	g     *Gauge
	h     *Histogram
	fn    func() float64
	multi *labeled
}

type labeled struct {
	label string
	fn    func() map[string]int64
}

// New returns an empty registry.
func New() *Registry {
	return &Registry{series: map[string]*series{},
		counters: map[string]metric.Int64ObservableCounter{}, gauges: map[string]metric.Int64ObservableGauge{},
		fgauges: map[string]metric.Float64ObservableGauge{}, hists: map[string]metric.Float64Histogram{}}
}

// Counter is a monotonically increasing count.
type Counter struct{ v atomic.Uint64 }

// Inc adds one.
func (c *Counter) Inc() { c.v.Add(1) }

// Add adds n.
func (c *Counter) Add(n uint64) { c.v.Add(n) }

// Value returns the count.
func (c *Counter) Value() uint64 { return c.v.Load() }

// Gauge is a value that goes up and down.
type Gauge struct{ v atomic.Int64 }

// Set sets the value.
func (g *Gauge) Set(n int64) { g.v.Store(n) }

// Add adds n (which may be negative).
func (g *Gauge) Add(n int64) { g.v.Add(n) }

// Value returns the value.
func (g *Gauge) Value() int64 { return g.v.Load() }

// Histogram counts observations in fixed buckets (seconds), locally for Quantile and,
// once exported, in an OpenTelemetry histogram with the same bounds.
type Histogram struct {
	bounds []float64
	counts []atomic.Uint64 // len(bounds)+1, the last is +Inf
	n      atomic.Uint64
	otel   atomic.Pointer[histogramSink]
}

type histogramSink struct {
	h     metric.Float64Histogram
	attrs metric.MeasurementOption
}

// LatencyBuckets are the default bounds, 0.5 ms to 10 s. 15 and 20 ms are bounds so
// that the relay's p99 target (20 ms frame → publish acknowledged) is read off the
// histogram rather than interpolated across 10–25 ms.
var LatencyBuckets = []float64{0.0005, 0.001, 0.0025, 0.005, 0.01, 0.015, 0.02, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10}

// Observe records one duration.
func (h *Histogram) Observe(d time.Duration) {
	s := d.Seconds()
	h.counts[sort.SearchFloat64s(h.bounds, s)].Add(1)
	h.n.Add(1)
	if k := h.otel.Load(); k != nil {
		k.h.Record(context.Background(), s, k.attrs)
	}
}

// Count returns the number of observations.
func (h *Histogram) Count() uint64 { return h.n.Load() }

// Quantile estimates quantile q (0..1) from the buckets (upper bound of the bucket
// holding it), for logs and load reports.
func (h *Histogram) Quantile(q float64) time.Duration {
	total := h.n.Load()
	if total == 0 {
		return 0
	}
	rank := uint64(math.Ceil(q * float64(total)))
	var seen uint64
	for i := range h.counts {
		seen += h.counts[i].Load()
		if seen >= rank {
			i = min(i, len(h.bounds)-1)
			return time.Duration(h.bounds[i] * float64(time.Second))
		}
	}
	return 0
}

// parseName splits `name{k="v",k2="v2"}` into the base name and its constant labels.
func parseName(name string) (string, attribute.Set) {
	i := strings.IndexByte(name, '{')
	if i < 0 {
		return name, *attribute.EmptySet()
	}
	var kvs []attribute.KeyValue
	for _, p := range strings.Split(strings.TrimSuffix(name[i+1:], "}"), ",") {
		k, v, ok := strings.Cut(p, "=")
		if ok {
			kvs = append(kvs, attribute.String(strings.TrimSpace(k), strings.Trim(v, `"`)))
		}
	}
	return name[:i], attribute.NewSet(kvs...)
}

func (r *Registry) add(name string, s *series) {
	s.base, s.attrs = parseName(name)
	r.mu.Lock()
	if _, dup := r.series[name]; dup {
		r.mu.Unlock()
		panic("metrics: duplicate series " + name) // a programming error at start-up
	}
	r.series[name] = s
	m := r.meter
	r.mu.Unlock()
	if m != nil {
		r.instrument(m, s)
	}
}

// Counter registers and returns a counter. name may carry constant labels:
// `reconnects_total{reason="keepalive"}`.
func (r *Registry) Counter(name, help string) *Counter {
	c := &Counter{}
	r.add(name, &series{kind: "counter", help: help, c: c})
	return c
}

// Gauge registers and returns a gauge.
func (r *Registry) Gauge(name, help string) *Gauge {
	g := &Gauge{}
	r.add(name, &series{kind: "gauge", help: help, g: g})
	return g
}

// GaugeFunc registers a gauge whose value fn computes at each collection (a ratio, a
// state read from elsewhere). fn must be cheap and must not block.
func (r *Registry) GaugeFunc(name, help string, fn func() float64) {
	r.add(name, &series{kind: "func", help: help, fn: fn})
}

// LabeledGauges registers one gauge per key of what fn returns at each collection,
// the key as the value of label (subscriptions by status, shards by status). A key
// missing from a collection is a series that stops; report zeros to keep it.
func (r *Registry) LabeledGauges(name, help, label string, fn func() map[string]int64) {
	r.add(name, &series{kind: "labeled", help: help, multi: &labeled{label: label, fn: fn}})
}

// Histogram registers and returns a histogram over bounds (seconds, ascending).
func (r *Registry) Histogram(name, help string, bounds []float64) *Histogram {
	h := &Histogram{bounds: bounds, counts: make([]atomic.Uint64, len(bounds)+1)}
	r.add(name, &series{kind: "histogram", help: help, h: h})
	return h
}

// Export makes every series, present and future, an instrument of m. Call it once.
func (r *Registry) Export(m metric.Meter) error {
	r.mu.Lock()
	if r.meter != nil {
		r.mu.Unlock()
		return errors.New("metrics: registry exported twice")
	}
	r.meter = m
	list := make([]*series, 0, len(r.series))
	for _, s := range r.series {
		list = append(list, s)
	}
	r.mu.Unlock()
	// A series added meanwhile instruments itself too: instrument is idempotent.
	for _, s := range list {
		r.instrument(m, s)
	}
	r.instMu.Lock()
	defer r.instMu.Unlock()
	return r.err
}

// instrument creates the base name's instrument if it has none, with a callback that
// observes that name's series.
func (r *Registry) instrument(m metric.Meter, s *series) {
	r.instMu.Lock()
	defer r.instMu.Unlock()
	r.mu.Lock()
	_, hasC := r.counters[s.base]
	_, hasG := r.gauges[s.base]
	_, hasF := r.fgauges[s.base]
	h, hasH := r.hists[s.base]
	r.mu.Unlock()
	var (
		inst metric.Observable
		err  error
	)
	switch s.kind {
	case "counter":
		if !hasC {
			var c metric.Int64ObservableCounter
			if c, err = m.Int64ObservableCounter(s.base, metric.WithDescription(s.help)); err == nil {
				r.store(func() { r.counters[s.base] = c })
				inst = c
			}
		}
	case "gauge", "labeled":
		if !hasG {
			var g metric.Int64ObservableGauge
			if g, err = m.Int64ObservableGauge(s.base, metric.WithDescription(s.help)); err == nil {
				r.store(func() { r.gauges[s.base] = g })
				inst = g
			}
		}
	case "func":
		if !hasF {
			var g metric.Float64ObservableGauge
			if g, err = m.Float64ObservableGauge(s.base, metric.WithDescription(s.help)); err == nil {
				r.store(func() { r.fgauges[s.base] = g })
				inst = g
			}
		}
	case "histogram":
		if !hasH {
			if h, err = m.Float64Histogram(s.base, metric.WithDescription(s.help), metric.WithUnit("s"),
				metric.WithExplicitBucketBoundaries(s.h.bounds...)); err == nil {
				r.store(func() { r.hists[s.base] = h })
			}
		}
		if err == nil {
			s.h.otel.Store(&histogramSink{h: h, attrs: metric.WithAttributeSet(s.attrs)})
		}
	}
	if err == nil && inst != nil {
		base := s.base
		_, err = m.RegisterCallback(func(_ context.Context, o metric.Observer) error {
			r.observe(base, o)
			return nil
		}, inst)
	}
	r.err = errors.Join(r.err, err)
}

func (r *Registry) store(set func()) {
	r.mu.Lock()
	set()
	r.mu.Unlock()
}

// observe reports base's series.
func (r *Registry) observe(base string, o metric.Observer) {
	r.mu.Lock()
	var list []*series
	for _, s := range r.series {
		if s.base == base {
			list = append(list, s)
		}
	}
	c, g, f := r.counters[base], r.gauges[base], r.fgauges[base]
	r.mu.Unlock()
	for _, s := range list {
		set := metric.WithAttributeSet(s.attrs)
		switch {
		case s.kind == "counter" && c != nil:
			o.ObserveInt64(c, int64(s.c.Value()), set)
		case s.kind == "gauge" && g != nil:
			o.ObserveInt64(g, s.g.Value(), set)
		case s.kind == "func" && f != nil:
			o.ObserveFloat64(f, s.fn(), set)
		case s.kind == "labeled" && g != nil:
			for k, v := range s.multi.fn() {
				o.ObserveInt64(g, v, metric.WithAttributes(attribute.String(s.multi.label, k)))
			}
		}
	}
}
