package eventsub

import (
	"fmt"
	"testing"
	"time"
)

func TestWindow(t *testing.T) {
	t0 := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)
	w := NewWindow(3)
	steps := []struct {
		id   string
		ts   time.Time
		now  time.Time
		want Verdict
	}{
		{"a", t0, t0, Fresh},
		{"a", t0, t0.Add(time.Second), Duplicate},
		{"b", t0.Add(-11 * time.Minute), t0, Stale},
		{"b", t0, t0, Fresh},
		{"c", t0, t0, Fresh},
		{"d", t0, t0, Fresh},                                // capacity 3: "a" is evicted
		{"a", t0, t0.Add(2 * time.Second), Fresh},           // so it is fresh again
		{"c", t0, t0.Add(11 * time.Minute), Stale},          // its timestamp is too old now
		{"e", time.Time{}, t0.Add(11 * time.Minute), Fresh}, // everything older expired
	}
	for i, s := range steps {
		if got := w.Check(s.id, s.ts, s.now); got != s.want {
			t.Fatalf("step %d (%s): %v, want %v", i, s.id, got, s.want)
		}
	}
	if w.Len() != 1 {
		t.Errorf("len = %d after expiry, want 1", w.Len())
	}
	r := NewWindow(10)
	r.Remember("x", t0)
	if r.Check("x", t0, t0.Add(time.Minute)) != Duplicate {
		t.Error("remembered id not a duplicate")
	}
}

func BenchmarkWindowCheck(b *testing.B) {
	ids := make([]string, 1<<12)
	for i := range ids {
		ids[i] = fmt.Sprintf("%08d-d79d-478f-86b9-120f112b044e", i)
	}
	w := NewWindow(len(ids) - 1)
	now := time.Now()
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		w.Check(ids[i%len(ids)], now, now)
	}
}
