package main

import (
	"fmt"
	"math"
	"strings"

	"github.com/bitbrat/twitch-edge/infra/load/opcount"
)

// Inputs are the measured counts and sizes a cost is computed from.
type Inputs struct {
	// Budgets: Firestore operations per message of each function (docs/perf/ops.json).
	Budgets map[string]opcount.Budget
	// Connector, per notification, from the load run (docs/perf/load.json) at
	// LoadRate: Firestore documents written and read, Pub/Sub publish requests and
	// published bytes (data and attributes).
	LoadRate                       int
	ConnWrites, ConnReads          float64
	ConnRequests, ConnPublishBytes float64
	// Message sizes (data and attributes), bytes: the ingress event Normalize
	// publishes, an egress (chat) event, a finalize message.
	IngressBytes, EgressBytes, FinalizeBytes int
	// Function billing: billable instance time per invocation, and the instance's
	// vCPUs and memory.
	FnSeconds, FnVCPU, FnGiB float64
	// Connector instance: vCPUs and memory, allocated all the time.
	ConnVCPU, ConnGiB float64
}

// Line is one cost item of one flow, per million messages.
type Line struct {
	Item     string
	Quantity float64 // per million messages
	Unit     string
	USD      float64
}

// Flow is the cost lines of one million messages of one kind.
type Flow struct {
	Name  string
	Lines []Line
}

// Total is the flow's cost per million messages.
func (f Flow) Total() float64 {
	t := 0.0
	for _, l := range f.Lines {
		t += l.USD
	}
	return t
}

const million = 1e6

// billed is what Pub/Sub bills for one request carrying msgs messages of size
// bytes (data and attributes) each.
func billed(p Prices, msgs float64, size float64) float64 {
	return math.Max(float64(p.PubSubMinRequest), msgs*(size+float64(p.PubSubPerMessage)))
}

func firestoreLines(p Prices, writes, reads, creates float64) []Line {
	return []Line{
		{"Firestore document writes", writes * million, "writes", writes * million * p.FirestoreWrite},
		{"Firestore document reads", reads * million, "reads", reads * million * p.FirestoreRead},
		{"Firestore TTL deletes (each created document)", creates * million, "deletes", creates * million * p.FirestoreDelete},
	}
}

func functionLines(p Prices, in Inputs, invocations float64) []Line {
	s := invocations * in.FnSeconds * million
	return []Line{
		{"function invocations", invocations * million, "requests", invocations * million * p.FnRequest},
		{"function vCPU time", s * in.FnVCPU, "vCPU-s", s * in.FnVCPU * p.FnVCPUSecond},
		{"function memory time", s * in.FnGiB, "GiB-s", s * in.FnGiB * p.FnGiBSecond},
	}
}

// pubsubLine sums the billed bytes of every publish and delivery of one message.
func pubsubLine(p Prices, what string, bytesPerMessage ...float64) Line {
	t := 0.0
	for _, b := range bytesPerMessage {
		t += b
	}
	return Line{"Pub/Sub throughput (" + what + ")", t * million / (1 << 30), "GiB", t * million * p.PubSubByte}
}

// Ingress is one million notifications: the connector publishes each to the raw
// topic (batched), the push subscription delivers each to Normalize, which claims it
// and publishes the event to internal.ingress.v1 (delivery to BitBrat's own
// subscriptions is BitBrat's bill).
func Ingress(p Prices, in Inputs) Flow {
	n := in.Budgets["normalize"]
	rawSize := in.ConnPublishBytes
	perRequest := 1 / math.Max(in.ConnRequests, 1e-9) // messages per publish request
	rawPublish := billed(p, perRequest, rawSize) / perRequest
	lines := []Line{pubsubLine(p, "publishes and pushes",
		rawPublish,                             // connector → raw topic, batched
		billed(p, 1, rawSize),                  // raw topic → Normalize, one push per message
		billed(p, 1, float64(in.IngressBytes)), // Normalize → internal.ingress.v1
	)}
	lines = append(lines, firestoreLines(p, float64(n.Writes)+in.ConnWrites, float64(n.Reads)+in.ConnReads, float64(n.Creates))...)
	lines = append(lines, functionLines(p, in, 1)...)
	return Flow{Name: "ingested events", Lines: lines}
}

// IngressBefore is Ingress as #19 found it: the connector's ledger (a write and a
// TTL delete per notification) and Normalize's claim in two transactions (3 writes
// and 2 reads per event in all, as counted then).
func IngressBefore(p Prices, in Inputs) Flow {
	f := Ingress(p, in)
	f.Name = "ingested events, before #19"
	for i, l := range f.Lines {
		switch l.Item {
		case "Firestore document writes":
			f.Lines[i] = firestoreLines(p, 3, 2, 2)[0]
		case "Firestore document reads":
			f.Lines[i] = firestoreLines(p, 3, 2, 2)[1]
		case "Firestore TTL deletes (each created document)":
			f.Lines[i] = firestoreLines(p, 3, 2, 2)[2]
		}
	}
	return f
}

// Egress is one million chat messages delivered: the egress event pushed to
// EgressChat, which claims, budgets, sends and reports; the finalize message
// published and pushed to Finalize, which records the outcome.
func Egress(p Prices, in Inputs) Flow {
	c, fin := in.Budgets["egressChat"], in.Budgets["finalize"]
	lines := []Line{pubsubLine(p, "publishes and pushes",
		billed(p, 1, float64(in.EgressBytes)),   // egress event → EgressChat, push
		billed(p, 1, float64(in.FinalizeBytes)), // EgressChat → finalize topic
		billed(p, 1, float64(in.FinalizeBytes)), // finalize topic → Finalize, push
	)}
	lines = append(lines, firestoreLines(p, float64(c.Writes+fin.Writes), float64(c.Reads+fin.Reads), float64(c.Creates+fin.Creates))...)
	lines = append(lines, functionLines(p, in, 2)...)
	return Flow{Name: "egress chat messages", Lines: lines}
}

// ConnectorMonth is the connector's instance cost per month (730 hours).
func ConnectorMonth(p Prices, in Inputs) float64 {
	return 730 * 3600 * (in.ConnVCPU*p.RunVCPUSecond + in.ConnGiB*p.RunGiBSecond)
}

// Markdown renders the flows side by side with the connector's share by rate.
func Markdown(p Prices, in Inputs) string {
	var b strings.Builder
	before, ingress, egress := IngressBefore(p, in), Ingress(p, in), Egress(p, in)
	b.WriteString("| per million | ingested events, before #19 | ingested events | egress chat messages |\n|---|---:|---:|---:|\n")
	for i, l := range ingress.Lines {
		fmt.Fprintf(&b, "| %s | %s | %s | %s |\n", l.Item, cell(before.Lines[i]), cell(l), cell(egress.Lines[i]))
	}
	fmt.Fprintf(&b, "| **total (without the connector)** | **$%.2f** | **$%.2f** | **$%.2f** |\n", before.Total(), ingress.Total(), egress.Total())
	month := ConnectorMonth(p, in)
	fmt.Fprintf(&b, "\nThe connector (%.2g vCPU, %.2g GiB, instance-based) costs $%.2f a month whatever the traffic; per million events that is ", in.ConnVCPU, in.ConnGiB, month)
	var parts []string
	for _, rate := range []float64{1, 10, 100, 1000} {
		parts = append(parts, fmt.Sprintf("$%.2f at %g/s", month/(730*3600*rate)*million, rate))
	}
	b.WriteString(strings.Join(parts, ", ") + ".\n")
	fmt.Fprintf(&b, "\nInputs: Firestore operations per message from docs/perf/ops.json (counted by the tests named there); the connector's per-notification Firestore operations (%.4f writes, %.4f reads), publish requests (%.4f) and published bytes (%.0f) from docs/perf/load.json at %d/s; message sizes %d B (ingress event), %d B (egress event), %d B (finalize) from shared/event/testdata; functions billed %.0f ms of a %.2g vCPU, %.2g GiB instance per invocation (Cloud Run rounds billable time up to 100 ms; requests that overlap on one instance share it, so this is the sparse-traffic upper bound).\n",
		in.ConnWrites, in.ConnReads, in.ConnRequests, in.ConnPublishBytes, in.LoadRate, in.IngressBytes, in.EgressBytes, in.FinalizeBytes,
		in.FnSeconds*1000, in.FnVCPU, in.FnGiB)
	fmt.Fprintf(&b, "\nList prices read %s, no free tier: %s.\n", p.Date, strings.Join(p.Sources, "; "))
	return b.String()
}

func cell(l Line) string {
	q := l.Quantity
	var qs string
	switch {
	case l.Unit == "GiB":
		qs = fmt.Sprintf("%.2f %s", q, l.Unit)
	case q >= 1e6:
		qs = fmt.Sprintf("%.3g M %s", q/1e6, l.Unit)
	default:
		qs = fmt.Sprintf("%.0f %s", q, l.Unit)
	}
	return fmt.Sprintf("$%.3f (%s)", l.USD, qs)
}
