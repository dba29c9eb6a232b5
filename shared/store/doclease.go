package store

import (
	"context"
	"time"

	"cloud.google.com/go/firestore"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// A document lease is a short exclusive right ({holder, expiresAt, acquiredAt}) that
// makes one process at a time do a piece of work shared by many, such as refreshing
// the bot's token or issuing the app token. The token stores use it; it is not fenced
// (the work it guards is idempotent: the loser reads the winner's result).

// acquireDocLease takes the lease at ref for holder unless another holder's lease is
// still running at now(). It reports whether holder has it.
func acquireDocLease(ctx context.Context, c *firestore.Client, ref *firestore.DocumentRef, holder string, ttl time.Duration, now func() time.Time) (bool, error) {
	acquired := false
	err := c.RunTransaction(ctx, func(ctx context.Context, tx *firestore.Transaction) error {
		acquired = false
		snap, err := tx.Get(ref)
		if err != nil && status.Code(err) != codes.NotFound {
			return err
		}
		t := now()
		if err == nil && snap.Exists() {
			h, _ := snap.Data()["holder"].(string)
			until, _ := snap.Data()["expiresAt"].(time.Time)
			if h != holder && t.Before(until) {
				return nil
			}
		}
		acquired = true
		return tx.Set(ref, map[string]any{"holder": holder, "expiresAt": t.Add(ttl), "acquiredAt": t})
	})
	return acquired, err
}

// releaseDocLease deletes the lease at ref if holder still has it.
func releaseDocLease(ctx context.Context, c *firestore.Client, ref *firestore.DocumentRef, holder string) error {
	return c.RunTransaction(ctx, func(ctx context.Context, tx *firestore.Transaction) error {
		snap, err := tx.Get(ref)
		if status.Code(err) == codes.NotFound {
			return nil
		}
		if err != nil {
			return err
		}
		if h, _ := snap.Data()["holder"].(string); h != holder {
			return nil
		}
		return tx.Delete(ref)
	})
}
