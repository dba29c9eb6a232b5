package store

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
	"time"

	"cloud.google.com/go/firestore"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/bitbrat/twitch-edge/shared/event"
	"github.com/bitbrat/twitch-edge/shared/fault"
)

// StatusFinalized is the document status of an event whose delivery outcome is
// recorded (upstream writes INGESTED before, FINALIZED after).
const StatusFinalized = "FINALIZED"

// Field names of the outcome on events/{correlationId}. The first six are
// BitBrat's persistence contract; updateCount and updatedAt are this edge's
// bookkeeping (how often the outcome was written, and when last).
const (
	eventFieldCorrelationID = "correlationId"
	eventFieldStatus        = "status"
	eventFieldFinalizedAt   = "finalizedAt"
	eventFieldDelivery      = "delivery"
	eventFieldProjection    = "currentProjection"
	eventFieldUpdateCount   = "updateCount"
	eventFieldUpdatedAt     = "updatedAt"
)

// eventOutcomePaths are the top-level fields an outcome write replaces. Everything
// else on the document (the ingested event upstream's persistence wrote) is kept.
var eventOutcomePaths = []firestore.FieldPath{
	{eventFieldCorrelationID}, {eventFieldStatus}, {eventFieldFinalizedAt}, {eventFieldDelivery},
	{FieldExpireAt}, {eventFieldProjection}, {eventFieldUpdateCount}, {eventFieldUpdatedAt},
}

// Outcome is the delivery outcome recorded on events/{correlationId}: the fields of
// that document this edge owns.
//
// In Firestore:
//
//	correlationId, status: "FINALIZED", finalizedAt (ISO 8601 string, as upstream),
//	delivery: {destination, status, deliveredAt, providerMessageId?, error: {code, message?} | null,
//	           parts?: {"<index>": {index, status, deliveredAt, providerMessageId?, error}},
//	           summary?: {total, sent, failed, status}},
//	expireAt (timestamp; Firestore's TTL policy reads it),
//	currentProjection: {annotations: [...], candidates: [...]},
//	updateCount, updatedAt (timestamp)
type Outcome struct {
	// FinalizedAt is when the event was finalized, an ISO 8601 string.
	FinalizedAt string
	Delivery    Delivery
	ExpireAt    time.Time
	Annotations []event.AnnotationV1
	Candidates  []event.CandidateV1

	// Set by the store on every write; what a decide function returns here is ignored.
	CorrelationID string
	UpdateCount   int64
	UpdatedAt     time.Time
}

// Delivery is the outcome of the delivery of an event's response.
type Delivery struct {
	Destination       string
	Status            string // SENT | FAILED (or FINALIZED: processed, outcome not reported)
	DeliveredAt       string // ISO 8601, as reported
	ProviderMessageID string
	Error             *event.ErrorInfo
	// Parts holds one record per part of a split chat delivery, by part index; nil
	// for a delivery in one message.
	Parts map[int]PartRecord
	// Summary counts Parts; nil when there are none.
	Summary *PartsSummary
}

// PartRecord is the recorded outcome of one part of a split delivery.
type PartRecord struct {
	Index             int
	Status            string // SENT | FAILED
	DeliveredAt       string // of the attempt that recorded this outcome
	ProviderMessageID string
	Error             *event.ErrorInfo
}

// PartsSummary sums up the parts of a split delivery.
type PartsSummary struct {
	Total, Sent, Failed int
	// Status is SENT (every part), PARTIAL (some) or FAILED (none).
	Status string
}

// Events records delivery outcomes on the event documents BitBrat's persistence
// keeps (collection "events", one document per correlation id).
type Events struct {
	client *firestore.Client
	now    func() time.Time
}

// NewEvents returns the outcome store on client. now may be nil (time.Now); it
// stamps updatedAt.
func NewEvents(client *firestore.Client, now func() time.Time) *Events {
	if now == nil {
		now = time.Now
	}
	return &Events{client: client, now: now}
}

func (s *Events) doc(correlationID string) *firestore.DocumentRef {
	return s.client.Collection(CollectionEvents).Doc(DocID(correlationID))
}

// ApplyOutcome reads the outcome recorded for correlationID and writes what decide
// makes of it, in one transaction, so that concurrent and redelivered messages are
// decided against what is really stored. decide gets nil when no outcome is recorded
// yet (the document may still hold the ingested event) and returns the outcome to
// store, or nil to leave the document unchanged. It may run more than once (the
// transaction retries under contention), so it must not have side effects.
//
// ApplyOutcome returns the outcome stored afterwards and whether it wrote. Errors
// from decide are returned as they are; Firestore errors are classified (unavailable,
// contention, timeout: fault.Transient).
func (s *Events) ApplyOutcome(ctx context.Context, correlationID string, decide func(current *Outcome) (*Outcome, error)) (Outcome, bool, error) {
	ref := s.doc(correlationID)
	var (
		out   Outcome
		wrote bool
	)
	err := s.client.RunTransaction(ctx, func(ctx context.Context, tx *firestore.Transaction) error {
		out, wrote = Outcome{}, false
		snap, err := tx.Get(ref)
		if err != nil && status.Code(err) != codes.NotFound {
			return err
		}
		var (
			current *Outcome
			count   int64
		)
		if snap != nil && snap.Exists() {
			current, count = outcomeFromDoc(snap.Data())
		}
		next, err := decide(current)
		if err != nil {
			return err
		}
		if next == nil {
			if current != nil {
				out = *current
			}
			return nil
		}
		n := *next
		n.CorrelationID, n.UpdateCount, n.UpdatedAt = correlationID, count+1, s.now()
		data, err := outcomeDoc(n)
		if err != nil {
			return fault.Wrap(fault.Invalid, "OUTCOME_NOT_STORABLE", err, "outcome of %s", correlationID)
		}
		out, wrote = n, true
		return tx.Set(ref, data, firestore.Merge(eventOutcomePaths...))
	}, firestore.MaxAttempts(10))
	if err != nil {
		return Outcome{}, false, classify(err, "record outcome %s/%s", CollectionEvents, correlationID)
	}
	return out, wrote, nil
}

// GetOutcome reads the outcome recorded for correlationID; ok is false when there is
// none (no document, or a document without a delivery).
func (s *Events) GetOutcome(ctx context.Context, correlationID string) (Outcome, bool, error) {
	snap, err := s.doc(correlationID).Get(ctx)
	if status.Code(err) == codes.NotFound {
		return Outcome{}, false, nil
	}
	if err != nil {
		return Outcome{}, false, classify(err, "get outcome %s/%s", CollectionEvents, correlationID)
	}
	o, _ := outcomeFromDoc(snap.Data())
	if o == nil {
		return Outcome{}, false, nil
	}
	return *o, true, nil
}

// outcomeDoc is the Firestore data of o.
func outcomeDoc(o Outcome) (map[string]any, error) {
	annotations, err := outcomeValue(o.Annotations)
	if err != nil {
		return nil, fmt.Errorf("annotations: %w", err)
	}
	candidates, err := outcomeValue(o.Candidates)
	if err != nil {
		return nil, fmt.Errorf("candidates: %w", err)
	}
	if annotations == nil {
		annotations = []any{}
	}
	if candidates == nil {
		candidates = []any{}
	}
	d := o.Delivery
	delivery := map[string]any{
		"destination": d.Destination,
		"status":      d.Status,
		"deliveredAt": d.DeliveredAt,
		"error":       outcomeErrorValue(d.Error),
	}
	if d.ProviderMessageID != "" {
		delivery["providerMessageId"] = d.ProviderMessageID
	}
	if len(d.Parts) > 0 {
		parts := make(map[string]any, len(d.Parts))
		for i, p := range d.Parts {
			v := map[string]any{
				"index":       int64(p.Index),
				"status":      p.Status,
				"deliveredAt": p.DeliveredAt,
				"error":       outcomeErrorValue(p.Error),
			}
			if p.ProviderMessageID != "" {
				v["providerMessageId"] = p.ProviderMessageID
			}
			parts[strconv.Itoa(i)] = v
		}
		delivery["parts"] = parts
	}
	if d.Summary != nil {
		delivery["summary"] = map[string]any{
			"total":  int64(d.Summary.Total),
			"sent":   int64(d.Summary.Sent),
			"failed": int64(d.Summary.Failed),
			"status": d.Summary.Status,
		}
	}
	return map[string]any{
		eventFieldCorrelationID: o.CorrelationID,
		eventFieldStatus:        StatusFinalized,
		eventFieldFinalizedAt:   o.FinalizedAt,
		eventFieldDelivery:      delivery,
		FieldExpireAt:           o.ExpireAt,
		eventFieldProjection:    map[string]any{"annotations": annotations, "candidates": candidates},
		eventFieldUpdateCount:   o.UpdateCount,
		eventFieldUpdatedAt:     o.UpdatedAt,
	}, nil
}

func outcomeErrorValue(e *event.ErrorInfo) any {
	if e == nil {
		return nil
	}
	v := map[string]any{"code": e.Code}
	if e.Message != "" {
		v["message"] = e.Message
	}
	return v
}

// outcomeValue turns a JSON-encodable value into Firestore values: maps, slices,
// strings, booleans, nil, and numbers as int64 when integral (as upstream's Node
// client stores them), float64 otherwise.
func outcomeValue(v any) (any, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var x any
	if err := dec.Decode(&x); err != nil {
		return nil, err
	}
	return outcomeNumbers(x), nil
}

func outcomeNumbers(x any) any {
	switch v := x.(type) {
	case map[string]any:
		for k, e := range v {
			v[k] = outcomeNumbers(e)
		}
		return v
	case []any:
		for i, e := range v {
			v[i] = outcomeNumbers(e)
		}
		return v
	case json.Number:
		if i, err := v.Int64(); err == nil {
			return i
		}
		f, _ := v.Float64()
		return f
	default:
		return v
	}
}

// outcomeFromDoc reads the outcome from a document's data, tolerating documents
// other writers shaped differently: what cannot be read is treated as absent. It
// returns nil when the document holds no delivery, and the updateCount either way.
func outcomeFromDoc(data map[string]any) (*Outcome, int64) {
	count, _ := data[eventFieldUpdateCount].(int64)
	dm, ok := data[eventFieldDelivery].(map[string]any)
	if !ok {
		return nil, count
	}
	o := &Outcome{
		CorrelationID: outcomeString(data, eventFieldCorrelationID),
		FinalizedAt:   outcomeString(data, eventFieldFinalizedAt),
		UpdateCount:   count,
		Delivery: Delivery{
			Destination:       outcomeString(dm, "destination"),
			Status:            outcomeString(dm, "status"),
			DeliveredAt:       outcomeString(dm, "deliveredAt"),
			ProviderMessageID: outcomeString(dm, "providerMessageId"),
			Error:             outcomeErrorFrom(dm["error"]),
		},
	}
	if t, ok := data[FieldExpireAt].(time.Time); ok {
		o.ExpireAt = t.UTC()
	}
	if t, ok := data[eventFieldUpdatedAt].(time.Time); ok {
		o.UpdatedAt = t.UTC()
	}
	if pm, ok := dm["parts"].(map[string]any); ok {
		for k, v := range pm {
			i, err := strconv.Atoi(k)
			pv, ok := v.(map[string]any)
			if err != nil || i < 0 || !ok {
				continue
			}
			if o.Delivery.Parts == nil {
				o.Delivery.Parts = make(map[int]PartRecord, len(pm))
			}
			o.Delivery.Parts[i] = PartRecord{
				Index:             i,
				Status:            outcomeString(pv, "status"),
				DeliveredAt:       outcomeString(pv, "deliveredAt"),
				ProviderMessageID: outcomeString(pv, "providerMessageId"),
				Error:             outcomeErrorFrom(pv["error"]),
			}
		}
	}
	if sm, ok := dm["summary"].(map[string]any); ok {
		o.Delivery.Summary = &PartsSummary{
			Total:  outcomeInt(sm, "total"),
			Sent:   outcomeInt(sm, "sent"),
			Failed: outcomeInt(sm, "failed"),
			Status: outcomeString(sm, "status"),
		}
	}
	if pm, ok := data[eventFieldProjection].(map[string]any); ok {
		outcomeDecode(pm["annotations"], &o.Annotations)
		outcomeDecode(pm["candidates"], &o.Candidates)
	}
	return o, count
}

func outcomeString(m map[string]any, k string) string {
	s, _ := m[k].(string)
	return s
}

func outcomeInt(m map[string]any, k string) int {
	switch v := m[k].(type) {
	case int64:
		return int(v)
	case float64:
		return int(v)
	}
	return 0
}

func outcomeErrorFrom(v any) *event.ErrorInfo {
	m, ok := v.(map[string]any)
	if !ok {
		return nil
	}
	return &event.ErrorInfo{Code: outcomeString(m, "code"), Message: outcomeString(m, "message")}
}

// outcomeDecode reads a stored list back into its contract type through JSON; a
// list that does not fit is left empty.
func outcomeDecode[T any](v any, into *[]T) {
	list, ok := v.([]any)
	if !ok || len(list) == 0 {
		return
	}
	b, err := json.Marshal(list)
	if err != nil {
		return
	}
	var out []T
	if json.Unmarshal(b, &out) == nil {
		*into = out
	}
}

// SortedParts returns d's part records in index order.
func (d Delivery) SortedParts() []PartRecord {
	out := make([]PartRecord, 0, len(d.Parts))
	for _, p := range d.Parts {
		out = append(out, p)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Index < out[j].Index })
	return out
}
