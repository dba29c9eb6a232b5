package egress

import (
	"context"
	"testing"
	"time"

	"github.com/bitbrat/twitch-edge/shared/store"
)

// Twitch counts whispers when they arrive; the budget counts them when they are
// reserved. Three reserved at t and arriving late (a slow Helix round trip) are still
// inside Twitch's second when a fourth, reserved at t+1s, arrives at once: the budget
// must not grant that fourth slot yet (the soak's two-instance burst got 429 for it),
// and grants it once the widened second has passed.
func TestWhisperBudgetLeavesRoomForLateArrivals(t *testing.T) {
	f := newFixture(t)
	b := store.NewSendBudgets(f.fs)
	ctx := context.Background()
	key := "whisper:" + botID + ":arrivals"
	t0 := f.clock.Now()
	for i := range WhispersPerSecond {
		if ok, _, err := b.Reserve(ctx, key, t0, whisperWindows); err != nil || !ok {
			t.Fatalf("slot %d at t0: ok=%v err=%v", i, ok, err)
		}
	}
	ok, retryAt, err := b.Reserve(ctx, key, t0.Add(time.Second), whisperWindows)
	if err != nil {
		t.Fatal(err)
	}
	if ok {
		t.Fatalf("a 4th whisper reserved 1 s after three others was granted: it can reach Twitch within 1 s of them")
	}
	if !retryAt.Equal(t0.Add(WhisperSecond)) {
		t.Errorf("retry at t0+%s, want t0+%s", retryAt.Sub(t0), WhisperSecond)
	}
	if ok, _, err := b.Reserve(ctx, key, t0.Add(WhisperSecond), whisperWindows); err != nil || !ok {
		t.Fatalf("the slot after the widened second: ok=%v err=%v", ok, err)
	}
}
