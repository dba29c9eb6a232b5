package store

import (
	"context"
	"errors"
	"time"

	"cloud.google.com/go/firestore"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Slot asks for one send slot of a budget kept by SendBudgets, to be taken in the same
// transaction as a claim (Claims.ClaimSend). The budget's and the claims' documents
// must be in the same database.
type Slot struct {
	budgets *SendBudgets
	Budget  Budget
	// Clock gives the send's time, read inside the transaction.
	Clock func() time.Time
}

// Slot returns a request for one slot of bud at the clock's time.
func (b *SendBudgets) Slot(bud Budget, clock func() time.Time) Slot {
	return Slot{budgets: b, Budget: bud, Clock: clock}
}

// errClaimExists ends the first transaction of ClaimSend when the claim turns out to
// exist (the budget was full, and so it was looked at).
var errClaimExists = errors.New("claim exists")

// ClaimSend claims key for owner, for an action that must not happen twice (a Helix
// send), and with slot (when not nil) takes the send's budget slot in the same
// transaction: both are written, or neither. A claim made with a slot is marked in
// flight from the start (Sending), so the caller sends right
// after; one made without (slot nil) is a plain pending claim, for an outcome decided
// without sending (a refusal).
//
// A new key, the usual case, costs one transaction that reads the budget document
// and writes it and the claim (a create; the claim is not read), or, without a slot,
// one create. Otherwise the claim is read, in a second transaction, and ClaimSend
// says, as Acquire does:
//   - Completed: done; Result and Finalized are what Finish (or Complete) stored;
//   - Held: another attempt's lease holds: retry after LeaseUntil;
//   - Acquired with Sending: the lease ran out on an attempt that was sending. It is
//     taken over (no slot is taken: nothing will be sent); the outcome is unknown;
//   - Acquired: the claim was released, or its holder stopped before sending; it is
//     taken over, with the slot, as a new claim would be.
//
// When the budget has no room, nothing is written and retryAt says when the next
// slot frees (the claim is then neither made nor changed).
func (c *Claims) ClaimSend(ctx context.Context, key, owner string, lease time.Duration, slot *Slot) (out Claim, retryAt time.Time, err error) {
	ref := c.doc(key)
	left := -1
	if slot == nil {
		now := c.now()
		d := claimDoc{State: claimPending, Owner: owner, LeaseUntil: now.Add(lease), Attempts: 1,
			CreatedAt: now, UpdatedAt: now, ExpireAt: now.Add(c.retention)}
		_, err = ref.Create(ctx, d)
		out = Claim{State: Acquired, Owner: owner, LeaseUntil: d.LeaseUntil, Attempts: 1}
	} else {
		err = c.client.RunTransaction(ctx, func(ctx context.Context, tx *firestore.Transaction) error {
			out, retryAt, left = Claim{}, time.Time{}, -1
			bref := slot.budgets.budgetRef(slot.Budget.Key)
			next, slotAt, ok, at, l, err := takeSlot(tx, bref, slot.Budget, slot.Clock)
			if err != nil {
				return err
			}
			left = l
			if !ok {
				// No room. A send that was claimed already needs none: look.
				snap, err := tx.Get(ref)
				if err != nil && status.Code(err) != codes.NotFound {
					return err
				}
				if snap != nil && snap.Exists() {
					return errClaimExists
				}
				retryAt = at
				return nil
			}
			if err := tx.Set(bref, *next); err != nil {
				return err
			}
			now := c.now()
			d := claimDoc{State: claimPending, Owner: owner, LeaseUntil: now.Add(lease), Attempts: 1, Sending: true,
				CreatedAt: now, UpdatedAt: now, ExpireAt: now.Add(c.retention)}
			out = Claim{State: Acquired, Owner: owner, LeaseUntil: d.LeaseUntil, Attempts: 1, SlotAt: slotAt}
			return tx.Create(ref, d)
		})
	}
	if status.Code(err) == codes.AlreadyExists || errors.Is(err, errClaimExists) {
		out, retryAt, left, err = c.claimExisting(ctx, ref, owner, lease, slot)
	}
	if err != nil {
		return Claim{}, time.Time{}, classify(err, "claim send %s/%s", c.collection, key)
	}
	if slot != nil && left >= 0 && slot.budgets.observe != nil {
		if out.State == Acquired && !out.Sending && retryAt.IsZero() {
			left--
		}
		slot.budgets.observe(ctx, slot.Budget.Key, max(left, 0))
	}
	return out, retryAt, nil
}

// claimExisting is ClaimSend on a key that has a claim: one transaction that reads it
// (and the budget, when the claim is taken over for a send).
func (c *Claims) claimExisting(ctx context.Context, ref *firestore.DocumentRef, owner string, lease time.Duration, slot *Slot) (out Claim, retryAt time.Time, left int, err error) {
	err = c.client.RunTransaction(ctx, func(ctx context.Context, tx *firestore.Transaction) error {
		out, retryAt, left = Claim{}, time.Time{}, -1
		now := c.now()
		d, exists, err := getIn[claimDoc](tx, ref)
		if err != nil {
			return err
		}
		if d.CreatedAt.IsZero() {
			d.CreatedAt = now
		}
		if exists {
			switch {
			case d.State == claimDone:
				out = Claim{State: Completed, Owner: d.Owner, Attempts: d.Attempts, Result: d.Result, Finalized: d.Finalized}
				return nil
			case d.LeaseUntil.After(now):
				out = Claim{State: Held, Owner: d.Owner, LeaseUntil: d.LeaseUntil, Attempts: d.Attempts}
				return nil
			case d.Sending:
				// Its holder stopped mid-send: take it over to report the unknown outcome.
				d.Owner, d.LeaseUntil, d.Attempts, d.UpdatedAt = owner, now.Add(lease), d.Attempts+1, now
				out = Claim{State: Acquired, Owner: owner, LeaseUntil: d.LeaseUntil, Attempts: d.Attempts, Sending: true}
				return tx.Set(ref, d)
			}
		}
		// Released, or its holder stopped before sending: nothing was sent.
		var slotAt time.Time
		if slot != nil {
			bref := slot.budgets.budgetRef(slot.Budget.Key)
			next, sat, ok, at, l, err := takeSlot(tx, bref, slot.Budget, slot.Clock)
			if err != nil {
				return err
			}
			slotAt = sat
			if left = l; !ok {
				retryAt = at
				return nil
			}
			if err := tx.Set(bref, *next); err != nil {
				return err
			}
		}
		d.State, d.Owner, d.LeaseUntil, d.Sending = claimPending, owner, now.Add(lease), slot != nil
		d.Attempts++
		d.UpdatedAt, d.ExpireAt = now, now.Add(c.retention)
		out = Claim{State: Acquired, Owner: owner, LeaseUntil: d.LeaseUntil, Attempts: d.Attempts, SlotAt: slotAt}
		return tx.Set(ref, d)
	})
	return out, retryAt, left, err
}

// Finish marks key done with result and records, in the same write, that its outcome
// has been reported (finalized: for egress, the finalize status published). Like
// Complete it does not check the owner.
func (c *Claims) Finish(ctx context.Context, key, owner, result, finalized string) error {
	now := c.now()
	_, err := c.doc(key).Set(ctx, map[string]any{
		"state":       claimDone,
		"owner":       owner,
		"result":      result,
		"finalized":   finalized,
		"updatedAt":   now,
		"completedAt": now,
		FieldExpireAt: now.Add(c.retention),
		"leaseUntil":  now,
	}, firestore.MergeAll)
	return classify(err, "finish claim %s/%s", c.collection, key)
}

// Peek reads the claim on key without changing it: Completed (with Result and
// Finalized), Held while a lease holds (Sending tells whether it is in flight), or
// Acquired for a pending claim whose lease ran out; ok is false when there is none.
func (c *Claims) Peek(ctx context.Context, key string) (Claim, bool, error) {
	snap, err := c.doc(key).Get(ctx)
	if status.Code(err) == codes.NotFound {
		return Claim{}, false, nil
	}
	if err != nil {
		return Claim{}, false, classify(err, "read claim %s/%s", c.collection, key)
	}
	var d claimDoc
	if err := snap.DataTo(&d); err != nil {
		return Claim{}, false, classify(err, "decode claim %s/%s", c.collection, key)
	}
	out := Claim{State: Acquired, Owner: d.Owner, LeaseUntil: d.LeaseUntil, Attempts: d.Attempts, Sending: d.Sending}
	switch {
	case d.State == claimDone:
		out.State, out.Result, out.Finalized = Completed, d.Result, d.Finalized
	case d.LeaseUntil.After(c.now()):
		out.State = Held
	}
	return out, true, nil
}
