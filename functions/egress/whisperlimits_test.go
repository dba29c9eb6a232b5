package egress

import (
	"context"
	"testing"
	"time"

	"github.com/bitbrat/twitch-edge/shared/store"
)

// Twitch counts whispers when they arrive; the budget knows when they were reserved
// and when their answers came. Three reserved at t0 hold Twitch's second while they
// are on the way; answered at t0+0.6 s, they may have arrived as late as that, so a
// fourth is not granted before t0+1.6 s (the soak's two-instance burst got 429 when
// the budget counted reservations only).
func TestWhisperBudgetCountsArrivalsByTheAnswer(t *testing.T) {
	f := newFixture(t)
	b := store.NewSendBudgets(f.fs)
	ctx := context.Background()
	budget := f.whisper.whisperBudget()
	budget.Key += ":arrivals"
	t0 := f.clock.Now()
	at := func(d time.Duration) func() time.Time { return func() time.Time { return t0.Add(d) } }
	var slots []time.Time
	for i := range WhispersPerSecond {
		slot, ok, _, err := b.Reserve(ctx, budget, at(0))
		if err != nil || !ok {
			t.Fatalf("slot %d at t0: ok=%v err=%v", i, ok, err)
		}
		slots = append(slots, slot)
	}
	if _, ok, _, err := b.Reserve(ctx, budget, at(time.Second)); err != nil || ok {
		t.Fatalf("a 4th whisper while three are on the way: ok=%v err=%v, want refused", ok, err)
	}
	for _, s := range slots {
		if err := b.Settle(ctx, budget.Key, s, t0.Add(600*time.Millisecond)); err != nil {
			t.Fatal(err)
		}
	}
	_, ok, retryAt, err := b.Reserve(ctx, budget, at(time.Second))
	if err != nil || ok {
		t.Fatalf("a 4th whisper 0.4 s after three answered: ok=%v err=%v, want refused", ok, err)
	}
	if want := t0.Add(1600 * time.Millisecond); !retryAt.Equal(want) {
		t.Errorf("retry at t0+%s, want t0+1.6s", retryAt.Sub(t0))
	}
	if _, ok, _, err := b.Reserve(ctx, budget, at(1600*time.Millisecond)); err != nil || !ok {
		t.Fatalf("the slot a second after the answers: ok=%v err=%v", ok, err)
	}
}
