// Package event is the wire contract between this edge and the rest of BitBrat: the
// InternalEventV2 envelope and the records it carries, the finalize and dead-letter
// messages, topic names, Pub/Sub attributes and the deterministic correlation id.
//
// JSON member names are exact (the platform upstream is TypeScript and reads them as
// written). Optional members are omitted when absent. Every object keeps the members
// it does not know in Extra, so a decode/encode round trip loses nothing another
// service added. Free-form members (payload, rawPayload, metadata, value) are kept as
// raw JSON: they pass through unchanged, numbers included.
package event

import "encoding/json"

// Version is the envelope version this edge writes (`v`).
const Version = "1"

// TypeTwitchEventSub is the InternalEventV2 type of normalized EventSub notifications.
const TypeTwitchEventSub = "twitch.eventsub.v1"

// SourceEventSubIngress is the envelope `source` of normalized EventSub events.
const SourceEventSubIngress = "ingress.twitch.eventsub"

// ExternalSourceEventSub is ExternalEventV1.source for EventSub notifications.
const ExternalSourceEventSub = "twitch.eventsub"

// Egress types (Egress.Type).
const (
	EgressChat  = "chat"
	EgressDM    = "dm"
	EgressEvent = "event"
)

// InternalEventV2 is BitBrat's event envelope (EnvelopeV1 flattened in).
type InternalEventV2 struct {
	// EnvelopeV1
	V             string        `json:"v"`
	Source        string        `json:"source"`
	CorrelationID string        `json:"correlationId"`
	TraceID       string        `json:"traceId,omitempty"`
	ReplyTo       string        `json:"replyTo,omitempty"`
	TimeoutAt     string        `json:"timeoutAt,omitempty"`
	RoutingSlip   []RoutingStep `json:"routingSlip,omitzero"`
	Egress        *Egress       `json:"egress,omitzero"`
	User          *User         `json:"user,omitzero"`
	Auth          *Auth         `json:"auth,omitzero"`

	Type          string           `json:"type"`
	Channel       string           `json:"channel,omitempty"`
	UserID        string           `json:"userId,omitempty"`
	Payload       json.RawMessage  `json:"payload,omitzero"`
	Message       *MessageV1       `json:"message,omitzero"`
	ExternalEvent *ExternalEventV1 `json:"externalEvent,omitzero"`
	Annotations   []AnnotationV1   `json:"annotations,omitzero"`
	Candidates    []CandidateV1    `json:"candidates,omitzero"`
	Errors        []ErrorEntryV1   `json:"errors,omitzero"`
	QOS           *QOSV1           `json:"qos,omitzero"`

	Extra Extra `json:",embed"`
}

// Egress says where and how a response should be delivered.
type Egress struct {
	Destination string `json:"destination"`
	Type        string `json:"type,omitempty"`
	Extra       Extra  `json:",embed"`
}

// User is the platform user an event is about, as enriched upstream.
type User struct {
	ID          string   `json:"id"`
	Email       string   `json:"email,omitempty"`
	DisplayName string   `json:"displayName,omitempty"`
	Roles       []string `json:"roles,omitzero"`
	Status      string   `json:"status,omitempty"`
	Notes       string   `json:"notes,omitempty"`
	Tags        []string `json:"tags,omitzero"`
	Extra       Extra    `json:",embed"`
}

// Auth records how upstream's enrichment matched the user.
type Auth struct {
	V        string `json:"v"`
	Provider string `json:"provider,omitempty"`
	Method   string `json:"method"`
	Matched  bool   `json:"matched"`
	UserRef  string `json:"userRef,omitempty"`
	At       string `json:"at"`
	Extra    Extra  `json:",embed"`
}

// RoutingStep is one hop of an event's routing slip.
type RoutingStep struct {
	ID          string            `json:"id"`
	V           string            `json:"v,omitempty"`
	Status      string            `json:"status"` // PENDING | OK | ERROR | SKIP
	Attempt     *int              `json:"attempt,omitzero"`
	MaxAttempts *int              `json:"maxAttempts,omitzero"`
	NextTopic   string            `json:"nextTopic,omitempty"`
	Attributes  map[string]string `json:"attributes,omitzero"`
	StartedAt   string            `json:"startedAt,omitempty"`
	EndedAt     string            `json:"endedAt,omitempty"`
	Error       *RoutingError     `json:"error,omitzero"`
	Notes       string            `json:"notes,omitempty"`
	Extra       Extra             `json:",embed"`
}

// RoutingError is the error of a failed routing step.
type RoutingError struct {
	Code      string `json:"code"`
	Message   string `json:"message,omitempty"`
	Retryable *bool  `json:"retryable,omitzero"`
	Extra     Extra  `json:",embed"`
}

// ExternalEventV1 is a normalized behavioural event from an external platform.
type ExternalEventV1 struct {
	ID         string          `json:"id"`
	Source     string          `json:"source"`
	Kind       string          `json:"kind"`
	Version    string          `json:"version"`
	CreatedAt  string          `json:"createdAt"`
	Payload    json.RawMessage `json:"payload"`
	RawPayload json.RawMessage `json:"rawPayload,omitzero"`
	Extra      Extra           `json:",embed"`
}

// MessageV1 is a chat message carried by an event.
type MessageV1 struct {
	ID                 string          `json:"id"`
	Role               string          `json:"role"` // user | assistant | system | tool
	Text               string          `json:"text,omitempty"`
	Language           string          `json:"language,omitempty"`
	RawPlatformPayload json.RawMessage `json:"rawPlatformPayload,omitzero"`
	Extra              Extra           `json:",embed"`
}

// CandidateV1 is a proposed response; egress delivers the best one.
type CandidateV1 struct {
	ID         string          `json:"id"`
	Kind       string          `json:"kind"`
	Source     string          `json:"source"`
	CreatedAt  string          `json:"createdAt"`
	Status     string          `json:"status"` // proposed | selected | superseded | rejected
	Priority   float64         `json:"priority"`
	Confidence *float64        `json:"confidence,omitzero"`
	Text       string          `json:"text,omitempty"`
	Format     string          `json:"format,omitempty"`
	Reason     string          `json:"reason,omitempty"`
	Metadata   json.RawMessage `json:"metadata,omitzero"`
	Extra      Extra           `json:",embed"`
}

// AnnotationV1 is a fact some service attached to an event.
type AnnotationV1 struct {
	ID         string          `json:"id"`
	Kind       string          `json:"kind"`
	Source     string          `json:"source"`
	CreatedAt  string          `json:"createdAt"`
	Confidence *float64        `json:"confidence,omitzero"`
	Label      string          `json:"label,omitempty"`
	Value      json.RawMessage `json:"value,omitzero"`
	Score      *float64        `json:"score,omitzero"`
	Payload    json.RawMessage `json:"payload,omitzero"`
	Extra      Extra           `json:",embed"`
}

// ErrorEntryV1 is an error a service recorded on the event.
type ErrorEntryV1 struct {
	Source  string `json:"source"`
	Message string `json:"message"`
	Fatal   *bool  `json:"fatal,omitzero"`
	At      string `json:"at"`
	Extra   Extra  `json:",embed"`
}

// QOSV1 carries quality-of-service hints.
type QOSV1 struct {
	// TTL is the event's time to live in seconds.
	TTL   *float64 `json:"ttl,omitzero"`
	Extra Extra    `json:",embed"`
}
