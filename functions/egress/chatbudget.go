package egress

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/bitbrat/twitch-edge/shared/fault"
	"github.com/bitbrat/twitch-edge/shared/store"
	"github.com/bitbrat/twitch-edge/shared/twitch"
)

// Twitch's chat rate limit for one sender in one channel: 20 messages per 30 seconds,
// 100 where the sender is the broadcaster or a moderator. Beyond it Twitch drops the
// message (is_sent:false) or holds the account back, so the budget is kept here, in
// Firestore (store.SendBudgets), shared by every instance.
const (
	ChatWindow             = 30 * time.Second
	ChatPerWindow          = 20
	ChatPerWindowModerator = 100
	// CodeChatRateLimit: the channel's chat budget is spent for longer than the
	// handler may wait; the message is retried later (never a FAILED outcome).
	CodeChatRateLimit = "CHAT_LOCAL_RATE_LIMIT"
	// DefaultChatMaxWait is the longest a send waits for the channel's budget inside
	// the handler (one window and its arrival margin); a longer wait is left to
	// Pub/Sub's retry.
	DefaultChatMaxWait = ChatWindow + chatArrivalMargin
	// DefaultTierTTL is how long the bot's moderator channels are cached.
	DefaultTierTTL = 10 * time.Minute
)

// commandEscape is put before chat text that starts with "/" or ".": Twitch reads
// such text as a chat command (/ban, .timeout, /me ...), and a bot must never run a
// command because a reply happened to begin that way. U+200B ZERO WIDTH SPACE is
// invisible, is not trimmed by Twitch, and makes the first character an ordinary one.
const commandEscape = "\u200b"

// EscapeCommand returns part with commandEscape before it when it would be read as a
// chat command.
func EscapeCommand(part string) string {
	if strings.HasPrefix(part, "/") || strings.HasPrefix(part, ".") {
		return commandEscape + part
	}
	return part
}

// chatParts splits text into chat messages and escapes the ones that would be read as
// commands; when an escape would push a full part over the limit, the text is split
// one character shorter.
func chatParts(text string, maxParts int) (parts []string, truncated bool) {
	for _, limit := range []int{ChatMaxChars, ChatMaxChars - len([]rune(commandEscape))} {
		parts, truncated = SplitText(text, limit, maxParts)
		fits := true
		for i, p := range parts {
			parts[i] = EscapeCommand(p)
			fits = fits && CharCount(parts[i]) <= ChatMaxChars
		}
		if fits {
			break
		}
	}
	return parts, truncated
}

// tiers caches the channels in which the bot moderates, from Helix Get Moderated
// Channels.
type tiers struct {
	mu   sync.Mutex
	at   time.Time
	mods map[string]bool
}

// chatLimit is the bot's message budget per ChatWindow in broadcasterID's channel.
// When Twitch cannot say (the token lacks user:read:moderated_channels, Twitch is
// down) the lower tier is used: waiting a little is safe, exceeding is not.
func (s *ChatService) chatLimit(ctx context.Context, broadcasterID string) int {
	if broadcasterID == s.botID {
		return ChatPerWindowModerator
	}
	s.tiers.mu.Lock()
	defer s.tiers.mu.Unlock()
	if s.tiers.mods == nil || s.now().Sub(s.tiers.at) >= s.tierTTL {
		hctx, cancel := s.helixCtx(ctx)
		chans, err := s.helix.GetModeratedChannels(hctx, s.botID)
		cancel()
		mods := map[string]bool{}
		if err != nil {
			s.log.WarnContext(ctx, s.name+": cannot tell where the bot moderates; using the 20-message chat budget",
				"code", fault.CodeOf(err, "UNKNOWN"), "error", err.Error(), "scope", twitch.ScopeReadModeratedChannels)
		}
		for _, c := range chans {
			mods[c.BroadcasterID] = true
		}
		s.tiers.mods, s.tiers.at = mods, s.now()
	}
	if s.tiers.mods[broadcasterID] {
		return ChatPerWindowModerator
	}
	return ChatPerWindow
}

// chatArrivalMargin is how late after its reservation a chat message that was not
// settled is taken to have reached Twitch. A message slower than this is settled (its
// answer's time recorded in the budget); a faster one is not, which saves a write per
// message on the happy path. The 30-second window is far longer than a send can take
// (the Helix timeout), so a slow message is settled long before the window's edge
// reaches it. Without this, the soak's two-instance burst on a loaded machine put 5
// to 13 messages past Twitch's 100 per 30 s.
const chatArrivalMargin = time.Second

// chatBudget is the bot's budget in one channel, at limit messages per window.
func (s *ChatService) chatBudget(broadcasterID string, limit int) store.Budget {
	return store.Budget{Key: "chat:" + s.botID + ":" + broadcasterID, Windows: []store.Window{{Span: ChatWindow, Max: limit}},
		Margin: chatArrivalMargin, InFlight: s.helixTimeout + inFlightSlack}
}

// settleChatSlot records a slow message's answer time in the channel's budget (see
// chatArrivalMargin). A failed write is logged: the message then counts at its
// reservation plus the margin.
func (s *ChatService) settleChatSlot(ctx context.Context, broadcasterID string, claim store.Claim) {
	if claim.SlotAt.IsZero() || s.now().Sub(claim.SlotAt) <= chatArrivalMargin {
		return
	}
	key := s.chatBudget(broadcasterID, 0).Key
	if err := s.budgets.Settle(ctx, key, claim.SlotAt, s.now()); err != nil {
		s.log.WarnContext(ctx, s.name+": could not settle a slow message's budget slot", "error", err.Error())
	}
}

// claimChatSlot claims the part's send (key) together with one message of the
// channel's budget (ClaimSend). A full budget is waited out when the wait fits in
// maxWait and in the handler's deadline (leaving time for the send); otherwise it is
// a RateLimited error naming when a slot frees, which the trigger turns into a
// Pub/Sub retry. It is never a failure.
func (s *ChatService) claimChatSlot(ctx context.Context, key, owner, broadcasterID string) (store.Claim, error) {
	limit := s.chatLimit(ctx, broadcasterID)
	budget := s.chatBudget(broadcasterID, limit)
	for try := 0; ; try++ {
		slot := s.budgets.Slot(budget, s.now)
		claim, at, err := s.claims.ClaimSend(ctx, key, owner, s.lease, &slot)
		if err != nil || at.IsZero() {
			return claim, err
		}
		wait := at.Sub(s.now())
		fitsDeadline := true
		if dl, has := ctx.Deadline(); has && time.Until(dl) < wait+s.helixTimeout {
			fitsDeadline = false
		}
		if wait > s.chatMaxWait || !fitsDeadline || try >= 3 {
			return store.Claim{}, &fault.Error{Kind: fault.RateLimited, Code: CodeChatRateLimit, RetryAt: at,
				Message: fmt.Sprintf("chat budget for channel %s (%d per %s) spent until %s", broadcasterID, limit, ChatWindow,
					at.UTC().Format(time.RFC3339Nano))}
		}
		s.log.InfoContext(ctx, s.name+": waiting for the channel's chat budget", "broadcasterId", broadcasterID,
			"limit", limit, "wait", wait.String())
		if err := s.sleep(ctx, wait); err != nil {
			return store.Claim{}, fault.Wrap(fault.Transient, CodeChatRateLimit, err, "waiting for the chat budget")
		}
	}
}
