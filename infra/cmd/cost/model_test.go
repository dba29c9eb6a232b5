package main

import (
	"math"
	"strings"
	"testing"

	"github.com/bitbrat/twitch-edge/infra/load/opcount"
)

func testInputs() Inputs {
	return Inputs{
		Budgets: map[string]opcount.Budget{
			"normalize":  {Writes: 1, Reads: 0, Creates: 1},
			"egressChat": {Writes: 3, Reads: 1, Creates: 1},
			"finalize":   {Writes: 1, Reads: 1, Creates: 1},
		},
		LoadRate: 1000, ConnRequests: 0.05, ConnPublishBytes: 964,
		IngressBytes: 1300, EgressBytes: 900, FinalizeBytes: 480,
		FnSeconds: 0.1, FnVCPU: 1, FnGiB: 0.5, ConnVCPU: 1, ConnGiB: 0.5,
	}
}

func TestCostLines(t *testing.T) {
	p, in := ListPrices, testInputs()
	find := func(f Flow, prefix string) Line {
		for _, l := range f.Lines {
			if strings.HasPrefix(l.Item, prefix) {
				return l
			}
		}
		t.Fatalf("%s has no line %q", f.Name, prefix)
		return Line{}
	}
	tib := float64(1 << 40)
	cases := []struct {
		name string
		flow Flow
		item string
		usd  float64
	}{
		{"ingress: one write a event at $0.09 per 100,000", Ingress(p, in), "Firestore document writes", 0.90},
		{"ingress: no reads", Ingress(p, in), "Firestore document reads", 0},
		{"ingress before: 3 writes", IngressBefore(p, in), "Firestore document writes", 2.70},
		{"ingress before: 2 reads", IngressBefore(p, in), "Firestore document reads", 0.60},
		{"egress: 4 writes with Finalize's", Egress(p, in), "Firestore document writes", 3.60},
		{"egress: 2 reads with Finalize's", Egress(p, in), "Firestore document reads", 0.60},
		{"egress: 2 documents deleted by TTL", Egress(p, in), "Firestore TTL deletes", 0.20},
		{"egress: two invocations", Egress(p, in), "function invocations", 0.80},
		{"ingress: 100 ms of 1 vCPU per invocation", Ingress(p, in), "function vCPU time", 2.40},
		// 20 messages of 1,000 bytes a publish request; one 1,000-byte push; the event.
		{"ingress: Pub/Sub bytes", Ingress(p, in), "Pub/Sub throughput", (1000 + 1000 + 1336) * 1e6 * 40 / tib},
		// Small messages are billed the 1,000-byte minimum per request.
		{"egress: Pub/Sub minimums", Egress(p, in), "Pub/Sub throughput", 3000 * 1e6 * 40 / tib},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := find(c.flow, c.item).USD; math.Abs(got-c.usd) > 1e-6 {
				t.Errorf("%s: $%.6f, want $%.6f", c.item, got, c.usd)
			}
		})
	}
	if m := ConnectorMonth(p, in); math.Abs(m-730*3600*(0.000018+0.5*0.000002)) > 1e-9 {
		t.Errorf("connector month $%.2f", m)
	}
	md := Markdown(p, in)
	if !strings.Contains(md, "| **total (without the connector)** |") || !strings.Contains(md, ListPrices.Date) {
		t.Errorf("markdown:\n%s", md)
	}
}
