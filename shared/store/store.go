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
	"math"
	"strings"

	"cloud.google.com/go/firestore"
	"google.golang.org/api/option"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
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

// ClientOption configures NewClient.
type ClientOption func(*clientOptions)

type clientOptions struct{ emulatorHost string }

// WithEmulator points the client at the Firestore emulator at host
// ("127.0.0.1:8086"): plain gRPC, the emulator's owner credentials. An empty host
// changes nothing. Without it the client library's own rule applies:
// FIRESTORE_EMULATOR_HOST when the process has it (a deployment never does), Google
// Cloud with the default credentials otherwise.
func WithEmulator(host string) ClientOption {
	return func(o *clientOptions) { o.emulatorHost = host }
}

// NewClient connects to Firestore database (usually "(default)") in project.
func NewClient(ctx context.Context, project, database string, opts ...ClientOption) (*firestore.Client, error) {
	var o clientOptions
	for _, opt := range opts {
		opt(&o)
	}
	if database == "" {
		database = firestore.DefaultDatabaseID
	}
	var co []option.ClientOption
	if o.emulatorHost != "" {
		// What the client library does for FIRESTORE_EMULATOR_HOST, given explicitly
		// so that no caller has to change its process's environment. The client
		// closes the connection when it is closed.
		conn, err := grpc.NewClient("passthrough:///"+o.emulatorHost,
			grpc.WithTransportCredentials(insecure.NewCredentials()),
			grpc.WithPerRPCCredentials(emulatorOwner{}),
			grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(math.MaxInt32), grpc.MaxCallSendMsgSize(math.MaxInt32)))
		if err != nil {
			return nil, fmt.Errorf("firestore emulator at %s: %w", o.emulatorHost, err)
		}
		co = append(co, option.WithGRPCConn(conn))
	}
	c, err := firestore.NewClientWithDatabase(ctx, project, database, co...)
	if err != nil {
		return nil, fmt.Errorf("firestore client for %s/%s: %w", project, database, err)
	}
	return c, nil
}

// emulatorOwner is the credential the Firestore emulator takes for full access.
type emulatorOwner struct{}

func (emulatorOwner) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return map[string]string{"authorization": "Bearer owner"}, nil
}

func (emulatorOwner) RequireTransportSecurity() bool { return false }

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
	case codes.InvalidArgument:
		// A transaction the server no longer knows (expired, or begun before a restart)
		// comes back as INVALID_ARGUMENT and the client does not retry it; the whole
		// transaction can be: transient, not a reason to dead-letter an event.
		if m := strings.ToLower(status.Convert(err).Message()); strings.Contains(m, "transaction") &&
			(strings.Contains(m, "invalid or closed") || strings.Contains(m, "expired") || strings.Contains(m, "no longer valid")) {
			return fault.Wrap(fault.Transient, "FIRESTORE_TRANSACTION_EXPIRED", err, "%s", what)
		}
		return fault.Wrap(fault.Permanent, "FIRESTORE_ERROR", err, "%s", what)
	case codes.PermissionDenied, codes.Unauthenticated:
		return fault.Wrap(fault.Permanent, "FIRESTORE_PERMISSION_DENIED", err, "%s", what)
	default:
		return fault.Wrap(fault.Permanent, "FIRESTORE_ERROR", err, "%s", what)
	}
}

// getIn reads the document at ref in tx into a T: exists is false (and d the zero T)
// when there is none.
func getIn[T any](tx *firestore.Transaction, ref *firestore.DocumentRef) (d T, exists bool, err error) {
	snap, err := tx.Get(ref)
	if status.Code(err) == codes.NotFound {
		return d, false, nil
	}
	if err != nil {
		return d, false, err
	}
	if err := snap.DataTo(&d); err != nil {
		return d, true, err
	}
	return d, true, nil
}
