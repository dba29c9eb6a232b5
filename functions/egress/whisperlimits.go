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

// Twitch counts a whisper when it arrives; the shared budget knows when it was
// reserved and, once settled, when its answer came back (store.Budget). Every whisper
// is settled: whispers are few (at most 40 new recipients a day), so the extra write
// is cheap, and a send can take longer than the one-second window, so an unsettled
// one must hold the window until its answer. The soak's two-instance burst on a
// loaded machine drew 429s with a reservation-only budget, even with the windows
// widened by a 250 ms margin: arrivals there lagged reservations by more.

// whisperArrivalMargin is how late a whisper that was never settled (its instance
// died, or the settle write failed) is taken to have arrived after its reservation.
const whisperArrivalMargin = 250 * time.Millisecond

// WhisperSecond is the longest one whisper whose answer comes at once can hold the
// per-second window after its reservation: Twitch's second plus the margin (what an
// unsettled whisper holds). Tests pace by it.
const WhisperSecond = time.Second + whisperArrivalMargin

// inFlightSlack is added to the Helix timeout for how long a send can be on its way.
const inFlightSlack = time.Second

// whisperWindows are Twitch's whisper limits as sliding windows.
var whisperWindows = []store.Window{
	{Span: time.Second, Max: WhispersPerSecond},
	{Span: time.Minute, Max: WhispersPerMinute},
}

// SendBudgets holds send rate limits across instances (*store.SendBudgets): Twitch
// counts per sender, so a limit kept in one process would let two instances (a
// deploy overlap, a scale-out) together send twice the budget and collect 429s.
// The slot is taken together with the send's claim (Claims.ClaimSend); Settle
// records when the send's answer came.
type SendBudgets interface {
	Slot(b store.Budget, clock func() time.Time) store.Slot
	Settle(ctx context.Context, key string, at, by time.Time) error
}

// whisperBudget is the bot's whisper budget.
func (s *WhisperService) whisperBudget() store.Budget {
	return store.Budget{Key: "whisper:" + s.botID, Windows: whisperWindows, Margin: whisperArrivalMargin,
		InFlight: s.helixTimeout + inFlightSlack}
}

// settleSlot records that the whisper of claim had its answer now (or gave up): from
// then the budget counts it at that time instead of holding the windows for it. A
// failed write is logged; the budget then counts the whisper at its reservation plus
// the margin once it is older than the in-flight bound.
func (s *WhisperService) settleSlot(ctx context.Context, claim store.Claim) {
	if claim.SlotAt.IsZero() {
		return
	}
	if err := s.budgets.Settle(ctx, s.whisperBudget().Key, claim.SlotAt, s.now()); err != nil {
		s.log.WarnContext(ctx, s.name+": could not settle the whisper's budget slot", "error", err.Error())
	}
}

// claimSlot claims the whisper's send (key) together with a slot in the bot's
// per-second and per-minute whisper budgets (ClaimSend), waiting at most maxWait for
// one; beyond that it returns a RateLimited error with the time the next slot frees,
// so that Pub/Sub retries the message later instead of the handler holding it.
func (s *WhisperService) claimSlot(ctx context.Context, key, owner string) (store.Claim, error) {
	for try := 0; ; try++ {
		slot := s.budgets.Slot(s.whisperBudget(), s.now)
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
