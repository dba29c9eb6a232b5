// Command cost computes what the pipeline costs per million ingested events and per
// million egress chat messages at Google Cloud list prices, from the counts the
// tests and the load run measured: Firestore operations per message
// (docs/perf/ops.json), the connector's publishes and bytes per notification
// (docs/perf/load.json) and the contract's example messages (shared/event/testdata).
// It prints the README's cost table (Markdown).
//
//	go run ./infra/cmd/cost                 # make cost
//	go run ./infra/cmd/cost -rate 5000 -fn-ms 30
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"

	"github.com/bitbrat/twitch-edge/infra/load"
	"github.com/bitbrat/twitch-edge/infra/load/opcount"
	"github.com/bitbrat/twitch-edge/infra/stack"
	"github.com/bitbrat/twitch-edge/shared/event"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "cost:", err)
		os.Exit(1)
	}
}

func run() error {
	var (
		loadFile = flag.String("load", "docs/perf/load.json", "load run results (relative to the module root unless absolute)")
		opsFile  = flag.String("ops", "docs/perf/ops.json", "Firestore operations per message")
		rate     = flag.Int("rate", 1000, "the load run's rate whose connector figures are used")
		fnMS     = flag.Float64("fn-ms", 100, "billable function instance time per invocation, ms")
		fnVCPU   = flag.Float64("fn-vcpu", 1, "function instance vCPUs")
		fnGiB    = flag.Float64("fn-gib", 0.5, "function instance memory, GiB")
		connVCPU = flag.Float64("connector-vcpu", 1, "connector instance vCPUs")
		connGiB  = flag.Float64("connector-gib", 0.5, "connector instance memory, GiB")
	)
	flag.Parse()
	root, err := stack.ModuleRoot()
	if err != nil {
		return err
	}
	abs := func(p string) string {
		if filepath.IsAbs(p) {
			return p
		}
		return filepath.Join(root, p)
	}
	budgets, err := opcount.ReadBudgets(abs(*opsFile))
	if err != nil {
		return err
	}
	for _, k := range []string{"normalize", "egressChat", "finalize"} {
		if _, ok := budgets[k]; !ok {
			return fmt.Errorf("%s has no budget for %s", *opsFile, k)
		}
	}
	in := Inputs{Budgets: budgets, LoadRate: *rate, FnSeconds: *fnMS / 1000, FnVCPU: *fnVCPU, FnGiB: *fnGiB,
		ConnVCPU: *connVCPU, ConnGiB: *connGiB}
	if err := connectorFigures(abs(*loadFile), *rate, &in); err != nil {
		return err
	}
	td := filepath.Join(root, "shared", "event", "testdata")
	if in.IngressBytes, err = eventSize(filepath.Join(td, "ingress_follow.json")); err != nil {
		return err
	}
	if in.EgressBytes, err = eventSize(filepath.Join(td, "egress_chat.json")); err != nil {
		return err
	}
	fin, err := os.ReadFile(filepath.Join(td, "finalize_sent.json"))
	if err != nil {
		return fmt.Errorf("finalize example: %w", err)
	}
	in.FinalizeBytes = len(fin)
	fmt.Print(Markdown(ListPrices, in))
	return nil
}

// connectorFigures takes the connector's per-notification counts at rate (the
// median over the run's rounds).
func connectorFigures(path string, rate int, in *Inputs) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("load results (run make load first): %w", err)
	}
	var rep load.Report
	if err := json.Unmarshal(b, &rep); err != nil {
		return fmt.Errorf("load results %s: %w", path, err)
	}
	for _, m := range rep.Medians() {
		if m.Rate == rate {
			if m.PublishRequests == 0 {
				return fmt.Errorf("%s at %d/s has no publish counts (a run from before the counting proxy)", path, rate)
			}
			in.ConnWrites, in.ConnReads, in.ConnRequests, in.ConnPublishBytes = m.Writes, m.Reads, m.PublishRequests, m.PublishedBytes/m.Published
			return nil
		}
	}
	return fmt.Errorf("%s has no step at %d/s", path, rate)
}

// eventSize is an example event's size on the bus: its JSON and the attributes the
// pipeline sets.
func eventSize(path string) (int, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, fmt.Errorf("example event: %w", err)
	}
	var e event.InternalEventV2
	if err := json.Unmarshal(b, &e); err != nil {
		return 0, fmt.Errorf("example event %s: %w", path, err)
	}
	n := len(b)
	for k, v := range event.Attributes(&e) {
		n += len(k) + len(v)
	}
	return n, nil
}
