package store

import (
	"context"
	"errors"
	"reflect"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bitbrat/twitch-edge/shared/event"
	"github.com/bitbrat/twitch-edge/shared/fault"
)

func eventsOutcome() *Outcome {
	conf := 0.5
	return &Outcome{
		FinalizedAt: "2026-11-21T12:00:02.000Z",
		ExpireAt:    time.Date(2026, 11, 28, 12, 0, 2, 0, time.UTC),
		Delivery: Delivery{
			Destination:       "internal.egress.v1",
			Status:            event.StatusSent,
			DeliveredAt:       "2026-11-21T12:00:02.000Z",
			ProviderMessageID: "msg-1",
			Parts: map[int]PartRecord{
				0: {Index: 0, Status: event.StatusSent, DeliveredAt: "2026-11-21T12:00:02.000Z", ProviderMessageID: "msg-1"},
				1: {Index: 1, Status: event.StatusFailed, DeliveredAt: "2026-11-21T12:00:02.000Z", Error: &event.ErrorInfo{Code: "TWITCH_BAD_REQUEST", Message: "too long"}},
			},
			Summary: &PartsSummary{Total: 2, Sent: 1, Failed: 1, Status: "PARTIAL"},
		},
		Annotations: []event.AnnotationV1{{ID: "a-1", Kind: "intent", Source: "router", CreatedAt: "2026-11-21T12:00:00.010Z", Score: &conf}},
		Candidates: []event.CandidateV1{{ID: "c-1", Kind: "text", Source: "llm", CreatedAt: "2026-11-21T12:00:01.000Z",
			Status: "selected", Priority: 1, Confidence: &conf, Text: "Hi!", Metadata: []byte(`{"b":1,"a":[true,null,"x"]}`)}},
	}
}

func TestEventsApplyOutcomeWritesDocumentAndKeepsTheRest(t *testing.T) {
	ctx := context.Background()
	fs := newFirestore(t)
	clk := &clock{t: time.Date(2026, 11, 21, 12, 0, 3, 0, time.UTC)}
	events := NewEvents(fs, clk.Now)
	ref := fs.Collection(CollectionEvents).Doc("corr-1")
	// What upstream's persistence writes at ingress.
	if _, err := ref.Set(ctx, map[string]any{"status": "INGESTED", "type": "twitch.eventsub.v1", "ingestedAt": "2026-11-21T12:00:00.000Z"}); err != nil {
		t.Fatal(err)
	}

	var sawCurrent *Outcome
	stored, wrote, err := events.ApplyOutcome(ctx, "corr-1", func(cur *Outcome) (*Outcome, error) {
		sawCurrent = cur
		return eventsOutcome(), nil
	})
	if err != nil || !wrote {
		t.Fatalf("ApplyOutcome: wrote=%v err=%v", wrote, err)
	}
	if sawCurrent != nil {
		t.Errorf("decide saw %+v on an ingested-only document, want nil", sawCurrent)
	}
	if stored.UpdateCount != 1 || !stored.UpdatedAt.Equal(clk.Now()) || stored.CorrelationID != "corr-1" {
		t.Errorf("bookkeeping = %d %v %q", stored.UpdateCount, stored.UpdatedAt, stored.CorrelationID)
	}

	snap, err := ref.Get(ctx)
	if err != nil {
		t.Fatal(err)
	}
	got := snap.Data()
	want := map[string]any{
		"type":          "twitch.eventsub.v1",
		"ingestedAt":    "2026-11-21T12:00:00.000Z",
		"correlationId": "corr-1",
		"status":        "FINALIZED",
		"finalizedAt":   "2026-11-21T12:00:02.000Z",
		"delivery": map[string]any{
			"destination":       "internal.egress.v1",
			"status":            "SENT",
			"deliveredAt":       "2026-11-21T12:00:02.000Z",
			"providerMessageId": "msg-1",
			"error":             nil,
			"parts": map[string]any{
				"0": map[string]any{"index": int64(0), "status": "SENT", "deliveredAt": "2026-11-21T12:00:02.000Z", "providerMessageId": "msg-1", "error": nil},
				"1": map[string]any{"index": int64(1), "status": "FAILED", "deliveredAt": "2026-11-21T12:00:02.000Z",
					"error": map[string]any{"code": "TWITCH_BAD_REQUEST", "message": "too long"}},
			},
			"summary": map[string]any{"total": int64(2), "sent": int64(1), "failed": int64(1), "status": "PARTIAL"},
		},
		"currentProjection": map[string]any{
			"annotations": []any{map[string]any{"id": "a-1", "kind": "intent", "source": "router", "createdAt": "2026-11-21T12:00:00.010Z", "score": 0.5}},
			"candidates": []any{map[string]any{"id": "c-1", "kind": "text", "source": "llm", "createdAt": "2026-11-21T12:00:01.000Z",
				"status": "selected", "priority": int64(1), "confidence": 0.5, "text": "Hi!",
				"metadata": map[string]any{"b": int64(1), "a": []any{true, nil, "x"}}}},
		},
		"updateCount": int64(1),
	}
	for _, k := range []string{"expireAt", "updatedAt"} {
		ts, ok := got[k].(time.Time)
		if !ok {
			t.Errorf("%s = %T %v, want a timestamp", k, got[k], got[k])
		}
		delete(got, k)
		switch k {
		case "expireAt":
			if !ts.Equal(eventsOutcome().ExpireAt) {
				t.Errorf("expireAt = %v, want %v", ts, eventsOutcome().ExpireAt)
			}
		case "updatedAt":
			if !ts.Equal(clk.Now()) {
				t.Errorf("updatedAt = %v, want %v", ts, clk.Now())
			}
		}
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("document:\n got %#v\nwant %#v", got, want)
	}

	// Read back: the same outcome.
	back, ok, err := events.GetOutcome(ctx, "corr-1")
	if err != nil || !ok {
		t.Fatalf("GetOutcome: ok=%v err=%v", ok, err)
	}
	w := eventsOutcome()
	w.CorrelationID, w.UpdateCount, w.UpdatedAt = "corr-1", 1, clk.Now()
	w.Candidates[0].Metadata = []byte(`{"a":[true,null,"x"],"b":1}`) // Firestore maps come back in key order
	if !reflect.DeepEqual(back, *w) {
		t.Errorf("GetOutcome:\n got %+v\nwant %+v", back, *w)
	}
}

func TestEventsApplyOutcomeReplacesDeliveryWhole(t *testing.T) {
	ctx := context.Background()
	events := NewEvents(newFirestore(t), nil)
	if _, _, err := events.ApplyOutcome(ctx, "c", func(*Outcome) (*Outcome, error) { return eventsOutcome(), nil }); err != nil {
		t.Fatal(err)
	}
	second := &Outcome{
		FinalizedAt: "2026-11-21T12:00:05.000Z",
		ExpireAt:    time.Date(2026, 11, 28, 12, 0, 5, 0, time.UTC),
		Delivery:    Delivery{Destination: "d", Status: event.StatusFailed, DeliveredAt: "2026-11-21T12:00:05.000Z", Error: &event.ErrorInfo{Code: "X"}},
	}
	var seen *Outcome
	stored, wrote, err := events.ApplyOutcome(ctx, "c", func(cur *Outcome) (*Outcome, error) { seen = cur; return second, nil })
	if err != nil || !wrote {
		t.Fatalf("wrote=%v err=%v", wrote, err)
	}
	if seen == nil || seen.Delivery.ProviderMessageID != "msg-1" || seen.UpdateCount != 1 {
		t.Errorf("decide saw %+v, want the first outcome", seen)
	}
	if stored.UpdateCount != 2 {
		t.Errorf("updateCount = %d, want 2", stored.UpdateCount)
	}
	got, _, err := events.GetOutcome(ctx, "c")
	if err != nil {
		t.Fatal(err)
	}
	// No providerMessageId, parts, summary or projection left over from the first write.
	if got.Delivery.ProviderMessageID != "" || got.Delivery.Parts != nil || got.Delivery.Summary != nil ||
		got.Annotations != nil || got.Candidates != nil || got.Delivery.Error == nil || got.Delivery.Error.Code != "X" {
		t.Errorf("after replace: %+v", got)
	}
}

func TestEventsApplyOutcomeNilMeansNoWrite(t *testing.T) {
	ctx := context.Background()
	events := NewEvents(newFirestore(t), nil)
	if _, wrote, err := events.ApplyOutcome(ctx, "c", func(*Outcome) (*Outcome, error) { return nil, nil }); err != nil || wrote {
		t.Fatalf("wrote=%v err=%v", wrote, err)
	}
	if _, ok, err := events.GetOutcome(ctx, "c"); err != nil || ok {
		t.Fatalf("a decline created a record: ok=%v err=%v", ok, err)
	}
	if _, _, err := events.ApplyOutcome(ctx, "c", func(*Outcome) (*Outcome, error) { return eventsOutcome(), nil }); err != nil {
		t.Fatal(err)
	}
	stored, wrote, err := events.ApplyOutcome(ctx, "c", func(*Outcome) (*Outcome, error) { return nil, nil })
	if err != nil || wrote || stored.UpdateCount != 1 || stored.Delivery.ProviderMessageID != "msg-1" {
		t.Fatalf("wrote=%v err=%v stored=%+v", wrote, err, stored)
	}
}

func TestEventsApplyOutcomeDecideErrorPassesThrough(t *testing.T) {
	want := fault.New(fault.Invalid, "NOPE", "no")
	_, _, err := NewEvents(newFirestore(t), nil).ApplyOutcome(context.Background(), "c", func(*Outcome) (*Outcome, error) { return nil, want })
	if !errors.Is(err, want) {
		t.Fatalf("err = %v, want %v", err, want)
	}
}

func TestEventsConcurrentApplyWritesOnce(t *testing.T) {
	ctx := context.Background()
	events := NewEvents(newFirestore(t), nil)
	const workers = 8
	var writes atomic.Int32
	var wg sync.WaitGroup
	for i := 0; i < workers; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, wrote, err := events.ApplyOutcome(ctx, "same", func(cur *Outcome) (*Outcome, error) {
				if cur != nil {
					return nil, nil
				}
				return eventsOutcome(), nil
			})
			if err != nil {
				t.Errorf("ApplyOutcome: %v", err)
			}
			if wrote {
				writes.Add(1)
			}
		}()
	}
	wg.Wait()
	got, _, err := events.GetOutcome(ctx, "same")
	if err != nil {
		t.Fatal(err)
	}
	if writes.Load() != 1 || got.UpdateCount != 1 {
		t.Fatalf("writes=%d updateCount=%d, want exactly one write", writes.Load(), got.UpdateCount)
	}
}

func TestEventsDocIDOfUnsafeCorrelationID(t *testing.T) {
	ctx := context.Background()
	events := NewEvents(newFirestore(t), nil)
	if _, _, err := events.ApplyOutcome(ctx, "a/b", func(*Outcome) (*Outcome, error) { return eventsOutcome(), nil }); err != nil {
		t.Fatal(err)
	}
	got, ok, err := events.GetOutcome(ctx, "a/b")
	if err != nil || !ok || got.CorrelationID != "a/b" {
		t.Fatalf("ok=%v err=%v id=%q", ok, err, got.CorrelationID)
	}
}

func TestEventsFirestoreUnavailableIsTransient(t *testing.T) {
	fs := newFirestoreOn(t, "127.0.0.1:1") // nothing listens there
	ctx, cancel := context.WithTimeout(context.Background(), 1500*time.Millisecond)
	defer cancel()
	_, _, err := NewEvents(fs, nil).ApplyOutcome(ctx, "c", func(*Outcome) (*Outcome, error) { return eventsOutcome(), nil })
	if fault.KindOf(err) != fault.Transient {
		t.Fatalf("err = %v (kind %v), want transient", err, fault.KindOf(err))
	}
}
