package store

import (
	"context"
	"testing"
	"time"

	"cloud.google.com/go/firestore"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/bitbrat/twitch-edge/shared/emulators"
	"github.com/bitbrat/twitch-edge/shared/fault"
)

// TestTransactionLostToARestartIsTransient: a transaction begun before the Firestore
// emulator restarted commits against one that no longer knows it; the answer,
// INVALID_ARGUMENT "Transaction is invalid or closed", is transient (the whole
// transaction can run again), not a permanent error that dead-letters an event.
// Found by the soak: Normalize dead-lettered a notification across a restart.
func TestTransactionLostToARestartIsTransient(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute) // a hang guard
	defer cancel()
	e, err := emulators.Start(ctx, emulators.Firestore)
	if err != nil {
		t.Fatal(err)
	}
	defer e.Stop()
	c, err := NewClient(ctx, emulators.ProjectID(t), "", WithEmulator(e.Host))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	doc := c.Collection("t").Doc("d")
	restarted := false
	err = c.RunTransaction(ctx, func(ctx context.Context, tx *firestore.Transaction) error {
		if _, err := tx.Get(doc); err != nil && status.Code(err) != codes.NotFound {
			return err
		}
		if !restarted {
			restarted = true
			if err := e.Restart(ctx); err != nil {
				t.Fatal(err)
			}
		}
		return tx.Set(doc, map[string]any{"n": 1})
	}, firestore.MaxAttempts(1))
	if err == nil {
		t.Skip("the restarted emulator accepted the old transaction; nothing to classify")
	}
	got := classify(err, "test transaction")
	if fault.KindOf(got) != fault.Transient {
		t.Fatalf("classify(%v) = %v, want transient", err, got)
	}
	t.Logf("classified as %s: %v", fault.CodeOf(got, ""), err)
}
