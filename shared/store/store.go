// Package store keeps this edge's state in Cloud Firestore
// (cloud.google.com/go/firestore): claims that make processing idempotent (the
// idempotency ledger, egress delivery records), Twitch token documents, connector
// session state and delivery outcomes. Each store is a small concrete type; the code
// that uses one declares the interface it needs.
package store

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"

	"cloud.google.com/go/firestore"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/bitbrat/twitch-edge/shared/fault"
)

// Collections this package writes. Terraform sets a TTL policy on expireAt for the
// ones that carry it (idempotency, deliveries, events).
const (
	CollectionIdempotency = "idempotency"
	CollectionDeliveries  = "deliveries"
	CollectionEvents      = "events"
	CollectionConnector   = "connector"
)

// FieldExpireAt is the field Firestore's TTL policies read.
const FieldExpireAt = "expireAt"

// NewClient connects to Firestore database (usually "(default)") in project. With
// FIRESTORE_EMULATOR_HOST set the client library talks to the emulator.
func NewClient(ctx context.Context, project, database string) (*firestore.Client, error) {
	if database == "" {
		database = firestore.DefaultDatabaseID
	}
	c, err := firestore.NewClientWithDatabase(ctx, project, database)
	if err != nil {
		return nil, fmt.Errorf("firestore client for %s/%s: %w", project, database, err)
	}
	return c, nil
}

// DocID turns an arbitrary key into a valid Firestore document id. Keys that are
// already valid are kept readable; others (with '/', too long, reserved) are hashed.
func DocID(key string) string {
	if key != "" && key != "." && key != ".." && len(key) <= 500 &&
		!strings.Contains(key, "/") && !(strings.HasPrefix(key, "__") && strings.HasSuffix(key, "__")) {
		return key
	}
	sum := sha256.Sum256([]byte(key))
	return "h-" + hex.EncodeToString(sum[:])
}

// classify wraps a Firestore error in a fault.Error: contention and unavailability
// are transient, everything else permanent.
func classify(err error, format string, args ...any) error {
	if err == nil {
		return nil
	}
	var fe *fault.Error
	if errors.As(err, &fe) {
		return err
	}
	what := fmt.Sprintf(format, args...)
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return fault.Wrap(fault.Transient, "FIRESTORE_TIMEOUT", err, "%s", what)
	}
	switch status.Code(err) {
	case codes.Unavailable, codes.Aborted, codes.DeadlineExceeded, codes.ResourceExhausted, codes.Internal, codes.Unknown:
		return fault.Wrap(fault.Transient, "FIRESTORE_UNAVAILABLE", err, "%s", what)
	case codes.PermissionDenied, codes.Unauthenticated:
		return fault.Wrap(fault.Permanent, "FIRESTORE_PERMISSION_DENIED", err, "%s", what)
	default:
		return fault.Wrap(fault.Permanent, "FIRESTORE_ERROR", err, "%s", what)
	}
}
