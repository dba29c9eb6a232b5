package load

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// Median is one rate's figures over the rounds of a run: the median of each figure
// (taken separately), and the spread of the CPU figure.
type Median struct {
	Rate, Runs         int
	CPUPerNotification float64 // µs
	CPUMin, CPUMax     float64
	RSSPeak            int64
	// RSSAnon and RSSFile: the end-of-step split (medians).
	RSSAnon, RSSFile int64
	E2EP50, E2EP99   time.Duration
	ConnP99          time.Duration
	// Per notification sent: Firestore documents written and read, Pub/Sub
	// messages, publish requests and bytes.
	Writes, Reads, Published, PublishRequests, PublishedBytes float64
	// OK: every run delivered every notification exactly once.
	OK bool
	// Loads are the load averages (1 min) at the start of each run.
	Loads []string
}

func (r *Report) rounds() int {
	n := 0
	for _, s := range r.Steps {
		n = max(n, s.Round)
	}
	return n
}

// Medians returns one Median per rate, in the order the rates first ran.
func (r *Report) Medians() []Median {
	var rates []int
	by := map[int][]Step{}
	for _, s := range r.Steps {
		if _, ok := by[s.Rate]; !ok {
			rates = append(rates, s.Rate)
		}
		by[s.Rate] = append(by[s.Rate], s)
	}
	out := make([]Median, 0, len(rates))
	for _, rate := range rates {
		ss := by[rate]
		m := Median{Rate: rate, Runs: len(ss), OK: true}
		f := func(get func(Step) float64) float64 {
			v := make([]float64, len(ss))
			for i, s := range ss {
				v[i] = get(s)
			}
			return medianOf(v)
		}
		m.CPUPerNotification = f(Step.CPUPerNotification)
		m.CPUMin, m.CPUMax = m.CPUPerNotification, m.CPUPerNotification
		for _, s := range ss {
			m.CPUMin, m.CPUMax = min(m.CPUMin, s.CPUPerNotification()), max(m.CPUMax, s.CPUPerNotification())
			m.OK = m.OK && s.Delivered == s.Sent && s.Duplicates == 0
			if f := strings.Fields(s.LoadBefore); len(f) > 0 {
				m.Loads = append(m.Loads, f[0])
			}
		}
		m.RSSPeak = int64(f(func(s Step) float64 { return float64(s.RSSPeak) }))
		m.RSSAnon = int64(f(func(s Step) float64 { return float64(s.RSSAnonEnd) }))
		m.RSSFile = int64(f(func(s Step) float64 { return float64(s.RSSFileEnd) }))
		m.E2EP50 = time.Duration(f(func(s Step) float64 { return float64(s.E2EP50) }))
		m.E2EP99 = time.Duration(f(func(s Step) float64 { return float64(s.E2EP99) }))
		m.ConnP99 = time.Duration(f(func(s Step) float64 { return float64(s.ConnP99) }))
		m.Writes = f(func(s Step) float64 { return s.PerEvent(s.Firestore.Writes) })
		m.Reads = f(func(s Step) float64 { return s.PerEvent(s.Firestore.Reads) })
		m.Published = f(func(s Step) float64 { return s.PerEvent(s.PubSub.Published) })
		m.PublishRequests = f(func(s Step) float64 { return s.PerEvent(s.PubSub.PublishRequests) })
		m.PublishedBytes = f(func(s Step) float64 { return s.PerEvent(s.PubSub.PublishedBytes) })
		out = append(out, m)
	}
	return out
}

func medianOf(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// summaryMarkdown is the medians table.
func (r *Report) summaryMarkdown() string {
	var b strings.Builder
	fmt.Fprintf(&b, "Medians of %d rounds per rate (each figure's median taken separately):\n\n", r.rounds())
	b.WriteString("| rate /s | runs | CPU µs / notification (min–max) | RSS peak | RSS at end: anon + file | e2e p50 / p99 | connector p99 | Firestore writes / reads per event | publishes (requests) per event | published bytes per event | exactly once | load (1 min) at start |\n")
	b.WriteString("|---:|---:|---|---:|---|---|---:|---|---|---:|---|---|\n")
	for _, m := range r.Medians() {
		fmt.Fprintf(&b, "| %d | %d | %.1f (%.1f–%.1f) | %.1f MB | %.1f + %.1f MB | %s / %s | %s | %.4f / %.4f | %.3f (%.4f) | %.0f | %s | %s |\n",
			m.Rate, m.Runs, m.CPUPerNotification, m.CPUMin, m.CPUMax, mb(m.RSSPeak), mb(m.RSSAnon), mb(m.RSSFile), ms(m.E2EP50), ms(m.E2EP99), ms(m.ConnP99),
			m.Writes, m.Reads, m.Published, m.PublishRequests, m.PublishedBytes, yes(m.OK), strings.Join(m.Loads, ", "))
	}
	return b.String()
}

func yes(ok bool) string {
	if ok {
		return "yes"
	}
	return "no ✗"
}
