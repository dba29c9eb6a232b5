// Command vulngate reads `govulncheck -format json` on stdin and decides what fails
// `make lint`: a vulnerability our code reaches (a called symbol) in a module we
// require fails it; one in the standard library of the local Go toolchain is reported
// and does not, because deployed binaries are built by Cloud Build with Google's
// current Go patch release, not with this machine's toolchain (README, Static
// checks). Findings our code does not reach are counted only.
//
//	govulncheck -db file://$DB -format json ./... | go run ./infra/cmd/vulngate
package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
)

// message is the one part of govulncheck's JSON stream this reads.
type message struct {
	Finding *finding `json:"finding"`
}

type finding struct {
	OSV          string  `json:"osv"`
	FixedVersion string  `json:"fixed_version"`
	Trace        []frame `json:"trace"`
}

type frame struct {
	Module   string `json:"module"`
	Version  string `json:"version"`
	Package  string `json:"package"`
	Function string `json:"function"`
}

// vuln is one OSV entry our code reaches.
type vuln struct {
	id, module, version, fixed string
	packages                   []string
}

func main() {
	code, err := run(os.Stdin, os.Stdout)
	if err != nil {
		fmt.Fprintln(os.Stderr, "vulngate:", err)
	}
	os.Exit(code)
}

// run returns 1 when a required module has a reachable vulnerability, 2 when the
// input is not govulncheck's JSON.
func run(in io.Reader, out io.Writer) (int, error) {
	called := map[string]*vuln{}
	unreached := map[string]bool{}
	dec := json.NewDecoder(in)
	n := 0
	for {
		var m message
		err := dec.Decode(&m)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return 2, fmt.Errorf("read govulncheck's JSON (message %d): %w", n+1, err)
		}
		n++
		f := m.Finding
		if f == nil || len(f.Trace) == 0 {
			continue
		}
		top := f.Trace[0]
		if top.Function == "" { // imported or required, not called
			unreached[f.OSV] = true
			continue
		}
		v := called[f.OSV]
		if v == nil {
			v = &vuln{id: f.OSV, module: top.Module, version: top.Version, fixed: f.FixedVersion}
			called[f.OSV] = v
		}
		if !slices.Contains(v.packages, top.Package) {
			v.packages = append(v.packages, top.Package)
		}
	}
	if n == 0 {
		return 2, errors.New("no input: pipe `govulncheck -format json` into it")
	}
	var std, mods []*vuln
	for id, v := range called {
		delete(unreached, id)
		if v.module == "stdlib" {
			std = append(std, v)
		} else {
			mods = append(mods, v)
		}
	}
	byID := func(a, b *vuln) int { return strings.Compare(a.id, b.id) }
	slices.SortFunc(std, byID)
	slices.SortFunc(mods, byID)
	for _, v := range std {
		fmt.Fprintf(out, "reported: %s in the standard library %s (%s), fixed in %s: this toolchain's, not the deployed one's\n",
			v.id, v.version, strings.Join(v.packages, ", "), v.fixed)
	}
	for _, v := range mods {
		fmt.Fprintf(out, "FAIL: %s in %s@%s (%s), fixed in %s: upgrade the module\n",
			v.id, v.module, v.version, strings.Join(v.packages, ", "), v.fixed)
	}
	fmt.Fprintf(out, "govulncheck: %d reachable in required modules, %d reachable in the local standard library (reported), %d not reachable\n",
		len(mods), len(std), len(unreached))
	if len(mods) > 0 {
		return 1, nil
	}
	return 0, nil
}
