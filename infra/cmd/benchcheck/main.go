// Command benchcheck is the benchmarks' regression guard: it reads `go test -bench`
// output (files, or stdin), takes each benchmark's median over its runs, compares it
// with the figures committed in docs/perf/bench.json and lists every figure (time,
// bytes, allocations, custom metrics) that moved by more than the threshold. It exits
// 1 when one got worse, so `make bench-check` fails on a regression.
//
//	go test -run '^$' -bench . -benchmem -count 5 ./functions/normalize > bench.out
//	go run ./infra/cmd/benchcheck bench.out
//	go run ./infra/cmd/benchcheck -update -measured "$(date -u) load 1.2" bench.out
//
// Timings depend on the machine and on what else runs on it, counts do not: bytes and
// allocations per op fail the check beyond -threshold (20 %), times and rates only
// beyond -time-threshold (50 %), and not at all when the machine is loaded (1-minute
// load above -max-load per CPU), where they are listed. Each benchmark's best of its
// runs is compared (other work only makes a run slower). Re-take the baseline
// (-update) after a change that is meant to move the figures.
package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("benchcheck", flag.ContinueOnError)
	fs.SetOutput(stderr)
	baselinePath := fs.String("baseline", "docs/perf/bench.json", "committed reference figures")
	threshold := fs.Float64("threshold", 0.20, "relative change of a count (B/op, allocs/op) that counts as moved (0.2 = 20 %)")
	timeThreshold := fs.Float64("time-threshold", 0.50, "relative change of a time or rate (ns/op, cpu-ns/op, MB/s) that counts as moved")
	maxLoad := fs.Float64("max-load", 1.0, "above this 1-minute load average per CPU, slower times are listed but do not fail")
	update := fs.Bool("update", false, "write the input's figures as the new baseline instead of comparing")
	measured := fs.String("measured", "", "with -update: when, where and under which load the figures were taken")
	command := fs.String("command", "make bench-check", "with -update: the command that reproduces the figures")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	in, err := readInput(fs.Args(), stdin)
	if err != nil {
		fmt.Fprintf(stderr, "benchcheck: %v\n", err)
		return 2
	}
	current, err := Parse(bytes.NewReader(in))
	if err != nil {
		fmt.Fprintf(stderr, "benchcheck: %v\n", err)
		return 2
	}
	if len(current) == 0 {
		fmt.Fprintln(stderr, "benchcheck: no benchmark results in the input (did `go test -bench` fail?)")
		return 2
	}
	if *update {
		if err := writeBaseline(*baselinePath, Baseline{Measured: *measured, Command: *command, Benchmarks: current}); err != nil {
			fmt.Fprintf(stderr, "benchcheck: %v\n", err)
			return 2
		}
		fmt.Fprintf(stdout, "benchcheck: wrote %d benchmarks to %s\n", len(current), *baselinePath)
		return 0
	}
	base, err := readBaseline(*baselinePath)
	if err != nil {
		fmt.Fprintf(stderr, "benchcheck: %v\n", err)
		return 2
	}
	load := loadAverage()
	loaded := loadPerCPU(load) > *maxLoad
	fmt.Fprintf(stdout, "benchcheck: %d benchmarks against %s (%s); load now %s on %d CPUs\n", len(current), *baselinePath, base.Measured, load, runtime.NumCPU())
	if loaded {
		fmt.Fprintf(stdout, "benchcheck: the machine is loaded (more than %.1f per CPU): times are listed, only counts can fail\n", *maxLoad)
	}
	th := Thresholds{Count: *threshold, Time: *timeThreshold}
	if worse := Report(stdout, Compare(base.Benchmarks, current, th), th, loaded); worse > 0 {
		fmt.Fprintf(stdout, "benchcheck: %d figures worse than the baseline beyond their threshold\n", worse)
		return 1
	}
	return 0
}

func readInput(files []string, stdin io.Reader) ([]byte, error) {
	if len(files) == 0 {
		b, err := io.ReadAll(stdin)
		if err != nil {
			return nil, fmt.Errorf("read stdin: %w", err)
		}
		return b, nil
	}
	var all []byte
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		all = append(append(all, b...), '\n')
	}
	return all, nil
}

func readBaseline(path string) (Baseline, error) {
	var b Baseline
	raw, err := os.ReadFile(path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return b, fmt.Errorf("no baseline at %s (write one with -update)", path)
		}
		return b, err
	}
	if err := json.Unmarshal(raw, &b); err != nil {
		return b, fmt.Errorf("baseline %s: %w", path, err)
	}
	return b, nil
}

func writeBaseline(path string, b Baseline) error {
	// Sorted keys (encoding/json sorts map keys) and one benchmark a line keep the
	// committed file's diffs readable.
	var buf bytes.Buffer
	fmt.Fprintf(&buf, "{\n  \"measured\": %s,\n  \"command\": %s,\n  \"benchmarks\": {\n", quote(b.Measured), quote(b.Command))
	keys := slices.Sorted(maps.Keys(b.Benchmarks))
	for i, k := range keys {
		f, _ := json.Marshal(b.Benchmarks[k])
		sep := ","
		if i == len(keys)-1 {
			sep = ""
		}
		fmt.Fprintf(&buf, "    %s: %s%s\n", quote(k), f, sep)
	}
	buf.WriteString("  }\n}\n")
	return os.WriteFile(path, buf.Bytes(), 0o644)
}

func quote(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// loadPerCPU is the 1-minute load average of load (loadAverage's form) per CPU; 0
// when unknown.
func loadPerCPU(load string) float64 {
	f := strings.Fields(load)
	if len(f) == 0 {
		return 0
	}
	v, err := strconv.ParseFloat(f[0], 64)
	if err != nil {
		return 0
	}
	return v / float64(runtime.NumCPU())
}

// loadAverage is the 1, 5 and 15 minute load of the machine, or "unknown".
func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}
