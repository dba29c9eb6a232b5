package store

import (
	"context"
	"slices"
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
// not per process. Each Reserve is one transaction on the budget's document, which
// stays small (at most the largest Max of send times) and carries expireAt.
type SendBudgets struct {
	client  *firestore.Client
	observe func(ctx context.Context, key string, left int)
}

// NewSendBudgets returns the budgets on client.
func NewSendBudgets(client *firestore.Client) *SendBudgets { return &SendBudgets{client: client} }

// Observed returns the budgets telling fn, after each Reserve, how many sends the
// tightest window of key has left (for the send-budget metric).
func (b *SendBudgets) Observed(fn func(ctx context.Context, key string, left int)) *SendBudgets {
	return &SendBudgets{client: b.client, observe: fn}
}

type budgetDoc struct {
	Sent      []time.Time `firestore:"sent"`
	UpdatedAt time.Time   `firestore:"updatedAt"`
	ExpireAt  time.Time   `firestore:"expireAt"`
}

// Reserve takes one send slot of budget key at now. When every window has room it
// records the send and returns ok; otherwise it records nothing and returns when the
// next slot frees (the earliest time at which all windows have room).
func (b *SendBudgets) Reserve(ctx context.Context, key string, now time.Time, windows []Window) (ok bool, retryAt time.Time, err error) {
	ref := b.budgetRef(key)
	left := 0
	err = b.client.RunTransaction(ctx, func(ctx context.Context, tx *firestore.Transaction) error {
		d, took, at, l, err := takeSlot(tx, ref, now, windows)
		ok, retryAt, left = took, at, l
		if err != nil || !took {
			return err
		}
		return tx.Set(ref, *d)
	})
	if err != nil {
		return false, time.Time{}, classify(err, "reserve send budget %s", key)
	}
	if b.observe != nil {
		if ok {
			left--
		}
		b.observe(ctx, key, max(left, 0))
	}
	return ok, retryAt, nil
}

func (b *SendBudgets) budgetRef(key string) *firestore.DocumentRef {
	return b.client.Collection(CollectionSendBudgets).Doc(DocID(key))
}

// takeSlot reads the budget at ref in tx and takes one slot at now: ok and the
// document to write when every window has room; otherwise when the next slot frees.
// left is what the tightest window has left before this send.
func takeSlot(tx *firestore.Transaction, ref *firestore.DocumentRef, now time.Time, windows []Window) (next *budgetDoc, ok bool, retryAt time.Time, left int, err error) {
	longest, keep := time.Duration(0), 1
	for _, w := range windows {
		longest, keep = max(longest, w.Span), max(keep, w.Max)
	}
	left = keep
	snap, err := tx.Get(ref)
	if err != nil && status.Code(err) != codes.NotFound {
		return nil, false, time.Time{}, 0, err
	}
	var d budgetDoc
	if snap != nil && snap.Exists() {
		if err := snap.DataTo(&d); err != nil {
			return nil, false, time.Time{}, 0, err
		}
	}
	sent := d.Sent[:0:0]
	for _, t := range d.Sent {
		if now.Sub(t) < longest {
			sent = append(sent, t)
		}
	}
	slices.SortFunc(sent, func(a, b time.Time) int { return a.Compare(b) })
	for _, w := range windows {
		in := 0
		for _, t := range sent {
			if now.Sub(t) < w.Span {
				in++
			}
		}
		left = min(left, w.Max-in)
		if in >= w.Max {
			// The slot frees when the send that filled the window leaves it.
			if at := sent[len(sent)-w.Max].Add(w.Span); at.After(retryAt) {
				retryAt = at
			}
		}
	}
	if !retryAt.IsZero() {
		return nil, false, retryAt, left, nil
	}
	sent = append(sent, now)
	if len(sent) > keep {
		sent = sent[len(sent)-keep:]
	}
	return &budgetDoc{Sent: sent, UpdatedAt: now, ExpireAt: now.Add(longest + time.Hour)}, true, time.Time{}, left, nil
}
