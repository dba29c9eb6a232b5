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
// Timings depend on the machine and on what else runs on it: compare figures taken
// on the same machine under a similar load (the report prints both loads), and
// re-take the baseline (-update) after a change that is meant to move them.
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
	"slices"
	"strings"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("benchcheck", flag.ContinueOnError)
	fs.SetOutput(stderr)
	baselinePath := fs.String("baseline", "docs/perf/bench.json", "committed reference figures")
	threshold := fs.Float64("threshold", 0.20, "relative change that counts as moved (0.2 = 20 %)")
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
	fmt.Fprintf(stdout, "benchcheck: %d benchmarks against %s (%s); load now %s\n", len(current), *baselinePath, base.Measured, loadAverage())
	if worse := Report(stdout, Compare(base.Benchmarks, current, *threshold), *threshold); worse > 0 {
		fmt.Fprintf(stdout, "benchcheck: %d figures worse by more than %.0f %%\n", worse, *threshold*100)
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
