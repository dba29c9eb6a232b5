package store

import (
	"context"
	"testing"
	"time"

	"github.com/bitbrat/twitch-edge/shared/emulators"
)

// Twitch counts a send when it arrives, which can be well after its reservation on a
// slow network or a loaded machine. A send still in flight holds every window, and a
// settled one counts at the time its answer came: two instances then stay inside
// Twitch's limit however late their sends arrive.
func TestSendBudgetsCountSendsByArrival(t *testing.T) {
	ctx := context.Background()
	c, err := NewClient(ctx, emulators.ProjectID(t), "", WithEmulator(emulators.Host(emulators.Firestore)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	b := NewSendBudgets(c)
	// Nanoseconds that Firestore does not keep: Settle must name the slot anyway.
	t0 := time.Date(2026, 11, 22, 10, 0, 0, 123_456_789, time.UTC)
	at := func(d time.Duration) func() time.Time { return func() time.Time { return t0.Add(d) } }
	take := func(bud Budget, d time.Duration) (time.Time, bool, time.Time) {
		t.Helper()
		s, ok, retry, err := b.Reserve(ctx, bud, at(d))
		if err != nil {
			t.Fatal(err)
		}
		return s, ok, retry
	}
	second := Budget{Key: "whisper:lag", Windows: []Window{{time.Second, 1}}, Margin: 250 * time.Millisecond, InFlight: 10 * time.Second}

	slotAt, ok, _ := take(second, 0)
	if !ok {
		t.Fatal("the first send was refused")
	}
	// 1.2 s later its answer has not come: it may not have arrived yet.
	if _, ok, retry := take(second, 1200*time.Millisecond); ok || !retry.Equal(t0.Add(2200*time.Millisecond).Truncate(time.Microsecond)) {
		t.Fatalf("a send while the first is in flight: ok=%t retry=%v, want refused until its span from now", ok, retry)
	}
	// Its answer came 0.8 s after it was reserved: it arrived by then.
	if err := b.Settle(ctx, second.Key, slotAt, t0.Add(800*time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	if _, ok, retry := take(second, 1200*time.Millisecond); ok || !retry.Equal(t0.Add(1800*time.Millisecond).Truncate(time.Microsecond)) {
		t.Fatalf("1.2 s after a send that arrived as late as 0.8 s: ok=%t retry=%v, want refused until 1.8 s", ok, retry)
	}
	if _, ok, _ := take(second, 1800*time.Millisecond); !ok {
		t.Fatal("refused a second after the first send's answer")
	}

	// A send never settled (fast, or its instance died) counts at its reservation
	// plus the margin once it is older than InFlight.
	chat := Budget{Key: "chat:lag", Windows: []Window{{30 * time.Second, 1}}, Margin: time.Second, InFlight: 5 * time.Second}
	take(chat, 0)
	if _, ok, retry := take(chat, 30*time.Second); ok || !retry.Equal(t0.Add(31*time.Second).Truncate(time.Microsecond)) {
		t.Fatalf("30 s after an unsettled send: ok=%t retry=%v, want refused until 31 s", ok, retry)
	}
	if _, ok, _ := take(chat, 31*time.Second); !ok {
		t.Fatal("refused past the window and the margin")
	}
}
