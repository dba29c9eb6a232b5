// Package finalize records delivery outcomes: the Finalize function reads
// internal.persistence.finalize.v1 and merges each outcome into
// events/{correlationId} in Firestore, where BitBrat's persistence keeps it and the
// rest of the platform reads it.
//
// The record is order-safe and idempotent (see Decide): Pub/Sub delivers at least
// once and in no particular order, and egress may report the same delivery more than
// once, yet the record always holds the highest outcome seen and a redelivery writes
// nothing. Messages that can never be recorded are fault.Invalid (the trigger
// dead-letters them); Firestore being unavailable is fault.Transient (Pub/Sub retries).
package finalize

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/bitbrat/twitch-edge/functions/trigger"
	"github.com/bitbrat/twitch-edge/shared/logging"
	"github.com/bitbrat/twitch-edge/shared/store"
)

// DefaultTTL is how long an outcome is kept after its delivery when neither the
// message (qos.ttl) nor the configuration (EVENT_TTL) says otherwise.
const DefaultTTL = 7 * 24 * time.Hour

// Outcomes is the outcome store (*store.Events): a transactional read-modify-write of
// the outcome recorded for a correlation id.
type Outcomes interface {
	ApplyOutcome(ctx context.Context, correlationID string, decide func(current *store.Outcome) (*store.Outcome, error)) (store.Outcome, bool, error)
}

// Service handles finalize messages.
type Service struct {
	outcomes   Outcomes
	now        func() time.Time
	defaultTTL time.Duration
	log        *slog.Logger
}

// New returns the service. now may be nil (time.Now); it stands in for the publish
// time of a message that has none. defaultTTL ≤ 0 means DefaultTTL. log may be nil
// (discard).
func New(outcomes Outcomes, now func() time.Time, defaultTTL time.Duration, log *slog.Logger) *Service {
	if now == nil {
		now = time.Now
	}
	if defaultTTL <= 0 {
		defaultTTL = DefaultTTL
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Service{outcomes: outcomes, now: now, defaultTTL: defaultTTL, log: log}
}

// Handle records the outcome m reports. Invalid messages return a fault.Invalid
// error carrying the correlation id when it could be read; store errors keep their
// classification.
func (s *Service) Handle(ctx context.Context, m trigger.Message) error {
	publishedAt := m.PublishTime
	if publishedAt.IsZero() {
		publishedAt = s.now()
	}
	a, err := Decode(m.Data, publishedAt)
	if err != nil {
		return trigger.WithCorrelationID(err, a.CorrelationID)
	}
	if trigger.CorrelationIDOf(m) != a.CorrelationID {
		ctx = logging.WithCorrelationID(ctx, a.CorrelationID)
	}
	stored, wrote, err := s.outcomes.ApplyOutcome(ctx, a.CorrelationID, func(current *store.Outcome) (*store.Outcome, error) {
		return Decide(current, &a, s.defaultTTL), nil
	})
	if err != nil {
		return trigger.WithCorrelationID(fmt.Errorf("finalize: %w", err), a.CorrelationID)
	}
	msg := "finalize: outcome recorded"
	if !wrote {
		msg = "finalize: outcome unchanged (already recorded, or superseded)"
	}
	attrs := []any{
		"kind", a.Kind, "status", a.Status, "destination", a.Destination, "deliveredAt", a.DeliveredAtRaw,
		"recordedStatus", stored.Delivery.Status, "recordedDeliveredAt", stored.Delivery.DeliveredAt,
	}
	if a.Error != nil {
		attrs = append(attrs, "errorCode", a.Error.Code)
	}
	if len(a.Parts) > 0 {
		attrs = append(attrs, "parts", len(a.Parts))
	}
	if sum := stored.Delivery.Summary; sum != nil {
		attrs = append(attrs, "partsSent", sum.Sent, "partsTotal", sum.Total)
	}
	s.log.InfoContext(ctx, msg, attrs...)
	return nil
}
