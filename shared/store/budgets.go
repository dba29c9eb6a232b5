package store

import (
	"context"
	"slices"
	"strconv"
	"time"

	"cloud.google.com/go/firestore"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// CollectionSendBudgets holds one document per send budget (the bot's whispers, the
// bot's chat in one channel): the send times within the budget's longest window.
const CollectionSendBudgets = "sendBudgets"

// Window is one rate limit: at most Max sends within any Span (a sliding window, as
// Twitch counts).
type Window struct {
	Span time.Duration
	Max  int
}

// SendBudgets holds rate limits in Firestore, so that they hold across function
// instances (a deploy overlap, a scale-out) the way Twitch counts them: per sender,
// not per process. A slot is taken in a transaction on the budget's document (Reserve,
// or Claims.ClaimSend with the send's claim), which stays small (at most the largest
// Max of send times) and carries expireAt.
type SendBudgets struct {
	client  *firestore.Client
	observe func(ctx context.Context, key string, left int)
}

// NewSendBudgets returns the budgets on client.
func NewSendBudgets(client *firestore.Client) *SendBudgets { return &SendBudgets{client: client} }

// Observed returns the budgets telling fn, after each slot taken or refused, how many sends the
// tightest window of key has left (for the send-budget metric).
func (b *SendBudgets) Observed(fn func(ctx context.Context, key string, left int)) *SendBudgets {
	return &SendBudgets{client: b.client, observe: fn}
}

// Budget is one send budget: the sender's key, Twitch's windows, and how late after
// its reservation a send can reach Twitch.
//
// Twitch counts a send when it arrives; the budget can only record when it was
// reserved. A send's arrival lies between its reservation and the moment its answer
// came back (Settle records that moment). A send counts in the windows:
//   - settled: at the time its answer came (it arrived by then);
//   - not settled and younger than InFlight: now, in every window (its request may
//     still be on the way);
//   - not settled and older: at its reservation plus Margin (a sender settles every
//     send slower than Margin, so an unsettled old one arrived within Margin).
//
// With InFlight and Margin zero a send counts at its reservation.
type Budget struct {
	Key      string
	Windows  []Window
	Margin   time.Duration
	InFlight time.Duration
}

type budgetDoc struct {
	// Sent holds the reservation times of the sends within the longest window.
	Sent []time.Time `firestore:"sent"`
	// Settled maps a send (settledKey of its reservation) to when its answer came:
	// a field Settle sets without reading the document.
	Settled   map[string]time.Time `firestore:"settled,omitempty"`
	UpdatedAt time.Time            `firestore:"updatedAt"`
	ExpireAt  time.Time            `firestore:"expireAt"`
}

// settledKey names the send reserved at t in budgetDoc.Settled (Firestore keeps
// microseconds).
func settledKey(t time.Time) string { return "u" + strconv.FormatInt(t.UnixMicro(), 10) }

// counted is when the budget counts the send reserved at at (answered at by, or
// zero) at now (see Budget).
func (bud Budget) counted(at, by, now time.Time) time.Time {
	switch {
	case !by.IsZero():
		return by
	case now.Sub(at) < bud.InFlight:
		return now
	default:
		return at.Add(bud.Margin)
	}
}

// frees is when that send stops counting in a window of span: span after its answer
// when settled (or after its margin when old); for a send still on the way, at the
// earliest span after its answer, which comes no sooner than now and, for a fast
// send, within the margin.
func (bud Budget) frees(at, by, now time.Time, span time.Duration) time.Time {
	if !by.IsZero() || now.Sub(at) >= bud.InFlight {
		return bud.counted(at, by, now).Add(span)
	}
	t := at.Add(bud.Margin)
	if t.Before(now) {
		t = now
	}
	return t.Add(span)
}

// keep is how many sends the document needs (the largest Max) and for how long.
func (bud Budget) keep() (n int, span time.Duration) {
	n = 1
	for _, w := range bud.Windows {
		n, span = max(n, w.Max), max(span, w.Span)
	}
	return n, span + max(bud.InFlight, bud.Margin)
}

// Reserve takes one send slot of bud on its own (Claims.ClaimSend takes one with a
// claim). When every window has room it records the send at the clock's time, read
// inside the transaction (a transaction retried under contention must not record a
// stale time), and returns that time, which Settle names the send by; otherwise it
// records nothing and returns when the next slot frees (the earliest time at which all
// windows can have room; see frees).
func (b *SendBudgets) Reserve(ctx context.Context, bud Budget, clock func() time.Time) (at time.Time, ok bool, retryAt time.Time, err error) {
	ref := b.budgetRef(bud.Key)
	left := 0
	err = b.client.RunTransaction(ctx, func(ctx context.Context, tx *firestore.Transaction) error {
		var next *budgetDoc
		next, at, ok, retryAt, left, err = takeSlot(tx, ref, bud, clock)
		if err != nil || !ok {
			return err
		}
		return tx.Set(ref, *next)
	})
	if err != nil {
		return time.Time{}, false, time.Time{}, classify(err, "reserve send budget %s", bud.Key)
	}
	if b.observe != nil {
		if ok {
			left--
		}
		b.observe(ctx, bud.Key, max(left, 0))
	}
	return at, ok, retryAt, nil
}

func (b *SendBudgets) budgetRef(key string) *firestore.DocumentRef {
	return b.client.Collection(CollectionSendBudgets).Doc(DocID(key))
}

// takeSlot reads bud's document in tx and takes one slot at the clock's time: ok,
// the slot's time and the document to write when every window has room; otherwise
// when the next slot frees. left is what the tightest window has left before this send.
func takeSlot(tx *firestore.Transaction, ref *firestore.DocumentRef, bud Budget, clock func() time.Time) (next *budgetDoc, at time.Time, ok bool, retryAt time.Time, left int, err error) {
	keep, horizon := bud.keep()
	left = keep
	d, _, err := getIn[budgetDoc](tx, ref)
	if err != nil {
		return nil, time.Time{}, false, time.Time{}, 0, err
	}
	now := clock().UTC().Truncate(time.Microsecond)
	var sent []time.Time
	for _, t := range d.Sent {
		if now.Sub(t) < horizon {
			sent = append(sent, t)
		}
	}
	for _, w := range bud.Windows {
		// The sends the window counts, and when each will stop counting in it.
		var frees []time.Time
		for _, t := range sent {
			by := d.Settled[settledKey(t)]
			if now.Sub(bud.counted(t, by, now)) < w.Span {
				frees = append(frees, bud.frees(t, by, now, w.Span))
			}
		}
		left = min(left, w.Max-len(frees))
		if len(frees) >= w.Max {
			// The slot frees when enough of them have left the window.
			slices.SortFunc(frees, func(a, b time.Time) int { return a.Compare(b) })
			if t := frees[len(frees)-w.Max]; t.After(retryAt) {
				retryAt = t
			}
		}
	}
	if !retryAt.IsZero() {
		return nil, time.Time{}, false, retryAt, left, nil
	}
	sent = append(sent, now)
	slices.SortFunc(sent, func(a, b time.Time) int { return a.Compare(b) })
	if len(sent) > keep {
		sent = sent[len(sent)-keep:]
	}
	settled := map[string]time.Time{}
	for _, t := range sent {
		if by, ok := d.Settled[settledKey(t)]; ok {
			settled[settledKey(t)] = by
		}
	}
	return &budgetDoc{Sent: sent, Settled: settled, UpdatedAt: now, ExpireAt: now.Add(horizon + time.Hour)},
		now, true, time.Time{}, left, nil
}

// Settle records that the send of budget key reserved at at had its answer (or gave
// up) at by: it arrived at Twitch by then, if at all. It is one write without a read
// (a field of the budget's document); a budget document gone (expired) is nothing to
// settle.
func (b *SendBudgets) Settle(ctx context.Context, key string, at, by time.Time) error {
	if by.Before(at) {
		by = at
	}
	_, err := b.budgetRef(key).Update(ctx, []firestore.Update{
		{FieldPath: firestore.FieldPath{"settled", settledKey(at)}, Value: by.UTC()}})
	if status.Code(err) == codes.NotFound {
		return nil
	}
	return classify(err, "settle send budget %s", key)
}
