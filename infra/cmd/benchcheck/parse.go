package main

import (
	"bufio"
	"fmt"
	"io"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// Figures are the measurements of one benchmark: unit ("ns/op", "B/op", "allocs/op",
// "MB/s" or a custom metric) → value.
type Figures map[string]float64

// procSuffix is the -GOMAXPROCS suffix `go test` adds to a benchmark's name: it
// depends on the machine, not on the code, so it is not part of the key.
var procSuffix = regexp.MustCompile(`-\d+$`)

// Parse reads `go test -bench` output (one run or several appended) and returns each benchmark's best figures,
// keyed "<package> <BenchmarkName>" (the package from the `pkg:` line before it).
// With -count N a benchmark appears N times; the best of them (the lowest time,
// bytes or count, the highest rate) is what is compared: another process on the
// machine can only make a run slower, so the best run is the nearest to the code's
// own cost, and a regression has to show in every run to count.
func Parse(r io.Reader) (map[string]Figures, error) {
	samples := map[string]map[string][]float64{}
	pkg := ""
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if p, ok := strings.CutPrefix(line, "pkg: "); ok {
			pkg = strings.TrimSpace(p)
			continue
		}
		if !strings.HasPrefix(line, "Benchmark") {
			continue
		}
		fields := strings.Fields(line)
		// name, iterations, then value/unit pairs; a line without them is a benchmark
		// that failed or only logged (its name is printed before its output).
		if len(fields) < 4 || len(fields)%2 != 0 {
			continue
		}
		if _, err := strconv.ParseInt(fields[1], 10, 64); err != nil {
			continue
		}
		key := pkg + " " + procSuffix.ReplaceAllString(fields[0], "")
		if samples[key] == nil {
			samples[key] = map[string][]float64{}
		}
		for i := 2; i+1 < len(fields); i += 2 {
			v, err := strconv.ParseFloat(fields[i], 64)
			if err != nil {
				return nil, fmt.Errorf("line %d: value %q of %s: %w", n, fields[i], fields[0], err)
			}
			samples[key][fields[i+1]] = append(samples[key][fields[i+1]], v)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read benchmark output: %w", err)
	}
	out := make(map[string]Figures, len(samples))
	for key, units := range samples {
		f := Figures{}
		for unit, vs := range units {
			f[unit] = best(unit, vs)
		}
		out[key] = f
	}
	return out, nil
}

func best(unit string, vs []float64) float64 {
	if higherIsBetter(unit) {
		return slices.Max(vs)
	}
	return slices.Min(vs)
}
