package store

import (
	"context"
	"testing"
	"time"

	"github.com/bitbrat/twitch-edge/shared/emulators"
)

// The observer is told the tightest window's headroom after each reservation.
func TestSendBudgetsReportWhatIsLeft(t *testing.T) {
	ctx := context.Background()
	c, err := NewClient(ctx, emulators.ProjectID(t), "", WithEmulator(emulators.Host(emulators.Firestore)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	var got []int
	b := NewSendBudgets(c).Observed(func(_ context.Context, key string, left int) {
		if key != "whisper:900" {
			t.Errorf("key %q", key)
		}
		got = append(got, left)
	})
	windows := []Window{{time.Second, 3}, {time.Minute, 100}}
	now := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)
	for i := range 4 {
		ok, _, err := reserveAt(ctx, b, "whisper:900", now.Add(time.Duration(i)*time.Millisecond), windows)
		if err != nil {
			t.Fatal(err)
		}
		if ok != (i < 3) {
			t.Errorf("reservation %d: ok %v", i, ok)
		}
	}
	want := []int{2, 1, 0, 0} // the per-second window is the tight one; a refusal leaves 0
	if len(got) != len(want) {
		t.Fatalf("observed %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("observed %v, want %v", got, want)
		}
	}
}
