package soak

import (
	"fmt"
	"strings"

	"github.com/bitbrat/twitch-edge/infra/collect"
	"github.com/bitbrat/twitch-edge/shared/event"
	"github.com/bitbrat/twitch-edge/shared/twitch/twitchtest"
)

// Fault is one fault's count on internal.ingress.v1, where exactly-once is judged:
// the events Twitch sent while the fault (or the recovery after it) was going on.
// During a hand-off Twitch sends one event to two sessions, each copy with its own
// message id: an event is one Notify, whatever the number of its copies.
type Fault struct {
	Name string
	// Events the fake sent to at least one subscribed socket.
	Events int
	// OnIngress: events with exactly one ingress message; Lost: none; Duplicated:
	// more than one (distinct Pub/Sub messages, over all the event's copies).
	OnIngress, Lost, Duplicated int
	// Copies: events sent to more than one socket (the overlap of a hand-off).
	Copies int
	// NoSubscription: notifications the fake could not send (no subscribed socket).
	NoSubscription int
	// RawDuplicates: notifications of the fault published twice on the raw topic
	// (same message id). Normalize's message-id claim drops the second; they are
	// expected only where RawRepeatsExpected says why.
	RawDuplicates int
	// RawRepeatsExpected: the fault may publish a notification twice on the raw topic.
	RawRepeatsExpected bool
	// Retried (conduit mode): events whose target shard was down, delivered on the
	// retry shard; counted as delivered. TwitchDropped: events no shard took (not
	// expected; a failure, see Result.TwitchDropped).
	Retried, TwitchDropped int
}

// rawRepeatsExpected are the faults after which the raw topic may carry a repeat: a
// publish whose answer Pub/Sub (frozen) had not given is also spilled, and the spill
// is replayed (by the same process once Pub/Sub is back, or the next one) — the
// relay cannot know whether the publish took. Normalize's message-id claim drops the
// repeat; on internal.ingress.v1 these faults count 0 duplicated too.
var rawRepeatsExpected = map[string]bool{stepSigtermFrozen: true, stepRestartPending: true}

// OK reports 0 lost and 0 duplicated on the ingress topic. Exactly-once is judged
// there, where BitBrat reads: the raw topic is at least once since the connector's
// forwarded-id ledger went (#19), and Normalize's message-id claim drops a repeat.
// Raw repeats are reported (a repeat outside the faults that explain one is worth a
// look), not failed on.
func (f Fault) OK() bool {
	return f.Lost == 0 && f.Duplicated == 0 && f.TwitchDropped == 0
}

// faults counts each phase's events on the ingress collector, in the order the
// phases ran.
func faults(sentList []sent, ing *collect.Events, col *collect.Notifications, s *stream, routes map[string]twitchtest.ConduitDelivery) []Fault {
	type ev struct {
		phase string
		ids   []string
	}
	var order []string
	byPhase := map[string]*Fault{}
	events := map[int]*ev{}
	var seqs []int
	for _, x := range sentList {
		e := events[x.event]
		if e == nil {
			e = &ev{phase: x.phase}
			events[x.event] = e
			seqs = append(seqs, x.event)
		}
		e.ids = append(e.ids, x.id)
	}
	for _, seq := range seqs {
		e := events[seq]
		f := byPhase[e.phase]
		if f == nil {
			f = &Fault{Name: e.phase, NoSubscription: s.NoSubscriptionIn(e.phase),
				RawDuplicates: col.Counts(s.PhaseNumberOf(e.phase)).Duplicates, RawRepeatsExpected: rawRepeatsExpected[e.phase]}
			byPhase[e.phase] = f
			order = append(order, e.phase)
		}
		n, dropped, retried := 0, 0, false
		for _, id := range e.ids {
			n += ing.Distinct(event.CorrelationIDForEventSub(id))
			if r, ok := routes[id]; ok && r.Lost {
				dropped++
			} else if ok && r.Retry != "" && r.DeliveredTo == r.Retry {
				retried = true
			}
		}
		if dropped == len(e.ids) {
			// Twitch sent it to no one: not an event of the fault's count.
			f.TwitchDropped++
			continue
		}
		f.Events++
		if len(e.ids) > 1 {
			f.Copies++
		}
		if retried {
			f.Retried++
		}
		switch {
		case n == 0:
			f.Lost++
		case n == 1:
			f.OnIngress++
		default:
			f.Duplicated++
		}
	}
	out := make([]Fault, 0, len(order))
	for _, p := range order {
		out = append(out, *byPhase[p])
	}
	return out
}

// ingressMissing is how many events sent so far have no ingress message yet.
func ingressMissing(sentList []sent, ing *collect.Events) int {
	found := map[int]bool{}
	all := map[int]bool{}
	for _, x := range sentList {
		all[x.event] = true
		if !found[x.event] && ing.Distinct(event.CorrelationIDForEventSub(x.id)) > 0 {
			found[x.event] = true
		}
	}
	return len(all) - len(found)
}

func writeFaults(b *strings.Builder, fs []Fault, conduit bool) {
	if conduit {
		writeConduitFaults(b, fs)
		return
	}
	b.WriteString("per fault, on internal.ingress.v1 (events Twitch sent to a subscribed socket during the fault and its recovery)\n")
	fmt.Fprintf(b, "  %-56s %7s %7s %5s %5s %7s %7s %7s\n", "fault", "events", "ingress", "lost", "dup", "copies", "no-sub", "raw-dup")
	for _, f := range fs {
		note := mark(f.OK())
		switch {
		case f.RawDuplicates > 0 && f.RawRepeatsExpected:
			note += " (raw repeats: publishes unanswered at SIGTERM, spilled too; dropped by Normalize)"
		case f.RawDuplicates > 0:
			note += " (raw repeats not explained by this fault; dropped by Normalize)"
		}
		fmt.Fprintf(b, "  %-56s %7d %7d %5d %5d %7d %7d %7d  %s\n", f.Name, f.Events, f.OnIngress, f.Lost, f.Duplicated,
			f.Copies, f.NoSubscription, f.RawDuplicates, note)
	}
	b.WriteString("  (copies: events Twitch sent to two sessions, a hand-off's overlap; no-sub: not sent, no subscribed socket)\n")
}

// writeConduitFaults is the per-fault table of the conduit script.
func writeConduitFaults(b *strings.Builder, fs []Fault) {
	b.WriteString("per fault, on internal.ingress.v1 (events Twitch routed to a shard during the fault and its recovery)\n")
	fmt.Fprintf(b, "  %-56s %7s %7s %5s %5s %7s %7s %7s %7s\n", "fault", "events", "ingress", "lost", "dup", "retried", "tw-drop", "no-sub", "raw-dup")
	for _, f := range fs {
		note := mark(f.OK())
		if f.RawDuplicates > 0 {
			note += " (raw repeats; dropped by Normalize)"
		}
		fmt.Fprintf(b, "  %-56s %7d %7d %5d %5d %7d %7d %7d %7d  %s\n", f.Name, f.Events, f.OnIngress, f.Lost, f.Duplicated,
			f.Retried, f.TwitchDropped, f.NoSubscription, f.RawDuplicates, note)
	}
	b.WriteString("  (retried: the target shard was down, Twitch's one retry on the other shard took it, counted as delivered;\n" +
		"   tw-drop: neither shard took it, what Twitch drops; no-sub: not sent, no subscription for the channel at the time)\n")
}
