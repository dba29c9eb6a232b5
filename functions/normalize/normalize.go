// Package normalize turns raw EventSub notification frames (as the connector forwards
// them) into BitBrat InternalEventV2 events of type twitch.eventsub.v1 and publishes
// them to internal.ingress.v1, once per notification.
package normalize

import (
	"context"
	"encoding/json"
	"log/slog"
	"time"

	"github.com/go-json-experiment/json/jsontext"
	"github.com/google/uuid"
	"go.opentelemetry.io/otel/trace"

	"github.com/bitbrat/twitch-edge/functions/trigger"
	"github.com/bitbrat/twitch-edge/shared/event"
	"github.com/bitbrat/twitch-edge/shared/fault"
	"github.com/bitbrat/twitch-edge/shared/logging"
	"github.com/bitbrat/twitch-edge/shared/store"
	"github.com/bitbrat/twitch-edge/shared/twitch"
)

// Builder makes events from raw frames; it does no I/O.
type Builder struct {
	// Normalizers by subscription type; types without one go through Generic.
	Normalizers map[string]Normalizer
	// EgressDestination, when set, becomes the event's egress.destination.
	EgressDestination string
}

// Build decodes one raw EventSub frame and returns its normalized event. Every error
// is fault.Invalid: the same frame will never normalize.
func (b *Builder) Build(frame []byte) (*event.InternalEventV2, error) {
	// One pass over the frame: metadata, subscription and the raw event together
	// (decoding the envelope and then its payload would scan the payload twice).
	var msg struct {
		Metadata twitch.Metadata `json:"metadata"`
		Payload  struct {
			// Only what the event is built from: decoding the condition and the
			// transport (a map and two timestamps) would cost more than the rest.
			Subscription struct {
				Type    string `json:"type"`
				Version string `json:"version"`
			} `json:"subscription"`
			// jsontext.Value, not json.RawMessage: the codec fills it without
			// calling a method.
			Event jsontext.Value `json:"event"`
		} `json:"payload"`
	}
	if err := event.Unmarshal(frame, &msg); err != nil {
		return nil, fault.Wrap(fault.Invalid, twitch.CodeBadFrame, err, "decode eventsub notification")
	}
	if msg.Metadata.MessageType == "" || msg.Metadata.MessageID == "" {
		return nil, fault.New(fault.Invalid, twitch.CodeBadFrame, "frame without metadata.message_type or message_id")
	}
	if msg.Metadata.MessageType != twitch.MessageTypeNotification {
		return nil, fault.New(fault.Invalid, "EVENTSUB_NOT_NOTIFICATION", "message_type is %q, not notification", msg.Metadata.MessageType)
	}
	p := &msg.Payload
	if p.Subscription.Type == "" {
		return nil, fault.New(fault.Invalid, twitch.CodeBadFrame, "notification without subscription type")
	}
	if len(p.Event) == 0 || string(p.Event) == "null" {
		return nil, fault.New(fault.Invalid, "EVENTSUB_BAD_EVENT", "%s notification without event", p.Subscription.Type)
	}
	n := Notification{Metadata: msg.Metadata, Event: json.RawMessage(p.Event),
		Subscription: twitch.Subscription{Type: p.Subscription.Type, Version: p.Subscription.Version}}
	norm, ok := b.Normalizers[p.Subscription.Type]
	if !ok {
		norm = Generic
	}
	out, err := norm(n)
	if err != nil {
		return nil, trigger.WithCorrelationID(err, event.CorrelationIDForEventSub(msg.Metadata.MessageID))
	}
	payload, err := event.Marshal(out.Payload)
	if err != nil {
		return nil, fault.Wrap(fault.Invalid, "EVENTSUB_BAD_EVENT", err, "encode %s payload", p.Subscription.Type)
	}
	version := p.Subscription.Version
	if version == "" {
		version = msg.Metadata.SubscriptionVersion
	}
	cid := event.CorrelationIDForEventSub(msg.Metadata.MessageID)
	e := &event.InternalEventV2{
		V:             event.Version,
		Source:        event.SourceEventSubIngress,
		CorrelationID: cid,
		TraceID:       traceID(cid),
		Type:          event.TypeTwitchEventSub,
		UserID:        out.UserID,
		ExternalEvent: &event.ExternalEventV1{
			ID:         msg.Metadata.MessageID,
			Source:     event.ExternalSourceEventSub,
			Kind:       p.Subscription.Type,
			Version:    version,
			CreatedAt:  out.CreatedAt,
			Payload:    payload,
			RawPayload: json.RawMessage(p.Event),
		},
	}
	if out.ChannelLogin != "" {
		e.Channel = "#" + out.ChannelLogin
	}
	if b.EgressDestination != "" {
		e.Egress = &event.Egress{Destination: b.EgressDestination}
	}
	return e, nil
}

// traceID derives a W3C/Cloud Trace id (32 hex digits) from the correlation id, so
// that redeliveries share one trace too.
func traceID(correlationID string) string {
	b := make([]byte, 0, 32)
	for i := 0; i < len(correlationID); i++ {
		if correlationID[i] != '-' {
			b = append(b, correlationID[i])
		}
	}
	return string(b)
}

func timestamp(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }

// Publisher publishes one message and waits for the acknowledgement.
type Publisher interface {
	Publish(ctx context.Context, topic string, data []byte, attrs map[string]string) (string, error)
}

// Ledger makes publishing happen once per notification (store.Claims): Begin is one
// write and no read for a message seen the first time.
type Ledger interface {
	Begin(ctx context.Context, key, owner, origin string, lease time.Duration) (store.Claim, error)
	Release(ctx context.Context, key, owner string) error
}

// Service is the Normalize function's logic.
type Service struct {
	Builder *Builder
	Pub     Publisher
	Ledger  Ledger
	// IngressTopic is where events go (prefix applied).
	IngressTopic string
	// MaxAge: a message published longer ago than this is dead-lettered instead of
	// processed (Pub/Sub may have been retrying it for that long).
	MaxAge time.Duration
	// Owner names this instance in ledger claims (each attempt adds a unique suffix).
	Owner string
	// Lease is how long a claim blocks other instances (a crashed instance's claim
	// is taken over after it).
	Lease time.Duration
	Now   func() time.Time
	Log   *slog.Logger
}

// Handle normalizes and publishes one raw notification. It returns fault.Invalid
// errors for frames that can never be normalized (trigger dead-letters them) and
// transient errors when Pub/Sub or Firestore fail (Pub/Sub redelivers).
func (s *Service) Handle(ctx context.Context, m trigger.Message) error {
	if !m.PublishTime.IsZero() && s.MaxAge > 0 && s.Now().Sub(m.PublishTime) > s.MaxAge {
		return fault.New(fault.Invalid, "EVENTSUB_TOO_OLD", "published %s ago, limit %s", s.Now().Sub(m.PublishTime).Round(time.Second), s.MaxAge)
	}
	e, err := s.Builder.Build(m.Data)
	if err != nil {
		return err
	}
	if sc := trace.SpanContextFromContext(ctx); sc.IsValid() {
		e.TraceID = sc.TraceID().String() // the W3C trace the delivery continues (o20)
	}
	ctx = logging.WithCorrelationID(ctx, e.CorrelationID)
	// e.MarshalJSON, not json.Marshal(e): the latter re-validates and compacts the
	// whole output once more (40 % of the encoding time).
	body, err := e.MarshalJSON()
	if err != nil {
		return fault.Wrap(fault.Invalid, "EVENT_ENCODE_FAILED", err, "encode event")
	}
	key, err := claimKey(m, e.ExternalEvent.ID) // overlap.go: by content during a connector hand-off
	if err != nil {
		return err
	}
	// One owner per attempt: a claim's owner may re-acquire it, and two deliveries of
	// the same message can run at once in one instance.
	owner := s.Owner + "/" + uuid.NewString()
	// The claim is the record: no Complete after the publish (a second write per
	// event). A duplicate from another raw message (Twitch's redelivery forwarded
	// again, the webhook and a socket both) finds it Taken; a redelivery of this raw
	// message finds it Held while the lease runs, and takes it over after (the
	// earlier attempt did not ack: it failed or died).
	claim, err := s.Ledger.Begin(ctx, key, owner, m.ID, s.Lease)
	if err != nil {
		// The create may have landed though its answer did not (a timeout, a lost
		// connection): left there, it would hold every redelivery of this message off
		// for the lease, past the subscription's last attempt.
		s.release(ctx, key, owner)
		return err
	}
	switch claim.State {
	case store.Completed, store.Taken:
		s.Log.InfoContext(ctx, "normalize: duplicate notification, already claimed",
			"eventsubMessageId", e.ExternalEvent.ID, "kind", e.ExternalEvent.Kind, "claim", claim.State.String(),
			"ingressMessageId", claim.Result, "rawMessageId", m.ID)
		return nil
	case store.Held:
		return fault.New(fault.Transient, store.CodeInProgress, "notification %s is being published by %s until %s",
			e.ExternalEvent.ID, claim.Owner, claim.LeaseUntil.Format(time.RFC3339))
	}
	id, err := s.Pub.Publish(ctx, s.IngressTopic, body, event.Attributes(e))
	if err != nil {
		s.release(ctx, key, owner)
		return err
	}
	s.Log.InfoContext(ctx, "normalize: event published", "kind", e.ExternalEvent.Kind,
		"channel", e.Channel, "eventsubMessageId", e.ExternalEvent.ID, "ingressMessageId", id, "topic", s.IngressTopic)
	return nil
}

// releaseTimeout bounds the release of a failed attempt's claim.
const releaseTimeout = 5 * time.Second

// release gives up a failed attempt's claim so that the redelivery acquires it at
// once. Not with the attempt's own context: an attempt that failed because that
// context ended (the function's timeout, the push request gone) must still release,
// or its claim holds every redelivery off for the lease ("held"), and Pub/Sub
// dead-letters the message after its last attempt, unpublished.
func (s *Service) release(ctx context.Context, key, owner string) {
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), releaseTimeout)
	defer cancel()
	if err := s.Ledger.Release(rctx, key, owner); err != nil {
		s.Log.WarnContext(ctx, "normalize: claim of a failed attempt not released; redeliveries wait for its lease",
			"key", key, "lease", s.Lease.String(), "error", err.Error())
	}
}
