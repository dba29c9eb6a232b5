package load

import (
	"encoding/xml"
	"io"
	"strings"
	"testing"
	"time"
)

func TestHistQuantileFromScrapeDeltas(t *testing.T) {
	before := Metrics{
		`h_bucket{le="0.005"}`: 10, `h_bucket{le="0.01"}`: 10, `h_bucket{le="0.05"}`: 10, `h_bucket{le="+Inf"}`: 10,
	}
	// 100 new observations: 50 in (0, 5 ms], 40 in (5, 10 ms], 9 in (10, 50 ms], 1 above.
	after := Metrics{
		`h_bucket{le="0.005"}`: 60, `h_bucket{le="0.01"}`: 100, `h_bucket{le="0.05"}`: 109, `h_bucket{le="+Inf"}`: 110,
	}
	for _, tc := range []struct {
		q    float64
		want time.Duration
	}{
		{0.25, 2500 * time.Microsecond}, // halfway into the first bucket
		{0.50, 5 * time.Millisecond},
		{0.70, 7500 * time.Microsecond},
		{0.99, 50 * time.Millisecond},
		{1.00, 50 * time.Millisecond}, // the +Inf bucket reports its lower bound
	} {
		got, n := HistQuantile(before, after, "h", tc.q)
		if n != 100 {
			t.Fatalf("count = %v, want 100", n)
		}
		if d := got - tc.want; d < -time.Microsecond || d > time.Microsecond {
			t.Errorf("q%.2f = %s, want %s", tc.q, got, tc.want)
		}
	}
	if got, n := HistQuantile(after, after, "h", 0.5); got != 0 || n != 0 {
		t.Errorf("no new observations: %s, %v", got, n)
	}
}

func TestMessageIDsCarryTheirStep(t *testing.T) {
	for _, step := range []int{0, 3, 255} {
		id := messageID(step, 123456)
		if len(id) != 36 || stepOf(id) != step {
			t.Errorf("messageID(%d) = %q, stepOf = %d", step, id, stepOf(id))
		}
	}
	if stepOf("nonsense") != -1 {
		t.Error("stepOf accepted a foreign id")
	}
}

func TestReportRendersTableAndWellFormedSVG(t *testing.T) {
	r := &Report{Machine: Machine{CPUs: 2, GoVersion: "go1.x"}, Started: time.Now()}
	for i, rate := range []int{500, 1000, 2000, 5000} {
		r.Steps = append(r.Steps, Step{Rate: rate, Sent: rate * 10, Delivered: rate * 10, SendTime: 10 * time.Second,
			E2EP50: time.Duration(i+6) * time.Millisecond, E2EP99: time.Duration(20*(i+1)) * time.Millisecond,
			ConnP99: 25 * time.Millisecond, RSSPeak: int64(60+10*i) << 20, CPU: float64(i + 1)})
	}
	r.Startup = &Startup{Runs: 1, Listen: 15 * time.Millisecond, First: 50 * time.Millisecond,
		ListenAll: []time.Duration{15 * time.Millisecond}, FirstAll: []time.Duration{50 * time.Millisecond}}
	md := r.Markdown("go run ./infra/cmd/load")
	for _, want := range []string{"| 2000 | 0 | 20000 | 20000 |", "RSS at 5,000/s 90.0 MB (target ≤ 45 MB: missed)",
		"at 1,000/s CPU 200.0 µs per notification (target ≤ 15 µs: missed), RSS 70.0 MB (≤ 35 MB: missed), p99 e2e 40.0 ms / connector 25.0 ms (≤ 20 ms: missed)",
		"to first Normalize served (target ≤ 100 ms: met)"} {
		if !strings.Contains(md, want) {
			t.Errorf("table lacks %q:\n%s", want, md)
		}
	}
	if !r.OK() {
		t.Error("OK = false with every notification delivered once")
	}
	d := xml.NewDecoder(strings.NewReader(r.SVG()))
	for {
		_, err := d.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("SVG is not well-formed XML: %v", err)
		}
	}
}

func TestMediansPerRateAcrossRounds(t *testing.T) {
	step := func(rate, round int, cpu float64, rss int64) Step {
		return Step{Rate: rate, Round: round, Sent: 1000, Delivered: 1000, CPU: cpu, RSSPeak: rss, LoadBefore: "1.50 1.00 0.50"}
	}
	r := &Report{Steps: []Step{
		step(1000, 1, 0.030, 30<<20), step(5000, 1, 0.010, 40<<20),
		step(1000, 2, 0.010, 32<<20), step(5000, 2, 0.020, 44<<20),
		step(1000, 3, 0.020, 31<<20), step(5000, 3, 0.015, 41<<20),
	}}
	r.Steps[0].Firestore.Writes = 4
	ms := r.Medians()
	if len(ms) != 2 || ms[0].Rate != 1000 || ms[1].Rate != 5000 {
		t.Fatalf("medians %+v", ms)
	}
	m := ms[0]
	if m.Runs != 3 || m.CPUPerNotification != 20 || m.CPUMin != 10 || m.CPUMax != 30 || m.RSSPeak != 31<<20 || !m.OK || m.Writes != 0 {
		t.Errorf("1000/s: %+v", m)
	}
	if got := r.Markdown(""); !strings.Contains(got, "Medians of 3 rounds") || !strings.Contains(got, "| 1000 | 3 | 20.0 (10.0–30.0) | 31.0 MB | 0.0 + 0.0 MB |") {
		t.Errorf("markdown:\n%s", got)
	}
}
