package finalize

import (
	"maps"
	"strings"
	"time"

	"github.com/bitbrat/twitch-edge/shared/event"
	"github.com/bitbrat/twitch-edge/shared/store"
)

// Decide merges attempt a into the outcome recorded so far (nil: none yet) and
// returns the outcome to store, or nil when a changes nothing. It is pure: the store
// runs it inside a transaction, possibly more than once.
//
// Outcomes are ordered by precedence (see outranks): SENT over FAILED over
// FINALIZED, then the later deliveredAt, then a fixed tie-break. The recorded
// delivery is the highest attempt seen, and each part of a split delivery is the
// highest outcome seen for that part. Taking the highest is what makes the record
// order-safe and idempotent: any set of messages, in any order, any number of times,
// ends in the same record, and a message that is not higher than what is recorded
// changes nothing (so a redelivery writes nothing). In particular an older attempt
// never replaces a newer one of the same status, and a SENT is never replaced by a
// FAILED, earlier or later: the message was delivered, and a failed retry does not
// undo that.
//
// The projection (annotations, candidates) follows the recorded delivery; a message
// that does not win still fills a list the record does not have yet.
func Decide(current *store.Outcome, a *Attempt, defaultTTL time.Duration) *store.Outcome {
	var next store.Outcome
	changed := current == nil
	if current != nil {
		next = *current
		next.Delivery.Parts = maps.Clone(current.Delivery.Parts)
	}

	in := attemptRank(a)
	if current == nil || outranks(in, deliveryRank(current.Delivery)) {
		changed = true
		ttl := a.TTL
		if ttl <= 0 {
			ttl = defaultTTL
		}
		next.FinalizedAt = a.DeliveredAtRaw
		next.ExpireAt = a.DeliveredAt.Add(ttl).UTC().Truncate(time.Microsecond) // Firestore keeps microseconds
		next.Delivery.Destination = a.Destination
		next.Delivery.Status = a.Status
		next.Delivery.DeliveredAt = a.DeliveredAtRaw
		next.Delivery.ProviderMessageID = a.ProviderMessageID
		next.Delivery.Error = cloneError(a.Error)
		if len(a.Annotations) > 0 {
			next.Annotations = a.Annotations
		}
		if len(a.Candidates) > 0 {
			next.Candidates = a.Candidates
		}
	} else {
		if len(next.Annotations) == 0 && len(a.Annotations) > 0 {
			next.Annotations, changed = a.Annotations, true
		}
		if len(next.Candidates) == 0 && len(a.Candidates) > 0 {
			next.Candidates, changed = a.Candidates, true
		}
	}

	for _, p := range a.Parts {
		rec := store.PartRecord{
			Index:             p.Index,
			Status:            p.Status,
			DeliveredAt:       a.DeliveredAtRaw,
			ProviderMessageID: p.ProviderMessageID,
			Error:             cloneError(p.Error),
		}
		if old, ok := next.Delivery.Parts[p.Index]; ok && !outranks(partRank(rec), partRank(old)) {
			continue
		}
		if next.Delivery.Parts == nil {
			next.Delivery.Parts = make(map[int]store.PartRecord, len(a.Parts))
		}
		next.Delivery.Parts[p.Index] = rec
		changed = true
	}
	if len(next.Delivery.Parts) > 0 {
		next.Delivery.Summary = summarize(next.Delivery.Parts)
	}

	if !changed {
		return nil
	}
	return &next
}

// SummaryPartial is delivery.summary.status when some parts of a split delivery
// were sent and some not (otherwise SENT or FAILED).
const SummaryPartial = "PARTIAL"

// rank is what outcomes are ordered by.
type rank struct {
	status int
	at     time.Time
	tie    string
}

func statusRank(s string) int {
	switch s {
	case event.StatusSent:
		return 3
	case event.StatusFailed:
		return 2
	case StatusFinalized:
		return 1
	}
	return 0
}

// outranks reports whether x is strictly higher than y. Two outcomes of the same
// status at the same instant are ordered by their provider message id, destination
// and error, so that the order never depends on arrival; equal ones are the same
// outcome.
func outranks(x, y rank) bool {
	if x.status != y.status {
		return x.status > y.status
	}
	if !x.at.Equal(y.at) {
		return x.at.After(y.at)
	}
	return x.tie > y.tie
}

func attemptRank(a *Attempt) rank {
	return rank{statusRank(a.Status), a.DeliveredAt, tieKey(a.ProviderMessageID, a.Destination, a.Error)}
}

// deliveryRank ranks a recorded delivery; a deliveredAt that does not parse (written
// by someone else) ranks as the zero time, below any real attempt of its status.
func deliveryRank(d store.Delivery) rank {
	t, _ := event.ParseTimestamp(d.DeliveredAt)
	return rank{statusRank(d.Status), t, tieKey(d.ProviderMessageID, d.Destination, d.Error)}
}

func partRank(p store.PartRecord) rank {
	t, _ := event.ParseTimestamp(p.DeliveredAt)
	return rank{statusRank(p.Status), t, tieKey(p.ProviderMessageID, "", p.Error)}
}

func tieKey(providerMessageID, destination string, e *event.ErrorInfo) string {
	var b strings.Builder
	b.Grow(len(providerMessageID) + len(destination) + 32)
	b.WriteString(providerMessageID)
	b.WriteByte(0)
	b.WriteString(destination)
	if e != nil {
		b.WriteByte(0)
		b.WriteString(e.Code)
		b.WriteByte(0)
		b.WriteString(e.Message)
	}
	return b.String()
}

func cloneError(e *event.ErrorInfo) *event.ErrorInfo {
	if e == nil {
		return nil
	}
	c := *e
	return &c
}

func summarize(parts map[int]store.PartRecord) *store.PartsSummary {
	s := &store.PartsSummary{Total: len(parts)}
	for _, p := range parts {
		if p.Status == event.StatusSent {
			s.Sent++
		} else {
			s.Failed++
		}
	}
	switch {
	case s.Sent == s.Total:
		s.Status = event.StatusSent
	case s.Sent > 0:
		s.Status = SummaryPartial
	default:
		s.Status = event.StatusFailed
	}
	return s
}
