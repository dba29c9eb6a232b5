// Package soak runs the fault script: during a sustained stream of EventSub
// notifications through the whole local pipeline (infra/stack: the official Pub/Sub
// and Firestore emulators, the connector and the functions server as subprocesses,
// the fake Twitch in-process), it injects every fault the connector must survive —
// session_reconnect every 30 s, keepalive silence, an abrupt TCP drop, a Pub/Sub
// emulator pause and restart, a Firestore emulator restart, duplicate and stale
// frames, a connector restart (SIGTERM with publishes pending), Pub/Sub frozen past
// the relay's buffer (the spill), Firestore frozen across lease renewals (fencing),
// SIGTERM with Pub/Sub frozen and a restart (the spill replayed by the next process),
// a deploy-style make-before-break hand-off between two connector processes, lost
// Helix answers to egress sends, and two egress instances under a burst — and then
// counts. With Options.Transport "conduit" it runs the conduit script instead
// (conduit.go: two connector instances sharing a conduit, and its faults).
//
// What is counted, precisely:
//
//   - Expected: every notification the fake Twitch wrote to an open socket (of a
//     hand-off's two copies of one event, one forwarded is enough). Before a
//     fault that cuts the socket (silence, drop, connector restart, and the Pub/Sub
//     restart that discards topics) the stream is paused until what was sent has been
//     read, so that nothing is in flight in the fake's send queue when the socket
//     ends: Twitch itself gives no guarantee for a frame in flight on a dying socket,
//     and it disables the subscriptions, so nothing is sent until the connector has
//     subscribed again (the few notifications the fake could not deliver for want of
//     an enabled subscription are reported and not expected). session_reconnect, the
//     Pub/Sub pause and the Firestore restart happen with the stream running.
//   - Delivered: distinct EventSub message ids on a pull subscription of the raw
//     topic. Lost = expected and not delivered. Pub/Sub keeps no message published to
//     a topic that has no subscription, and a restarted emulator has neither: so
//     before the Pub/Sub restart everything expected must already be on the pull
//     subscription, and the topology is re-created before the stream resumes.
//   - Duplicates: an EventSub message id published twice on the raw topic (a second
//     Pub/Sub message id). Reported, not failed on: the raw topic is at least once
//     and Normalize drops repeats. Redeliveries by the pull subscription itself are
//     reported, not counted.
//   - Per fault, on internal.ingress.v1 (where exactly-once is judged): the events
//     Twitch sent while the fault and its recovery went on (an event is one Notify:
//     during a hand-off Twitch sends it to two sessions, each copy with its own
//     message id), each on the ingress topic exactly once — lost: none of its copies
//     normalized; duplicated: more than one ingress message for its copies.
//   - Egress faults: a lost Helix answer ends in exactly one send, finalized FAILED
//     DELIVERY_UNKNOWN; a burst against two egress instances (a second functions
//     server with its own push subscriptions, so both race for every message) is sent
//     once each with 0 chat-budget violations (twitchtest's ChatBudgetViolations) and
//     no 429. The functions reach Helix through a proxy in the soak (their
//     TWITCH_API_BASE_URL) that can lose an answer after Twitch acted on the request.
//   - Egress: each egress event published must reach the fake Helix exactly once (a
//     whisper or a chat message with its text), be recorded SENT on
//     events/{correlationId}, and appear exactly once on the finalize topic.
package soak

import (
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/bitbrat/twitch-edge/shared/event"
)

// Options configure a soak run. Zero values take the defaults in the comments.
type Options struct {
	// Transport is "websocket" (the default: the fault script above) or "conduit"
	// (the conduit script, conduit.go: two connector instances on a conduit of two
	// WebSocket shards).
	Transport string
	// Short runs the CI version: shorter gaps between faults (2 s instead of 15 s),
	// 3 egress events of each kind instead of 10, a smaller burst. About 3 minutes.
	Short bool
	// Rate is the notification rate per second. Default 50 (short) or 100.
	Rate int
	// ReconnectEvery is the session_reconnect period. Default 30 s.
	ReconnectEvery time.Duration
	// BinDir receives the built binaries. Default: a temporary directory.
	BinDir string
	// Log receives progress lines. Default: discarded.
	Log io.Writer
	// Output receives the components' log lines. Default: discarded.
	Output func(component, line string)
}

// Phase is one step of the script.
type Phase struct {
	Name string
	Took time.Duration
	Note string
}

// Egress is the outcome of one egress event.
type Egress struct {
	CorrelationID, Kind string
	// Deliveries at the fake Helix with the event's text; Finalized messages on the
	// finalize topic with its correlation id; Status (and the error Code) on
	// events/{correlationId}.
	Deliveries, Finalized int
	Status, Code          string
	Updates               int64
	// WantStatus and WantCode are the expected outcome ("": SENT).
	WantStatus, WantCode string
}

// OK reports exactly one delivery and one finalize, with the expected outcome.
func (e Egress) OK() bool {
	want := e.WantStatus
	if want == "" {
		want = event.StatusSent
	}
	return e.Deliveries == 1 && e.Finalized == 1 && e.Status == want && e.Code == e.WantCode
}

// Result are the counts.
type Result struct {
	// Transport is Options.Transport.
	Transport           string
	Expected, Delivered int
	Missing             []string
	// MissingDetail says, per missing notification, when it was sent, in which
	// phase, and whether it reached internal.ingress.v1 anyway.
	MissingDetail                []string
	Duplicates, Redeliveries     int
	DuplicateFrames, StaleFrames int
	StaleForwarded               int
	NoSubscription               int
	Reconnects                   int
	Egress                       []Egress
	Phases                       []Phase
	Took                         time.Duration
	ConnectorRestarts            int
	// PendingAtRestart is how many notifications the connector had read but not
	// yet published when it was told to stop (its counters, just before SIGTERM).
	PendingAtRestart int
	// DroppedDuplicates and DroppedStale are the connector's own counters at the
	// end (since its restart, which precedes the duplicate and stale frames).
	DroppedDuplicates, DroppedStale int
	// Faults count each fault's events on internal.ingress.v1.
	Faults []Fault
	// EgressFaults are the egress faults' outcomes.
	EgressFaults []EgressFault
	// TwitchDropped: conduit notifications the fake dropped because neither their
	// target shard nor the one retry shard took them (what Twitch drops). Not
	// expected on the topics; with one fault at a time the layout rule (one shard
	// per instance) keeps it at 0, so any is a failure.
	TwitchDropped int
	// Retried: conduit notifications whose target shard was down, delivered on the
	// retry shard (counted as delivered).
	Retried int
	// Instances is the note of the conduit script's fleet (shards held at the end).
	Instances string
}

// OK reports no loss, no duplicate, no stale frame forwarded and every egress event
// delivered and finalized exactly once.
func (r *Result) OK() bool {
	if len(r.Missing) > 0 || r.StaleForwarded > 0 || r.Expected == 0 || r.Delivered < r.Expected || r.TwitchDropped > 0 {
		return false
	}
	for _, f := range r.Faults {
		if !f.OK() {
			return false
		}
	}
	for _, f := range r.EgressFaults {
		if !f.OK() {
			return false
		}
	}
	for _, e := range r.Egress {
		if !e.OK() {
			return false
		}
	}
	return true
}

// expectedRawRepeats are the raw topic's repeats in faults that may cause them.
func (r *Result) expectedRawRepeats() int {
	n := 0
	for _, f := range r.Faults {
		if f.RawRepeatsExpected {
			n += f.RawDuplicates
		}
	}
	return n
}

// String prints the counts.
func (r *Result) String() string {
	var b strings.Builder
	row := func(what string, v any, note string) { fmt.Fprintf(&b, "  %-64s %8v  %s\n", what, v, note) }
	conduit := r.Transport == "conduit"
	if conduit {
		b.WriteString("soak counts (conduit mode)\n")
		row("notifications Twitch routed to a shard that took them", r.Expected, "(expected on the raw topic)")
	} else {
		b.WriteString("soak counts\n")
		row("notifications Twitch delivered while a socket was open", r.Expected, "(expected on the raw topic)")
	}
	row("on the raw topic (distinct EventSub message ids)", r.Delivered, "")
	row("lost (expected, not on the raw topic)", len(r.Missing), mark(len(r.Missing) == 0))
	row("published twice (same message id, second Pub/Sub message)", r.Duplicates,
		fmt.Sprintf("(%d where a fault explains it; Normalize drops repeats: judged on internal.ingress.v1, per fault)", r.expectedRawRepeats()))
	row("redelivered by the pull subscription (not duplicates)", r.Redeliveries, "")
	if conduit {
		row("delivered on the retry shard (target shard down)", r.Retried, "(counted as delivered)")
		row("dropped by Twitch (target and retry shard both down)", r.TwitchDropped, mark(r.TwitchDropped == 0))
	} else {
		row("duplicate frames sent (same message_id, before and after restart)", r.DuplicateFrames, "must not be forwarded again")
		row("stale frames sent (message_timestamp 11 min old)", r.StaleFrames, "")
		row("stale frames forwarded", r.StaleForwarded, mark(r.StaleForwarded == 0))
		row("connector's counters: duplicates dropped / stale dropped", fmt.Sprintf("%d/%d", r.DroppedDuplicates, r.DroppedStale), "")
		row("read but unpublished when the connector got SIGTERM", r.PendingAtRestart, "(flushed before exit)")
	}
	row("not sent by Twitch: no enabled subscription at the time", r.NoSubscription, "(not expected)")
	row("session_reconnect messages sent", r.Reconnects, "")
	if !conduit {
		okE := 0
		for _, e := range r.Egress {
			if e.OK() {
				okE++
			}
		}
		row("egress events published", len(r.Egress), "")
		row("egress events delivered once, finalized once, recorded SENT", okE, mark(okE == len(r.Egress)))
		for _, e := range r.Egress {
			if !e.OK() {
				row("  "+e.Kind+" "+e.CorrelationID, fmt.Sprintf("%d/%d", e.Deliveries, e.Finalized), "deliveries/finalized, status "+e.Status)
			}
		}
	}
	if len(r.Missing) > 0 {
		n := min(len(r.Missing), 10)
		fmt.Fprintf(&b, "  first lost: %s\n", strings.Join(r.Missing[:n], ", "))
		for _, d := range r.MissingDetail[:min(len(r.MissingDetail), n)] {
			fmt.Fprintf(&b, "    %s\n", d)
		}
	}
	writeFaults(&b, r.Faults, conduit)
	if !conduit {
		writeEgressFaults(&b, r.EgressFaults)
	}
	b.WriteString("phases\n")
	for _, p := range r.Phases {
		fmt.Fprintf(&b, "  %-44s %8s  %s\n", p.Name, p.Took.Round(100*time.Millisecond), p.Note)
	}
	if r.Instances != "" {
		fmt.Fprintf(&b, "fleet at the end: %s\n", r.Instances)
	}
	fmt.Fprintf(&b, "total %s: %s\n", r.Took.Round(time.Second), map[bool]string{true: "PASS", false: "FAIL"}[r.OK()])
	return b.String()
}

func mark(ok bool) string {
	if ok {
		return "ok"
	}
	return "FAIL"
}
