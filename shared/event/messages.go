package event

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	jsonv2 "github.com/go-json-experiment/json"

	"github.com/bitbrat/twitch-edge/shared/fault"
)

// Finalize statuses.
const (
	StatusSent   = "SENT"
	StatusFailed = "FAILED"
)

// TypeEgressDeliver is the `type` attribute of finalize messages.
const TypeEgressDeliver = "egress.deliver.v1"

// TypeDeadLetter is the `type` of dead-letter messages.
const TypeDeadLetter = "system.deadletter.v1"

// ErrorInfo is the {code, message} error of finalize and dead-letter messages.
type ErrorInfo struct {
	Code    string `json:"code"`
	Message string `json:"message,omitempty"`
}

// FinalizeMessage reports one delivery outcome on internal.persistence.finalize.v1.
type FinalizeMessage struct {
	CorrelationID string `json:"correlationId"`
	// Destination is the topic the egress event arrived on.
	Destination       string         `json:"destination"`
	DeliveredAt       string         `json:"deliveredAt"`
	Status            string         `json:"status"`
	Error             *ErrorInfo     `json:"error,omitzero"`
	ProviderMessageID string         `json:"providerMessageId,omitempty"`
	Candidates        []CandidateV1  `json:"candidates,omitzero"`
	Annotations       []AnnotationV1 `json:"annotations,omitzero"`
	// Parts is this edge's addition for chat text split into several messages: one
	// outcome per part, in order. Upstream ignores it; the finalize function records it.
	Parts []PartOutcome `json:"parts,omitzero"`
	Extra Extra         `json:",embed"`
}

// PartOutcome is the outcome of one part of a split delivery.
type PartOutcome struct {
	Index             int        `json:"index"`
	Status            string     `json:"status"`
	ProviderMessageID string     `json:"providerMessageId,omitempty"`
	Error             *ErrorInfo `json:"error,omitzero"`
}

// FinalizeAttributes are the Pub/Sub attributes of a finalize message.
func FinalizeAttributes(correlationID string) map[string]string {
	return map[string]string{AttrCorrelationID: correlationID, AttrType: TypeEgressDeliver}
}

// DeadLetter is a message that could not be processed, on internal.deadletter.v1.
type DeadLetter struct {
	CorrelationID string            `json:"correlationId"`
	Type          string            `json:"type"`
	Source        string            `json:"source"`
	Payload       DeadLetterPayload `json:"payload"`
	// Original is the message as received: its JSON when it was JSON, otherwise a
	// JSON string holding its base64.
	Original json.RawMessage `json:"original"`
}

// DeadLetterPayload says why a message was dead-lettered.
type DeadLetterPayload struct {
	Reason       string    `json:"reason"`
	Error        ErrorInfo `json:"error"`
	OriginalType string    `json:"originalType"`
	// OriginalTruncated says that original is a TruncatedOriginal (prefix, size,
	// SHA-256) because the message was too large to embed whole.
	OriginalTruncated bool `json:"originalTruncated,omitempty"`
}

// NewDeadLetter builds the dead-letter message for original, which source could not
// process because of cause. The error code comes from cause's fault classification.
func NewDeadLetter(source, correlationID, originalType, reason string, cause error, original []byte) DeadLetter {
	msg := reason
	if cause != nil {
		msg = cause.Error()
	}
	d := DeadLetter{
		CorrelationID: correlationID,
		Type:          TypeDeadLetter,
		Source:        source,
		Payload: DeadLetterPayload{
			Reason:       reason,
			Error:        ErrorInfo{Code: fault.CodeOf(cause, "UNPROCESSABLE"), Message: msg},
			OriginalType: originalType,
		},
	}
	d.Original, d.Payload.OriginalTruncated = originalOrDigest(original)
	return d
}

// DeadLetterAttributes are the Pub/Sub attributes of a dead-letter message.
func DeadLetterAttributes(d DeadLetter) map[string]string {
	return map[string]string{
		AttrType:          TypeDeadLetter,
		AttrCorrelationID: d.CorrelationID,
		AttrSource:        d.Source,
		// Attribute values must be valid UTF-8, or the publish is refused.
		"reason": truncate(strings.ToValidUTF8(d.Payload.Reason, "\uFFFD"), 256),
	}
}

// truncate cuts s to at most n bytes on a rune boundary: Pub/Sub refuses attribute
// values over 1,024 bytes, and a reason may quote outside input.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}

// MaxEventBytes bounds what Decode accepts. Pub/Sub allows 10 MB, but no legitimate
// BitBrat event comes near 1 MiB; a larger one is refused before decoding.
const MaxEventBytes = 1 << 20

// Decode parses an InternalEventV2 from untrusted bytes. Every failure is a
// fault.Invalid error saying what is wrong; it never panics.
func Decode(b []byte) (*InternalEventV2, error) {
	if len(b) > MaxEventBytes {
		return nil, fault.New(fault.Invalid, "EVENT_TOO_LARGE", "event is %d bytes, limit %d", len(b), MaxEventBytes)
	}
	var e InternalEventV2
	if err := unmarshalKeep(b, (*internalEventV2Plain)(&e)); err != nil {
		return nil, decodeFault("EVENT", "event", err)
	}
	return &e, nil
}

// DecodeFinalize parses a finalize message from untrusted bytes (fault.Invalid errors:
// FINALIZE_NOT_JSON, FINALIZE_NOT_OBJECT, FINALIZE_BAD_FIELD).
func DecodeFinalize(b []byte) (*FinalizeMessage, error) {
	if len(b) > MaxEventBytes {
		return nil, fault.New(fault.Invalid, "FINALIZE_TOO_LARGE", "message is %d bytes, limit %d", len(b), MaxEventBytes)
	}
	var m FinalizeMessage
	if err := unmarshalKeep(b, (*finalizeMessagePlain)(&m)); err != nil {
		return nil, decodeFault("FINALIZE", "finalize message", err)
	}
	return &m, nil
}

// decodeFault classifies a decoding error as <prefix>_NOT_OBJECT (valid JSON, not an
// object), <prefix>_BAD_FIELD (a member of the wrong type, named by its JSON pointer)
// or <prefix>_NOT_JSON (anything else: malformed or truncated input).
func decodeFault(prefix, what string, err error) error {
	var se *jsonv2.SemanticError
	if errors.As(err, &se) {
		if se.JSONPointer == "" && se.JSONKind != '{' && se.JSONKind != 0 {
			return fault.Wrap(fault.Invalid, prefix+"_NOT_OBJECT", err, "%s is a JSON %s, not an object", what, se.JSONKind)
		}
		if se.JSONPointer != "" {
			return fault.Wrap(fault.Invalid, prefix+"_BAD_FIELD", err, "%s: field %q has the wrong type", what, string(se.JSONPointer))
		}
	}
	return fault.Wrap(fault.Invalid, prefix+"_NOT_JSON", err, "%s is not a JSON object", what)
}

// Timestamp formats t the way upstream's `new Date().toISOString()` does: UTC with
// millisecond precision.
func Timestamp(t time.Time) string {
	return t.UTC().Format("2006-01-02T15:04:05.000Z")
}

// ParseTimestamp reads an ISO 8601 / RFC 3339 timestamp, with or without fractional
// seconds (Twitch sends nanoseconds, upstream milliseconds).
func ParseTimestamp(s string) (time.Time, error) {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("timestamp %q: %w", s, err)
	}
	return t, nil
}
