package finalize

import (
	"bytes"
	"encoding/json"
	"math"
	"sort"
	"strings"
	"time"

	"github.com/go-json-experiment/json/jsontext"

	"github.com/bitbrat/twitch-edge/shared/event"
	"github.com/bitbrat/twitch-edge/shared/fault"
)

// Error codes of messages that can never be recorded (fault.Invalid; the trigger
// dead-letters them). A malformed InternalEventV2 keeps event.Decode's EVENT_* codes.
const (
	CodeTooLarge             = "FINALIZE_TOO_LARGE"
	CodeNotJSON              = "FINALIZE_NOT_JSON"
	CodeNotObject            = "FINALIZE_NOT_OBJECT"
	CodeBadField             = "FINALIZE_BAD_FIELD"
	CodeMissingCorrelationID = "FINALIZE_MISSING_CORRELATION_ID"
	CodeBadStatus            = "FINALIZE_BAD_STATUS"
	CodeBadDeliveredAt       = "FINALIZE_BAD_DELIVERED_AT"
	CodeBadPart              = "FINALIZE_BAD_PART"
)

// StatusFinalized is the delivery status recorded for an InternalEventV2 sent to the
// finalize topic without an outcome of its own: processed, outcome not reported
// (upstream's persistence records the same).
const StatusFinalized = "FINALIZED"

// Kinds of input (Attempt.Kind).
const (
	KindFinalize = "finalize" // the finalize message egress publishes
	KindEvent    = "event"    // a whole InternalEventV2, as upstream services send
)

// Bounds on what a message may claim.
const (
	// MaxParts bounds the parts of a split delivery (a chat message is at most 500
	// characters; 100 parts is far beyond any response worth sending).
	MaxParts = 100
	// MaxFutureSkew bounds how far deliveredAt may lie after the message was
	// published. A time far in the future would win every later comparison and push
	// expireAt out for ever.
	MaxFutureSkew = 24 * time.Hour
	// MaxTTL bounds qos.ttl; longer values are cut to it.
	MaxTTL = 10 * 365 * 24 * time.Hour
)

// Attempt is one validated delivery outcome: what a finalize message (or an event on
// the finalize topic) reports.
type Attempt struct {
	Kind          string
	CorrelationID string
	Destination   string
	Status        string // SENT | FAILED | FINALIZED (KindEvent only)
	// DeliveredAtRaw is deliveredAt as sent (it is recorded as is); DeliveredAt is it
	// parsed.
	DeliveredAtRaw    string
	DeliveredAt       time.Time
	ProviderMessageID string
	Error             *event.ErrorInfo
	// Parts are the outcomes of a split delivery, in index order, indexes unique.
	Parts       []event.PartOutcome
	Annotations []event.AnnotationV1
	Candidates  []event.CandidateV1
	// TTL is qos.ttl when the message carries a usable one, else zero (use the default).
	TTL time.Duration
}

// shapeProbe tells a finalize message from an InternalEventV2 without decoding either.
// Its members stay raw (the codec skips the rest of the message without decoding it).
type shapeProbe struct {
	V           jsontext.Value `json:"v"`
	Type        jsontext.Value `json:"type"`
	Status      jsontext.Value `json:"status"`
	DeliveredAt jsontext.Value `json:"deliveredAt"`
}

// Decode reads and validates a message from the finalize topic. publishedAt is when
// Pub/Sub accepted it: the deliveredAt of an event that carries none (stable across
// redeliveries, so a redelivered event is recognised), and the reference of the
// future-skew check (skipped when zero).
//
// The topic carries two shapes. A message with both `status` and `deliveredAt` is a
// finalize message (the contract's required members); otherwise one with both `type`
// and `v` is an InternalEventV2; anything else is read as a finalize message and
// fails its validation with a precise code.
//
// Every error is fault.Invalid. When the correlation id could be read, the returned
// Attempt carries it even with an error (so the dead letter does).
func Decode(data []byte, publishedAt time.Time) (Attempt, error) {
	if len(data) > event.MaxEventBytes {
		return Attempt{}, fault.New(fault.Invalid, CodeTooLarge, "message is %d bytes, limit %d", len(data), event.MaxEventBytes)
	}
	trimmed := bytes.TrimLeft(data, " \t\r\n")
	if len(trimmed) == 0 || trimmed[0] != '{' {
		if json.Valid(data) {
			return Attempt{}, fault.New(fault.Invalid, CodeNotObject, "message is JSON but not an object")
		}
		return Attempt{}, fault.New(fault.Invalid, CodeNotJSON, "message is not valid JSON")
	}
	var p shapeProbe
	if err := event.Unmarshal(data, &p); err != nil {
		return Attempt{}, fault.Wrap(fault.Invalid, CodeNotJSON, err, "message is not valid JSON")
	}
	present := func(r jsontext.Value) bool { return len(r) > 0 && string(r) != "null" }
	if !(present(p.Status) && present(p.DeliveredAt)) && present(p.Type) && present(p.V) {
		return decodeEvent(data, publishedAt)
	}
	return decodeFinalize(data, publishedAt)
}

func decodeFinalize(data []byte, publishedAt time.Time) (Attempt, error) {
	// Its errors carry this package's codes: FINALIZE_BAD_FIELD (CodeBadField) for a
	// member of the wrong type, FINALIZE_NOT_JSON (CodeNotJSON) otherwise.
	m, err := event.DecodeFinalize(data)
	if err != nil {
		return Attempt{}, err
	}
	a := Attempt{
		Kind:              KindFinalize,
		CorrelationID:     m.CorrelationID,
		Destination:       m.Destination,
		Status:            m.Status,
		DeliveredAtRaw:    m.DeliveredAt,
		ProviderMessageID: m.ProviderMessageID,
		Error:             m.Error,
		Annotations:       m.Annotations,
		Candidates:        m.Candidates,
	}
	if strings.TrimSpace(a.CorrelationID) == "" {
		return Attempt{}, fault.New(fault.Invalid, CodeMissingCorrelationID, "finalize message has no correlationId")
	}
	if a.Status != event.StatusSent && a.Status != event.StatusFailed {
		return a, fault.New(fault.Invalid, CodeBadStatus, "status %q is not SENT or FAILED", a.Status)
	}
	if err := a.setDeliveredAt(m.DeliveredAt, publishedAt); err != nil {
		return a, err
	}
	parts, err := validParts(m.Parts)
	if err != nil {
		return a, err
	}
	a.Parts = parts
	// Upstream reads qos.ttl from whatever arrives here; a finalize message may carry it.
	if raw, ok := m.Extra["qos"]; ok {
		var q event.QOSV1
		if event.Unmarshal(raw, &q) == nil {
			a.TTL = ttlOf(&q)
		}
	}
	return a, nil
}

// decodeEvent records an InternalEventV2 the way upstream's persistence does: the
// event itself says it was processed. Its delivery is derived from what it carries:
// destination = its top-level `destination`, else egress.destination; status = its
// top-level `status` when SENT or FAILED, else FINALIZED; deliveredAt = its
// `deliveredAt`, else `finalizedAt`, else publishedAt; providerMessageId and error
// from top-level members of those names; projection = its annotations and candidates;
// TTL = qos.ttl.
func decodeEvent(data []byte, publishedAt time.Time) (Attempt, error) {
	e, err := event.Decode(data)
	if err != nil {
		return Attempt{}, err
	}
	a := Attempt{
		Kind:          KindEvent,
		CorrelationID: e.CorrelationID,
		Status:        StatusFinalized,
		Annotations:   e.Annotations,
		Candidates:    e.Candidates,
		TTL:           ttlOf(e.QOS),
	}
	if strings.TrimSpace(a.CorrelationID) == "" {
		return Attempt{}, fault.New(fault.Invalid, CodeMissingCorrelationID, "event has no correlationId")
	}
	str := func(k string) string {
		var s string
		if raw, ok := e.Extra[k]; ok {
			_ = event.Unmarshal(raw, &s)
		}
		return s
	}
	a.Destination = str("destination")
	if a.Destination == "" && e.Egress != nil {
		a.Destination = e.Egress.Destination
	}
	if s := str("status"); s == event.StatusSent || s == event.StatusFailed {
		a.Status = s
	}
	a.ProviderMessageID = str("providerMessageId")
	if raw, ok := e.Extra["error"]; ok {
		var ei event.ErrorInfo
		if event.Unmarshal(raw, &ei) == nil && ei.Code != "" {
			a.Error = &ei
		}
	}
	at := str("deliveredAt")
	if at == "" {
		at = str("finalizedAt")
	}
	if at == "" {
		if publishedAt.IsZero() {
			return a, fault.New(fault.Invalid, CodeBadDeliveredAt, "event has no deliveredAt and the message no publish time")
		}
		at = event.Timestamp(publishedAt)
	}
	if err := a.setDeliveredAt(at, publishedAt); err != nil {
		return a, err
	}
	return a, nil
}

func (a *Attempt) setDeliveredAt(s string, publishedAt time.Time) error {
	if s == "" {
		return fault.New(fault.Invalid, CodeBadDeliveredAt, "deliveredAt is missing")
	}
	t, err := event.ParseTimestamp(s)
	if err != nil {
		return fault.Wrap(fault.Invalid, CodeBadDeliveredAt, err, "deliveredAt is not an ISO 8601 time")
	}
	if !publishedAt.IsZero() && t.After(publishedAt.Add(MaxFutureSkew)) {
		return fault.New(fault.Invalid, CodeBadDeliveredAt, "deliveredAt %s is more than %s after the message was published (%s)",
			s, MaxFutureSkew, event.Timestamp(publishedAt))
	}
	a.DeliveredAtRaw, a.DeliveredAt = s, t
	return nil
}

// validParts checks the parts of a split delivery and returns them in index order.
func validParts(parts []event.PartOutcome) ([]event.PartOutcome, error) {
	if len(parts) == 0 {
		return nil, nil
	}
	if len(parts) > MaxParts {
		return nil, fault.New(fault.Invalid, CodeBadPart, "%d parts, limit %d", len(parts), MaxParts)
	}
	out := make([]event.PartOutcome, len(parts))
	copy(out, parts)
	sort.SliceStable(out, func(i, j int) bool { return out[i].Index < out[j].Index })
	for i, p := range out {
		switch {
		case p.Index < 0 || p.Index >= MaxParts:
			return nil, fault.New(fault.Invalid, CodeBadPart, "part index %d is outside 0..%d", p.Index, MaxParts-1)
		case i > 0 && out[i-1].Index == p.Index:
			return nil, fault.New(fault.Invalid, CodeBadPart, "part index %d appears twice", p.Index)
		case p.Status != event.StatusSent && p.Status != event.StatusFailed:
			return nil, fault.New(fault.Invalid, CodeBadPart, "part %d: status %q is not SENT or FAILED", p.Index, p.Status)
		}
	}
	return out, nil
}

// ttlOf is qos.ttl as a duration: zero when absent or not a positive finite number
// (upstream ignores such values too), at most MaxTTL.
func ttlOf(q *event.QOSV1) time.Duration {
	if q == nil || q.TTL == nil {
		return 0
	}
	s := *q.TTL
	if math.IsNaN(s) || math.IsInf(s, 0) || s <= 0 {
		return 0
	}
	if s >= MaxTTL.Seconds() {
		return MaxTTL
	}
	return time.Duration(s * float64(time.Second))
}
