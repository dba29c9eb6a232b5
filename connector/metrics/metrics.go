// Package metrics holds the connector's counters, gauges and latency histograms and
// writes them in the Prometheus text exposition format (the de facto standard every
// scraper, including Google Cloud Managed Service for Prometheus, reads). A dozen
// series do not justify a client library.
package metrics

import (
	"fmt"
	"io"
	"math"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Registry is a set of named series.
type Registry struct {
	mu     sync.Mutex
	series map[string]writer
	help   map[string]string
	kinds  map[string]string
}

type writer interface {
	write(w io.Writer, name string)
}

// New returns an empty registry.
func New() *Registry {
	return &Registry{series: map[string]writer{}, help: map[string]string{}, kinds: map[string]string{}}
}

// Counter is a monotonically increasing count.
type Counter struct{ v atomic.Uint64 }

// Inc adds one.
func (c *Counter) Inc() { c.v.Add(1) }

// Add adds n.
func (c *Counter) Add(n uint64) { c.v.Add(n) }

// Value returns the count.
func (c *Counter) Value() uint64 { return c.v.Load() }

func (c *Counter) write(w io.Writer, name string) { fmt.Fprintf(w, "%s %d\n", name, c.v.Load()) }

// Gauge is a value that goes up and down.
type Gauge struct{ v atomic.Int64 }

// Set sets the value.
func (g *Gauge) Set(n int64) { g.v.Store(n) }

// Add adds n (which may be negative).
func (g *Gauge) Add(n int64) { g.v.Add(n) }

// Value returns the value.
func (g *Gauge) Value() int64 { return g.v.Load() }

func (g *Gauge) write(w io.Writer, name string) { fmt.Fprintf(w, "%s %d\n", name, g.v.Load()) }

// Histogram counts observations in fixed buckets (seconds).
type Histogram struct {
	bounds []float64
	counts []atomic.Uint64 // len(bounds)+1, the last is +Inf
	sumNs  atomic.Uint64
	n      atomic.Uint64
}

// LatencyBuckets are the default bounds, 0.5 ms to 10 s.
var LatencyBuckets = []float64{0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10}

// Observe records one duration.
func (h *Histogram) Observe(d time.Duration) {
	s := d.Seconds()
	i := sort.SearchFloat64s(h.bounds, s)
	h.counts[i].Add(1)
	h.sumNs.Add(uint64(max(d, 0)))
	h.n.Add(1)
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
			if i == len(h.bounds) {
				return time.Duration(h.bounds[len(h.bounds)-1] * float64(time.Second))
			}
			return time.Duration(h.bounds[i] * float64(time.Second))
		}
	}
	return 0
}

func (h *Histogram) write(w io.Writer, name string) {
	var cum uint64
	for i, b := range h.bounds {
		cum += h.counts[i].Load()
		fmt.Fprintf(w, "%s_bucket{le=\"%g\"} %d\n", name, b, cum)
	}
	cum += h.counts[len(h.bounds)].Load()
	fmt.Fprintf(w, "%s_bucket{le=\"+Inf\"} %d\n", name, cum)
	fmt.Fprintf(w, "%s_sum %g\n", name, float64(h.sumNs.Load())/1e9)
	fmt.Fprintf(w, "%s_count %d\n", name, h.n.Load())
}

func (r *Registry) add(name, kind, help string, s writer) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, dup := r.series[name]; dup {
		panic("metrics: duplicate series " + name) // a programming error at start-up
	}
	base := name
	if i := strings.IndexByte(name, '{'); i >= 0 {
		base = name[:i]
	}
	r.series[name] = s
	if _, ok := r.help[base]; !ok {
		r.help[base], r.kinds[base] = help, kind
	}
}

// Counter registers and returns a counter. name may carry constant labels:
// `reconnects_total{reason="keepalive"}`.
func (r *Registry) Counter(name, help string) *Counter {
	c := &Counter{}
	r.add(name, "counter", help, c)
	return c
}

// Gauge registers and returns a gauge.
func (r *Registry) Gauge(name, help string) *Gauge {
	g := &Gauge{}
	r.add(name, "gauge", help, g)
	return g
}

// Histogram registers and returns a histogram over bounds (seconds, ascending).
func (r *Registry) Histogram(name, help string, bounds []float64) *Histogram {
	h := &Histogram{bounds: bounds, counts: make([]atomic.Uint64, len(bounds)+1)}
	r.add(name, "histogram", help, h)
	return h
}

// Write writes every series in the text exposition format, sorted by name.
func (r *Registry) Write(w io.Writer) {
	r.mu.Lock()
	names := make([]string, 0, len(r.series))
	for n := range r.series {
		names = append(names, n)
	}
	sort.Strings(names)
	series, help, kinds := r.series, r.help, r.kinds
	r.mu.Unlock()
	lastBase := ""
	for _, n := range names {
		base := n
		if i := strings.IndexByte(n, '{'); i >= 0 {
			base = n[:i]
		}
		if base != lastBase {
			fmt.Fprintf(w, "# HELP %s %s\n# TYPE %s %s\n", base, help[base], base, kinds[base])
			lastBase = base
		}
		series[n].write(w, n)
	}
}
