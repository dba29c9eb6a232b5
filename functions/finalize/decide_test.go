package finalize

import (
	"reflect"
	"testing"
	"time"

	"github.com/bitbrat/twitch-edge/shared/event"
	"github.com/bitbrat/twitch-edge/shared/store"
)

// attempt builds a valid Attempt; mods adjust it.
func attempt(status, at string, mods ...func(*Attempt)) *Attempt {
	t, err := event.ParseTimestamp(at)
	if err != nil {
		panic(err)
	}
	a := &Attempt{Kind: KindFinalize, CorrelationID: "corr-1", Destination: "internal.egress.v1",
		Status: status, DeliveredAtRaw: at, DeliveredAt: t}
	for _, m := range mods {
		m(a)
	}
	return a
}

func pid(id string) func(*Attempt) { return func(a *Attempt) { a.ProviderMessageID = id } }
func errCode(code string) func(*Attempt) {
	return func(a *Attempt) { a.Error = &event.ErrorInfo{Code: code} }
}
func ttl(d time.Duration) func(*Attempt) { return func(a *Attempt) { a.TTL = d } }
func asEvent(a *Attempt)                 { a.Kind = KindEvent }
func parts(ps ...event.PartOutcome) func(*Attempt) {
	return func(a *Attempt) { a.Parts = ps }
}
func cands(ids ...string) func(*Attempt) {
	return func(a *Attempt) {
		for _, id := range ids {
			a.Candidates = append(a.Candidates, event.CandidateV1{ID: id, Kind: "text", Status: "selected"})
		}
	}
}
func part(i int, status, pid string) event.PartOutcome {
	return event.PartOutcome{Index: i, Status: status, ProviderMessageID: pid}
}

// apply runs the attempts in order through Decide, as the store would.
func apply(seq ...*Attempt) (*store.Outcome, int) {
	var cur *store.Outcome
	writes := 0
	for _, a := range seq {
		if next := Decide(cur, a, DefaultTTL); next != nil {
			cur, writes = next, writes+1
		}
	}
	return cur, writes
}

const (
	t1 = "2026-11-21T12:00:01.000Z"
	t2 = "2026-11-21T12:00:02.000Z"
	t3 = "2026-11-21T12:00:03.000Z"
)

func TestDecide(t *testing.T) {
	sent1 := attempt(event.StatusSent, t1, pid("m-1"))
	sent2 := attempt(event.StatusSent, t2, pid("m-2"))
	failed1 := attempt(event.StatusFailed, t1, errCode("TWITCH_UNAVAILABLE"))
	failed2 := attempt(event.StatusFailed, t2, errCode("TWITCH_BAD_REQUEST"))
	tests := []struct {
		name       string
		seq        []*Attempt
		status     string
		at         string
		pid        string
		writes     int
		summary    *store.PartsSummary
		candidates int
	}{
		{"first SENT is recorded", []*Attempt{sent1}, "SENT", t1, "m-1", 1, nil, 0},
		{"first FAILED is recorded", []*Attempt{failed1}, "FAILED", t1, "", 1, nil, 0},
		{"replay writes nothing", []*Attempt{sent1, sent1, sent1}, "SENT", t1, "m-1", 1, nil, 0},
		{"same instant in another format is a replay",
			[]*Attempt{sent1, attempt(event.StatusSent, "2026-11-21T12:00:01Z", pid("m-1"))}, "SENT", t1, "m-1", 1, nil, 0},
		{"newer FAILED replaces older FAILED", []*Attempt{failed1, failed2}, "FAILED", t2, "", 2, nil, 0},
		{"older FAILED after newer is ignored", []*Attempt{failed2, failed1}, "FAILED", t2, "", 1, nil, 0},
		{"newer SENT replaces older SENT", []*Attempt{sent1, sent2}, "SENT", t2, "m-2", 2, nil, 0},
		{"older SENT after newer is ignored", []*Attempt{sent2, sent1}, "SENT", t2, "m-2", 1, nil, 0},
		{"later FAILED never replaces SENT", []*Attempt{sent1, failed2}, "SENT", t1, "m-1", 1, nil, 0},
		{"SENT replaces a newer FAILED (it was delivered)", []*Attempt{failed2, sent1}, "SENT", t1, "m-1", 2, nil, 0},
		{"same status and instant: fixed tie-break, either order",
			[]*Attempt{attempt(event.StatusSent, t1, pid("b")), attempt(event.StatusSent, t1, pid("a"))}, "SENT", t1, "b", 1, nil, 0},
		{"same status and instant: fixed tie-break, other order",
			[]*Attempt{attempt(event.StatusSent, t1, pid("a")), attempt(event.StatusSent, t1, pid("b"))}, "SENT", t1, "b", 2, nil, 0},
		{"event without outcome, then the outcome",
			[]*Attempt{attempt(StatusFinalized, t3, asEvent), sent1}, "SENT", t1, "m-1", 2, nil, 0},
		{"event without outcome never replaces one",
			[]*Attempt{failed1, attempt(StatusFinalized, t3, asEvent)}, "FAILED", t1, "", 1, nil, 0},
		{"losing message fills a missing projection",
			[]*Attempt{sent2, attempt(event.StatusFailed, t1, cands("c-1"))}, "SENT", t2, "m-2", 2, nil, 1},
		{"losing message does not replace a projection",
			[]*Attempt{attempt(event.StatusSent, t2, cands("c-1")), attempt(event.StatusFailed, t1, cands("c-9", "c-8"))}, "SENT", t2, "", 1, nil, 1},
		{"winner without projection keeps the recorded one",
			[]*Attempt{attempt(event.StatusFailed, t1, cands("c-1")), sent2}, "SENT", t2, "m-2", 2, nil, 1},
		{"split delivery: parts recorded and summarised",
			[]*Attempt{attempt(event.StatusFailed, t1, parts(part(0, "SENT", "p-0"), part(1, "FAILED", "")))},
			"FAILED", t1, "", 1, &store.PartsSummary{Total: 2, Sent: 1, Failed: 1, Status: SummaryPartial}, 0},
		{"split delivery: retry completes it",
			[]*Attempt{
				attempt(event.StatusFailed, t1, parts(part(0, "SENT", "p-0"), part(1, "FAILED", ""))),
				attempt(event.StatusSent, t2, pid("p-0"), parts(part(0, "SENT", "p-0"), part(1, "SENT", "p-1"))),
			},
			"SENT", t2, "p-0", 2, &store.PartsSummary{Total: 2, Sent: 2, Status: "SENT"}, 0},
		{"split delivery: retry out of order gives the same",
			[]*Attempt{
				attempt(event.StatusSent, t2, pid("p-0"), parts(part(0, "SENT", "p-0"), part(1, "SENT", "p-1"))),
				attempt(event.StatusFailed, t1, parts(part(0, "SENT", "p-0"), part(1, "FAILED", ""))),
			},
			"SENT", t2, "p-0", 1, &store.PartsSummary{Total: 2, Sent: 2, Status: "SENT"}, 0},
		{"split delivery: a later FAILED of a sent part keeps SENT",
			[]*Attempt{
				attempt(event.StatusSent, t1, parts(part(0, "SENT", "p-0"), part(1, "SENT", "p-1"))),
				attempt(event.StatusFailed, t2, parts(part(0, "FAILED", ""), part(1, "FAILED", ""))),
			},
			"SENT", t1, "", 1, &store.PartsSummary{Total: 2, Sent: 2, Status: "SENT"}, 0},
		{"split delivery: a losing message still records a part it sent",
			[]*Attempt{
				attempt(event.StatusSent, t1, parts(part(0, "SENT", "p-0"))),
				attempt(event.StatusFailed, t2, parts(part(0, "SENT", "p-0"), part(1, "FAILED", ""))),
			},
			"SENT", t1, "", 2, &store.PartsSummary{Total: 2, Sent: 1, Failed: 1, Status: SummaryPartial}, 0},
		{"split delivery: nothing sent",
			[]*Attempt{attempt(event.StatusFailed, t1, parts(part(0, "FAILED", ""), part(1, "FAILED", "")))},
			"FAILED", t1, "", 1, &store.PartsSummary{Total: 2, Failed: 2, Status: "FAILED"}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, writes := apply(tt.seq...)
			d := got.Delivery
			if d.Status != tt.status || d.DeliveredAt != tt.at || d.ProviderMessageID != tt.pid {
				t.Errorf("delivery = %s %s %q, want %s %s %q", d.Status, d.DeliveredAt, d.ProviderMessageID, tt.status, tt.at, tt.pid)
			}
			if got.FinalizedAt != d.DeliveredAt {
				t.Errorf("finalizedAt = %s, want deliveredAt %s", got.FinalizedAt, d.DeliveredAt)
			}
			at, _ := event.ParseTimestamp(d.DeliveredAt)
			if !got.ExpireAt.Equal(at.Add(DefaultTTL)) {
				t.Errorf("expireAt = %v, want %v", got.ExpireAt, at.Add(DefaultTTL))
			}
			if writes != tt.writes {
				t.Errorf("writes = %d, want %d", writes, tt.writes)
			}
			if !reflect.DeepEqual(d.Summary, tt.summary) {
				t.Errorf("summary = %+v, want %+v", d.Summary, tt.summary)
			}
			if len(got.Candidates) != tt.candidates {
				t.Errorf("candidates = %d, want %d", len(got.Candidates), tt.candidates)
			}
		})
	}
}

func TestDecideTTL(t *testing.T) {
	at, _ := event.ParseTimestamp(t1)
	for _, tc := range []struct {
		name       string
		a          *Attempt
		defaultTTL time.Duration
		want       time.Time
	}{
		{"default", attempt("SENT", t1), DefaultTTL, at.Add(7 * 24 * time.Hour)},
		{"configured default", attempt("SENT", t1), time.Hour, at.Add(time.Hour)},
		{"qos.ttl wins", attempt("SENT", t1, ttl(90*time.Second)), time.Hour, at.Add(90 * time.Second)},
		{"nanoseconds cut to Firestore's microseconds", attempt("SENT", "2026-11-21T12:00:01.123456789Z"), time.Hour,
			time.Date(2026, 11, 21, 13, 0, 1, 123456000, time.UTC)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := Decide(nil, tc.a, tc.defaultTTL)
			if !got.ExpireAt.Equal(tc.want) {
				t.Errorf("expireAt = %v, want %v", got.ExpireAt, tc.want)
			}
		})
	}
}

func TestDecideDoesNotMutateCurrent(t *testing.T) {
	cur, _ := apply(attempt("FAILED", t1, parts(part(0, "FAILED", ""))))
	before := *cur
	beforeParts := map[int]store.PartRecord{0: cur.Delivery.Parts[0]}
	Decide(cur, attempt("SENT", t2, parts(part(0, "SENT", "x"), part(1, "SENT", "y"))), DefaultTTL)
	if cur.Delivery.Status != before.Delivery.Status || !reflect.DeepEqual(cur.Delivery.Parts, beforeParts) {
		t.Fatalf("Decide changed its input: %+v", cur)
	}
}

// TestDecideOrderIndependent: every order of the same messages, each delivered
// twice, ends in the same delivery record.
func TestDecideOrderIndependent(t *testing.T) {
	msgs := []*Attempt{
		attempt("FAILED", t1, errCode("TWITCH_UNAVAILABLE"), parts(part(0, "SENT", "p-0"), part(1, "FAILED", ""), part(2, "FAILED", ""))),
		attempt("FAILED", t2, errCode("TWITCH_BAD_REQUEST"), parts(part(0, "SENT", "p-0"), part(1, "SENT", "p-1"), part(2, "FAILED", ""))),
		attempt("FAILED", t3, errCode("TWITCH_BAD_REQUEST"), parts(part(1, "FAILED", ""), part(2, "FAILED", ""))),
		attempt(StatusFinalized, t3, asEvent),
		attempt("SENT", "2026-11-21T12:00:00.500Z", pid("old")),
	}
	want, _ := apply(msgs...)
	permute(msgs, func(order []*Attempt) {
		got, _ := apply(append(order, order...)...)
		if !reflect.DeepEqual(got.Delivery, want.Delivery) || !got.ExpireAt.Equal(want.ExpireAt) || got.FinalizedAt != want.FinalizedAt {
			t.Fatalf("order %v:\n got %+v\nwant %+v", statuses(order), got.Delivery, want.Delivery)
		}
	})
	if want.Delivery.Status != "SENT" || want.Delivery.ProviderMessageID != "old" || want.Delivery.Summary.Sent != 2 {
		t.Fatalf("final = %+v", want.Delivery)
	}
}

func permute(xs []*Attempt, f func([]*Attempt)) {
	var rec func(int)
	rec = func(k int) {
		if k == len(xs) {
			f(append([]*Attempt(nil), xs...))
			return
		}
		for i := k; i < len(xs); i++ {
			xs[k], xs[i] = xs[i], xs[k]
			rec(k + 1)
			xs[k], xs[i] = xs[i], xs[k]
		}
	}
	rec(0)
}

func statuses(as []*Attempt) []string {
	out := make([]string, len(as))
	for i, a := range as {
		out[i] = a.Status + "@" + a.DeliveredAtRaw
	}
	return out
}
