package main

import (
	"cmp"
	"fmt"
	"io"
	"math"
	"slices"
	"strings"
)

// Baseline is the committed file of reference figures (docs/perf/bench.json).
type Baseline struct {
	// Measured says when, on what and under which load the figures were taken.
	Measured string `json:"measured"`
	// Command reproduces them.
	Command string `json:"command"`
	// Benchmarks are keyed like Parse's result.
	Benchmarks map[string]Figures `json:"benchmarks"`
}

// Change is one figure that moved by more than the threshold, or a benchmark present
// on one side only.
type Change struct {
	Key  string
	Unit string // empty for a benchmark missing on one side
	Old  float64
	New  float64
	// Delta is (New-Old)/Old; +0.25 is 25 % more.
	Delta float64
	// Worse: slower, more memory or allocations (for a rate such as MB/s: lower).
	Worse bool
	// Timing: a time or a rate, which another process on the machine moves (counts
	// of bytes and allocations it does not).
	Timing bool
	Note   string // "no baseline" or "not run"
}

// Thresholds are the relative changes that count as moved: Count for bytes,
// allocations and other counts, which do not depend on the machine's load; Time for
// times and rates, which do (a run on a busy machine is slower by tens of percent).
type Thresholds struct{ Count, Time float64 }

// timing reports whether unit is a time or a rate.
func timing(unit string) bool { return strings.HasSuffix(unit, "ns/op") || higherIsBetter(unit) }

// higherIsBetter reports whether a larger value of unit is an improvement: rates
// (MB/s, msgs/s) are; times, bytes and counts are not.
func higherIsBetter(unit string) bool { return strings.HasSuffix(unit, "/s") }

// Compare returns the figures of current that moved by more than their threshold
// (0.2 is 20 %) from base, each benchmark of one side missing from the other, in key
// order. A figure that was zero counts as moved when it is no longer zero (0 → 1
// allocation is a regression however small).
func Compare(base, current map[string]Figures, th Thresholds) []Change {
	var out []Change
	for key, cur := range current {
		old, ok := base[key]
		if !ok {
			out = append(out, Change{Key: key, Note: "no baseline"})
			continue
		}
		for unit, nv := range cur {
			ov, ok := old[unit]
			if !ok || (unit == "MB/s" && cur["ns/op"] != 0) {
				continue // MB/s is ns/op restated (b.SetBytes): one regression, one line
			}
			var delta float64
			switch {
			case ov == nv:
				continue
			case ov == 0:
				delta = math.Inf(1)
			default:
				delta = (nv - ov) / ov
			}
			threshold := th.Count
			if timing(unit) {
				threshold = th.Time
			}
			if math.Abs(delta) <= threshold {
				continue
			}
			worse := nv > ov
			if higherIsBetter(unit) {
				worse = nv < ov
			}
			out = append(out, Change{Key: key, Unit: unit, Old: ov, New: nv, Delta: delta, Worse: worse, Timing: timing(unit)})
		}
	}
	for key := range base {
		if _, ok := current[key]; !ok {
			out = append(out, Change{Key: key, Note: "not run"})
		}
	}
	slices.SortFunc(out, func(a, b Change) int {
		return cmp.Or(strings.Compare(a.Key, b.Key), strings.Compare(a.Unit, b.Unit))
	})
	return out
}

// Report writes the changes as a table and returns how many are regressions that
// fail the check. With loaded (the machine was busier than the check allows), a
// slower time is listed but does not fail: only counts do.
func Report(w io.Writer, changes []Change, th Thresholds, loaded bool) int {
	worse := 0
	moved := 0
	for _, c := range changes {
		if c.Unit != "" {
			moved++
		}
	}
	if moved == 0 {
		fmt.Fprintf(w, "benchcheck: no figure moved by more than %.0f %% (counts) or %.0f %% (times)\n", th.Count*100, th.Time*100)
	}
	for _, c := range changes {
		if c.Unit == "" {
			fmt.Fprintf(w, "  %-70s %s\n", c.Key, c.Note)
			continue
		}
		verdict := "better"
		switch {
		case c.Worse && c.Timing && loaded:
			verdict = "slower (machine loaded: not failed)"
		case c.Worse:
			verdict = "WORSE"
			worse++
		}
		fmt.Fprintf(w, "  %-70s %-10s %12s → %-12s %+7.1f %%  %s\n", c.Key, c.Unit, num(c.Old), num(c.New), c.Delta*100, verdict)
	}
	return worse
}

func num(v float64) string {
	if v == math.Trunc(v) && math.Abs(v) < 1e15 {
		return fmt.Sprintf("%.0f", v)
	}
	return fmt.Sprintf("%.3g", v)
}
