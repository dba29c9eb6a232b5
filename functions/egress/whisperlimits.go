package egress

import (
	"context"
	"fmt"
	"time"

	"github.com/bitbrat/twitch-edge/shared/fault"
	"github.com/bitbrat/twitch-edge/shared/store"
)

// Twitch's whisper send limits for one sender.
const (
	WhispersPerSecond = 3
	WhispersPerMinute = 100
)

// whisperArrivalMargin widens each window by the spread of the time a whisper takes
// from its reservation to its arrival at Twitch. Twitch counts arrivals; the budget
// counts reservations. Without the margin, three whispers reserved early in a second
// can arrive late, and a fourth reserved as the next second begins then arrives
// within 1 s of them: Twitch answers 429. The soak's two-instance burst saw 0.985 s.
const whisperArrivalMargin = 250 * time.Millisecond

// WhisperSecond is the per-second window as the budget keeps it: Twitch's second
// plus the arrival margin.
const WhisperSecond = time.Second + whisperArrivalMargin

// whisperWindows are those limits as sliding windows, each widened by the margin.
var whisperWindows = []store.Window{
	{Span: WhisperSecond, Max: WhispersPerSecond},
	{Span: time.Minute + whisperArrivalMargin, Max: WhispersPerMinute},
}

// SendBudgets holds send rate limits across instances (*store.SendBudgets): Twitch
// counts per sender, so a limit kept in one process would let two instances (a
// deploy overlap, a scale-out) together send twice the budget and collect 429s.
// The slot is taken together with the send's claim (Claims.ClaimSend).
type SendBudgets interface {
	Slot(key string, now time.Time, windows []store.Window) store.Slot
}

// claimSlot claims the whisper's send (key) together with a slot in the bot's
// per-second and per-minute whisper budgets (ClaimSend), waiting at most maxWait for
// one; beyond that it returns a RateLimited error with the time the next slot frees,
// so that Pub/Sub retries the message later instead of the handler holding it.
func (s *WhisperService) claimSlot(ctx context.Context, key, owner string) (store.Claim, error) {
	for try := 0; ; try++ {
		slot := s.budgets.Slot("whisper:"+s.botID, s.now(), whisperWindows)
		claim, at, err := s.claims.ClaimSend(ctx, key, owner, s.lease, &slot)
		if err != nil || at.IsZero() {
			return claim, err
		}
		wait := at.Sub(s.now())
		if wait > s.maxWait || try >= 2 {
			return store.Claim{}, &fault.Error{Kind: fault.RateLimited, Code: CodeLocalRateLimit, RetryAt: at,
				Message: fmt.Sprintf("whisper budget (%d/s, %d/min) spent until %s", WhispersPerSecond, WhispersPerMinute,
					at.UTC().Format(time.RFC3339Nano))}
		}
		s.log.InfoContext(ctx, s.name+": waiting for a whisper slot", "wait", wait.String())
		if err := s.sleep(ctx, wait); err != nil {
			return store.Claim{}, fault.Wrap(fault.Transient, CodeLocalRateLimit, err, "waiting for a whisper slot")
		}
	}
}
