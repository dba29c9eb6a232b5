package main

import (
	"bytes"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

const sample = `goos: linux
goarch: amd64
pkg: example.com/m/functions/normalize
cpu: Intel(R) Xeon(R) Processor
BenchmarkNormalize/follow-2         	   89042	     13122 ns/op	    3035 B/op	      18 allocs/op
BenchmarkNormalize/follow-2         	   86226	     11000 ns/op	    3035 B/op	      18 allocs/op
BenchmarkNormalize/follow-2         	   92344	     12179 ns/op	    3035 B/op	      18 allocs/op
BenchmarkNormalize/update
    normalize_test.go:12: some log line
BenchmarkNormalize/update-2         	   90158	     14836 ns/op	    3324 B/op	      19 allocs/op
BenchmarkNormalize/update-2         	   69027	     14682 ns/op	    3323 B/op	      19 allocs/op
PASS
ok  	example.com/m/functions/normalize	16.134s
pkg: example.com/m/functions/finalize
BenchmarkDecodeDecide-8   	  116270	     10441 ns/op	  45.97 MB/s	    1929 B/op	      17 allocs/op
BenchmarkDecodeDecide-8   	  116270	     12441 ns/op	  40.01 MB/s	    1929 B/op	      17 allocs/op
BenchmarkFootprint   	  1	     5 ns/op	  59.0 B/id
`

func TestParse(t *testing.T) {
	got, err := Parse(strings.NewReader(sample))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]Figures{
		// the best of three runs
		"example.com/m/functions/normalize BenchmarkNormalize/follow": {"ns/op": 11000, "B/op": 3035, "allocs/op": 18},
		// the best of two; the name-only line and the log are skipped
		"example.com/m/functions/normalize BenchmarkNormalize/update": {"ns/op": 14682, "B/op": 3323, "allocs/op": 19},
		// another package, another GOMAXPROCS suffix, a rate
		"example.com/m/functions/finalize BenchmarkDecodeDecide": {"ns/op": 10441, "MB/s": 45.97, "B/op": 1929, "allocs/op": 17},
		// no suffix, a custom metric
		"example.com/m/functions/finalize BenchmarkFootprint": {"ns/op": 5, "B/id": 59},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Parse:\n got %v\nwant %v", got, want)
	}
}

func TestParseRejectsGarbledValue(t *testing.T) {
	if _, err := Parse(strings.NewReader("BenchmarkX-2 10 1x2 ns/op\n")); err == nil {
		t.Fatal("want an error for a value that is not a number")
	}
}

func TestCompare(t *testing.T) {
	base := map[string]Figures{
		"p BenchmarkA":    {"ns/op": 1000, "B/op": 100, "allocs/op": 10},
		"p BenchmarkB":    {"ns/op": 1000, "MB/s": 50, "msgs/s": 50, "allocs/op": 0},
		"p BenchmarkGone": {"ns/op": 1},
	}
	tests := []struct {
		name    string
		current map[string]Figures
		want    []Change
	}{
		{"within threshold either way",
			map[string]Figures{"p BenchmarkA": {"ns/op": 1199, "B/op": 81, "allocs/op": 10}, "p BenchmarkB": {"ns/op": 801, "MB/s": 50, "msgs/s": 50, "allocs/op": 0}, "p BenchmarkGone": {"ns/op": 1}},
			nil},
		{"times have their own threshold",
			map[string]Figures{"p BenchmarkA": {"ns/op": 1300, "B/op": 100, "allocs/op": 10}, "p BenchmarkB": base["p BenchmarkB"], "p BenchmarkGone": {"ns/op": 1}},
			nil},
		{"slower by more than 20 % is worse",
			map[string]Figures{"p BenchmarkA": {"ns/op": 1300, "B/op": 100, "allocs/op": 10}, "p BenchmarkB": base["p BenchmarkB"], "p BenchmarkGone": {"ns/op": 1}},
			[]Change{{Key: "p BenchmarkA", Unit: "ns/op", Old: 1000, New: 1300, Delta: 0.3, Worse: true, Timing: true}}},
		{"faster by more than 20 % is moved, not worse",
			map[string]Figures{"p BenchmarkA": {"ns/op": 500, "B/op": 100, "allocs/op": 10}, "p BenchmarkB": base["p BenchmarkB"], "p BenchmarkGone": {"ns/op": 1}},
			[]Change{{Key: "p BenchmarkA", Unit: "ns/op", Old: 1000, New: 500, Delta: -0.5, Timing: true}}},
		{"a lower rate is worse, an allocation where there was none is worse, MB/s is not ns/op twice",
			map[string]Figures{"p BenchmarkA": base["p BenchmarkA"], "p BenchmarkB": {"ns/op": 1000, "MB/s": 30, "msgs/s": 30, "allocs/op": 1}, "p BenchmarkGone": {"ns/op": 1}},
			[]Change{
				{Key: "p BenchmarkB", Unit: "allocs/op", Old: 0, New: 1, Delta: math.Inf(1), Worse: true},
				{Key: "p BenchmarkB", Unit: "msgs/s", Old: 50, New: 30, Delta: -0.4, Worse: true, Timing: true},
			}},
		{"benchmarks on one side only are listed",
			map[string]Figures{"p BenchmarkA": base["p BenchmarkA"], "p BenchmarkB": base["p BenchmarkB"], "p BenchmarkNew": {"ns/op": 5}},
			[]Change{{Key: "p BenchmarkGone", Note: "not run"}, {Key: "p BenchmarkNew", Note: "no baseline"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			th := Thresholds{Count: 0.2, Time: 0.2}
			if tt.name == "times have their own threshold" {
				th.Time = 0.5
			}
			got := Compare(base, tt.current, th)
			for i := range got {
				got[i].Delta = math.Round(got[i].Delta*1000) / 1000
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Compare:\n got %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

// TestRunUpdateThenCompare runs the command as make does: write a baseline, compare
// the same figures (exit 0), then a slower run (exit 1, the regression named).
func TestRunUpdateThenCompare(t *testing.T) {
	dir := t.TempDir()
	baseline := filepath.Join(dir, "bench.json")
	out := filepath.Join(dir, "bench.out")
	if err := os.WriteFile(out, []byte(sample), 0o644); err != nil {
		t.Fatal(err)
	}
	var stdout, stderr bytes.Buffer
	if code := run([]string{"-baseline", baseline, "-update", "-measured", "test", out}, nil, &stdout, &stderr); code != 0 {
		t.Fatalf("update: exit %d: %s", code, stderr.String())
	}
	stdout.Reset()
	// -max-load: the guard off, so that the test does not depend on the machine's load.
	if code := run([]string{"-baseline", baseline, "-max-load", "1e9", out}, nil, &stdout, &stderr); code != 0 {
		t.Fatalf("same figures: exit %d: %s%s", code, stdout.String(), stderr.String())
	}
	if !strings.Contains(stdout.String(), "no figure moved") {
		t.Errorf("same figures: %s", stdout.String())
	}
	slower := strings.ReplaceAll(strings.ReplaceAll(sample, "10441 ns/op", "20441 ns/op"), "12441 ns/op", "22441 ns/op")
	stdout.Reset()
	if code := run([]string{"-baseline", baseline, "-max-load", "1e9"}, strings.NewReader(slower), &stdout, &stderr); code != 1 {
		t.Fatalf("slower: exit %d, want 1: %s%s", code, stdout.String(), stderr.String())
	}
	if !strings.Contains(stdout.String(), "BenchmarkDecodeDecide") || !strings.Contains(stdout.String(), "WORSE") {
		t.Errorf("slower: report does not name the regression:\n%s", stdout.String())
	}
	// On a loaded machine (-max-load -1: always) a slower time is listed, not failed.
	stdout.Reset()
	if code := run([]string{"-baseline", baseline, "-max-load", "-1"}, strings.NewReader(slower), &stdout, &stderr); code != 0 ||
		!strings.Contains(stdout.String(), "machine loaded: not failed") {
		t.Fatalf("slower on a loaded machine: exit %d, want 0 with the figure listed:\n%s", code, stdout.String())
	}
	// Counts fail whatever the load.
	stdout.Reset()
	more := strings.ReplaceAll(sample, "18 allocs/op", "30 allocs/op")
	if code := run([]string{"-baseline", baseline, "-max-load", "-1"}, strings.NewReader(more), &stdout, &stderr); code != 1 {
		t.Fatalf("more allocations on a loaded machine: exit %d, want 1:\n%s", code, stdout.String())
	}
	stdout.Reset()
	if code := run([]string{"-baseline", baseline}, strings.NewReader("PASS\n"), &stdout, &stderr); code != 2 {
		t.Errorf("no results: exit %d, want 2", code)
	}
}
