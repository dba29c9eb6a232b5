package event

import (
	"crypto/sha1"

	"github.com/google/uuid"
)

// Topic names, before the deployment prefix (BUS_PREFIX) is applied.
const (
	TopicIngress    = "internal.ingress.v1"
	TopicEgress     = "internal.egress.v1"
	TopicFinalize   = "internal.persistence.finalize.v1"
	TopicDeadLetter = "internal.deadletter.v1"
	// TopicEventSubRaw carries raw EventSub notification frames from the connector to
	// the Normalize function. It is this edge's own topic.
	TopicEventSubRaw = "twitch.eventsub.raw.v1"
	// TopicWhisper carries dm egress events from EgressChat to EgressWhisper, so that
	// whispers get their own concurrency and rate limits.
	TopicWhisper = "twitch.egress.whisper.v1"
)

// TypeEventSubRawNotification names, in dead letters, a raw EventSub notification
// frame as the connector forwards it.
const TypeEventSubRawNotification = "twitch.eventsub.raw.v1"

// EgressInstanceTopic is the per-instance egress topic `internal.egress.v1.<id>`.
func EgressInstanceTopic(instanceID string) string { return TopicEgress + "." + instanceID }

// Prefix is a deployment's BUS_PREFIX. Every topic name goes through it, so the rule
// lives here and nowhere else.
type Prefix string

// Topic returns the full topic id for name: the prefix followed by name.
func (p Prefix) Topic(name string) string { return string(p) + name }

// Pub/Sub attribute keys. Upstream lowercases attribute keys on the wire.
const (
	AttrType           = "type"
	AttrCorrelationID  = "correlationid"
	AttrIdempotencyKey = "idempotencykey"
	AttrSource         = "source"
	AttrTraceID        = "traceid"
	AttrChannel        = "channel"
)

// Pub/Sub attribute keys of a raw notification on TopicEventSubRaw, as the connector
// publishes it (this edge's own; upstream never sees them).
const (
	AttrEventSubMessageID           = "eventsub_message_id"
	AttrEventSubMessageType         = "eventsub_message_type"
	AttrEventSubSubscriptionType    = "eventsub_subscription_type"
	AttrEventSubSubscriptionVersion = "eventsub_subscription_version"
	AttrEventSubBroadcasterID       = "broadcaster_user_id"
	AttrEventSubMessageTimestamp    = "eventsub_message_timestamp"
	// AttrEventSubOverlap ("1") marks a frame forwarded during a hand-off between
	// connector instances: Normalize dedupes it by content, not message id.
	AttrEventSubOverlap = "eventsub_overlap"
)

// Attributes returns the Pub/Sub attributes upstream puts on an event it publishes:
// type, correlationid, idempotencykey (= correlationId), source, traceid, channel.
// Empty values are left out.
func Attributes(e *InternalEventV2) map[string]string {
	a := make(map[string]string, 6)
	set := func(k, v string) {
		if v != "" {
			a[k] = v
		}
	}
	set(AttrType, e.Type)
	set(AttrCorrelationID, e.CorrelationID)
	set(AttrIdempotencyKey, e.CorrelationID)
	set(AttrSource, e.Source)
	set(AttrTraceID, e.TraceID)
	set(AttrChannel, e.Channel)
	return a
}

// eventSubNamespace is the UUID namespace of correlation ids derived from EventSub
// message ids. Changing it changes every derived id: never change it.
var eventSubNamespace = uuid.MustParse("6f1d2c1e-5b0a-4f4e-9a51-2b7c0e3d9a10")

// CorrelationIDForEventSub derives the correlation id of the event made from the
// EventSub notification with the given message_id: a name-based (v5) UUID, so every
// redelivery of the notification yields the same id.
//
// It is uuid.NewSHA1(eventSubNamespace, "twitch.eventsub:"+messageID) (a test holds it
// to that) computed with one sha1.Sum over a stack buffer: Normalize derives one per
// notification, and NewSHA1's hash object and copies were 5 % of its time.
func CorrelationIDForEventSub(messageID string) string {
	const prefix = "twitch.eventsub:"
	var buf [128]byte
	b := append(append(append(buf[:0], eventSubNamespace[:]...), prefix...), messageID...)
	sum := sha1.Sum(b)
	var id uuid.UUID
	copy(id[:], sum[:16])
	id[6] = (id[6] & 0x0f) | 0x50 // version 5
	id[8] = (id[8] & 0x3f) | 0x80 // RFC 4122 variant
	return id.String()
}
