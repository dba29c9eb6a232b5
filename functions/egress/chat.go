package egress

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"strings"
	"time"

	"github.com/bitbrat/twitch-edge/functions/trigger"
	"github.com/bitbrat/twitch-edge/shared/event"
	"github.com/bitbrat/twitch-edge/shared/fault"
	"github.com/bitbrat/twitch-edge/shared/logging"
	"github.com/bitbrat/twitch-edge/shared/twitch"
)

// ChatAPI is what EgressChat needs from Helix (*twitch.Client satisfies it).
type ChatAPI interface {
	SendChatMessage(ctx context.Context, broadcasterID, senderID, message, replyParentID string) (*twitch.ChatMessageResult, error)
	GetUsers(ctx context.Context, logins, ids []string) ([]twitch.User, error)
	GetModeratedChannels(ctx context.Context, userID string) ([]twitch.ModeratedChannel, error)
}

// ChatConfig are the chat service's dependencies and settings.
type ChatConfig struct {
	// Helix sends chat messages and resolves channel logins. Required.
	Helix ChatAPI
	// Pub publishes finalize messages and hands dm events to Topics.Whisper. Required.
	Pub Publisher
	// Claims records each part's delivery (collection deliveries). Required.
	Claims Claims
	// Topics: Finalize and Whisper are required.
	Topics Topics
	// BotUserID is the sender, the bot's Twitch user id (the chat token's user).
	// Required, digits.
	BotUserID string
	// Owner names this instance in claims (each attempt adds a unique suffix).
	// Default "egress".
	Owner string
	// Lease is how long a claim blocks other deliveries of the same part; a crashed
	// instance's claim is taken over after it. Default DefaultLease.
	Lease time.Duration
	// MaxAge: an event published longer ago than this, or past its timeoutAt, is not
	// delivered late: FAILED (EXPIRED) and dead-lettered. Default DefaultMaxAge.
	MaxAge time.Duration
	// MaxParts bounds how many chat messages one event becomes; text beyond them is
	// truncated (and the finalize says so). Default DefaultMaxParts.
	MaxParts int
	// HelixTimeout bounds each Helix call. Default DefaultHelixTimeout.
	HelixTimeout time.Duration
	// Budgets holds each channel's chat budget across instances
	// (*store.SendBudgets). Required.
	Budgets SendBudgets
	// MaxWait is the longest a send waits for its channel's budget; beyond it the
	// message is retried later. Default DefaultChatMaxWait.
	MaxWait time.Duration
	// TierTTL is how long the channels the bot moderates are cached. Default
	// DefaultTierTTL.
	TierTTL time.Duration
	// Sleep waits for d or until ctx ends. Default: a timer.
	Sleep func(ctx context.Context, d time.Duration) error
	// Channels is the allowlist: channel logins or broadcaster ids the bot may post
	// in. Empty allows every channel (only when nothing is configured).
	Channels []string
	// Now is the clock. Default time.Now.
	Now func() time.Time
	// Log receives one line per outcome. Default: discard.
	Log *slog.Logger
}

// ChatService is the EgressChat function's logic.
type ChatService struct {
	core
	helix       ChatAPI
	maxParts    int
	budgets     SendBudgets
	chatMaxWait time.Duration
	tierTTL     time.Duration
	sleep       func(ctx context.Context, d time.Duration) error
	tiers       tiers
	channels    channelSet
}

// NewChatService checks cfg and returns the service.
func NewChatService(cfg ChatConfig) (*ChatService, error) {
	c, err := newCore("egress.chat", "chat", cfg.Pub, cfg.Claims, cfg.Topics, cfg.BotUserID, cfg.Owner, cfg.Lease, cfg.MaxAge, cfg.Now, cfg.Log)
	if err != nil {
		return nil, err
	}
	c.helixTimeout = cmp.Or(cfg.HelixTimeout, DefaultHelixTimeout)
	var problems []error
	if cfg.Helix == nil {
		problems = append(problems, errors.New("cfg.Helix is required"))
	}
	if cfg.Topics.Whisper == "" {
		problems = append(problems, errors.New("cfg.Topics.Whisper is required"))
	}
	if cfg.Budgets == nil {
		problems = append(problems, errors.New("cfg.Budgets is required"))
	}
	if err := errors.Join(problems...); err != nil {
		return nil, fmt.Errorf("egress chat: %w", err)
	}
	if cfg.MaxParts <= 0 {
		cfg.MaxParts = DefaultMaxParts
	}
	if cfg.Sleep == nil {
		cfg.Sleep = sleep
	}
	return &ChatService{core: c, helix: cfg.Helix, maxParts: cfg.MaxParts, budgets: cfg.Budgets,
		chatMaxWait: cmp.Or(cfg.MaxWait, DefaultChatMaxWait), tierTTL: cmp.Or(cfg.TierTTL, DefaultTierTTL),
		sleep: cfg.Sleep, channels: newChannelSet(cfg.Channels)}, nil
}

func newCore(name, keyspace string, pub Publisher, claims Claims, topics Topics, botID, owner string,
	lease, maxAge time.Duration, now func() time.Time, log *slog.Logger) (core, error) {
	var problems []error
	if pub == nil {
		problems = append(problems, errors.New("cfg.Pub is required"))
	}
	if claims == nil {
		problems = append(problems, errors.New("cfg.Claims is required"))
	}
	if topics.Finalize == "" {
		problems = append(problems, errors.New("cfg.Topics.Finalize is required"))
	}
	if !twitch.IsUserID(botID) {
		problems = append(problems, fmt.Errorf("BotUserID %q is not a Twitch user id", botID))
	}
	if err := errors.Join(problems...); err != nil {
		return core{}, fmt.Errorf("%s: %w", name, err)
	}
	if owner == "" {
		owner = "egress"
	}
	if lease <= 0 {
		lease = DefaultLease
	}
	if maxAge <= 0 {
		maxAge = DefaultMaxAge
	}
	if now == nil {
		now = time.Now
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return core{name: name, keyspace: keyspace, pub: pub, claims: claims, topics: topics, botID: botID,
		owner: owner, lease: lease, maxAge: maxAge, now: now, log: log}, nil
}

// Handle delivers one egress event: a dm event is handed to the whisper topic, any
// other is sent to its channel's chat, one Helix call per part.
//
// It returns nil once the outcome is reported (SENT or FAILED), a retryable error
// when a retry can succeed (Twitch 429 or 5xx, Firestore or Pub/Sub unavailable,
// another delivery in progress), and a non-retryable one — which the trigger
// dead-letters — for input that can never be delivered and for credentials Twitch
// refuses.
func (s *ChatService) Handle(ctx context.Context, m trigger.Message) error {
	env, err := s.decode(ctx, m, firstNonEmpty(m.Topic, s.topics.Egress))
	if err != nil || env == nil { // nil, nil: a duplicate of an event already reported
		return err
	}
	ctx = logging.WithCorrelationID(ctx, env.cid)
	if env.e.Egress.Type == event.EgressDM {
		return s.handOff(ctx, m, env)
	}
	login, ok := channelLogin(env.e.Channel)
	if !ok {
		return s.reject(ctx, env.cid, env.destination, env.e,
			fault.New(fault.Invalid, CodeNoChannel, "chat egress event needs a channel like #login, got %q", env.e.Channel))
	}
	if err := s.checkChannel(ctx, env, login); err != nil {
		return err
	}
	sel, ok := SelectText(env.e)
	if !ok {
		return s.reject(ctx, env.cid, env.destination, env.e,
			fault.New(fault.Invalid, CodeNoText, "no candidate text, payload.text or payload.chat.text to send"))
	}
	parts, truncated := chatParts(sel.Text, s.maxParts)

	owner := s.attemptOwner()
	results := make([]outcome, 0, len(parts))
	p := &chatPart{env: env, login: login, owner: owner, parts: len(parts), source: sel.Source}
	var last sent // the last part this attempt claimed, while it holds the claim
	for i, text := range parts {
		if len(results) > 0 && results[len(results)-1].Status != event.StatusSent {
			break // an earlier part failed: the rest would make no sense alone
		}
		p.index, p.text = i, text
		r, err := s.sendPart(ctx, p)
		if err != nil {
			if fault.KindOf(err) == fault.Auth {
				return s.authFailure(ctx, env, notSent(append(results, s.failedBy(err)), len(parts)), err)
			}
			return err
		}
		if r.finalized {
			s.log.InfoContext(ctx, s.name+": duplicate delivery, outcome already reported", "part", i)
			return nil
		}
		if r.held && i < len(parts)-1 && r.o.Status == event.StatusSent {
			// A later part follows: record this one now, so that a retry after a crash
			// between parts knows it went out.
			s.complete(ctx, r.key, owner, r.o)
			r.held = false
		}
		last = r
		results = append(results, r.o)
	}
	f := s.finalizeMessage(env.cid, env.destination, env.e, notSent(results, len(parts)))
	if truncated {
		addTruncation(&f, Truncation{Limit: ChatMaxChars * s.maxParts, OriginalChars: CharCount(sel.Text),
			SentChars: sentChars(parts), Reason: fmt.Sprintf("chat text longer than %d messages", s.maxParts)})
	}
	if last.held {
		return s.finalizeHeld(ctx, last.key, owner, last.leaseUntil, last.o, f)
	}
	// Every part was done by earlier attempts, whose finalize did not go out (its
	// publish failed) or went out through the finalize claim (an earlier version).
	return s.finalizeOnce(ctx, owner, f)
}

// chatPart is one part of a chat event being delivered.
type chatPart struct {
	env          *envelope
	login        string
	owner        string
	index, parts int
	text, source string
	// broadcasterID is resolved once per event, on the first part that is sent.
	broadcasterID string
}

// sendPart delivers one part once. It returns the part's final outcome, or an error
// when it must be retried (the claim is then released, or held by someone else) or,
// for Auth, reported.
func (s *ChatService) sendPart(ctx context.Context, p *chatPart) (sent, error) {
	key := s.partKey(p.env.cid, p.index)
	if p.broadcasterID == "" {
		hctx, cancel := s.helixCtx(ctx)
		id, err := s.broadcaster(hctx, p.login)
		cancel()
		if err != nil {
			if k := fault.KindOf(err); k == fault.Permanent || k == fault.Invalid {
				o := s.failedBy(err)
				s.log.WarnContext(ctx, s.name+": chat message not sent", "channel", "#"+p.login, "part", p.index,
					"code", o.Code, "twitchMessage", o.Message)
				return s.refused(ctx, key, p.owner, o)
			}
			s.log.WarnContext(ctx, s.name+": chat message will be retried", "part", p.index, "error", err.Error(),
				"code", fault.CodeOf(err, "UNKNOWN"))
			return sent{}, err
		}
		p.broadcasterID = id
	}
	claim, err := s.claimChatSlot(ctx, key, p.owner, p.broadcasterID)
	if err != nil {
		s.log.WarnContext(ctx, s.name+": chat message will be retried", "part", p.index, "error", err.Error(),
			"code", fault.CodeOf(err, "UNKNOWN"), "retryAfter", fault.RetryAfter(err, s.now()).String())
		return sent{}, err
	}
	if r, done, err := s.fromClaim(ctx, key, claim); done {
		return r, err
	}
	held := sent{key: key, held: true, leaseUntil: claim.LeaseUntil}
	hctx, cancel := s.helixCtx(ctx)
	res, err := s.helix.SendChatMessage(hctx, p.broadcasterID, s.botID, p.text, "")
	cancel()
	s.settleChatSlot(ctx, p.broadcasterID, claim)
	switch {
	case err == nil || sentAnyway(err):
		if err != nil {
			// Twitch accepted the message (2xx) but its answer was unreadable.
			s.log.WarnContext(ctx, s.name+": chat message counted as sent", "part", p.index, "error", err.Error())
			res = &twitch.ChatMessageResult{}
		}
		held.o = s.sentOutcome(res.MessageID)
		s.log.InfoContext(ctx, s.name+": chat message sent", "channel", "#"+p.login, "part", p.index, "parts", p.parts,
			"messageId", res.MessageID, "chars", CharCount(p.text), "textSource", p.source)
		return held, nil
	case outcomeUnknown(err, "/chat/messages"):
		held.o = s.unknownOutcome("no answer from Twitch (" + err.Error() + "); the message may have been posted, so it is not sent again")
		s.log.WarnContext(ctx, s.name+": chat message outcome unknown; not retried", "channel", "#"+p.login,
			"part", p.index, "code", held.o.Code, "error", err.Error())
		return held, nil
	}
	return s.partRefused(ctx, held, p, err)
}

// partRefused handles a part Twitch refused: for good (FAILED), for the bot's
// credentials (released, Auth), or for now (released, retried).
func (s *ChatService) partRefused(ctx context.Context, held sent, p *chatPart, err error) (sent, error) {
	switch fault.KindOf(err) {
	case fault.Permanent, fault.Invalid:
		held.o = s.failedBy(err)
		s.log.WarnContext(ctx, s.name+": chat message not sent", "channel", "#"+p.login, "part", p.index,
			"code", held.o.Code, "twitchMessage", held.o.Message)
		return held, nil
	}
	s.release(ctx, held.key, p.owner)
	if fault.KindOf(err) != fault.Auth {
		s.log.WarnContext(ctx, s.name+": chat message will be retried", "part", p.index, "error", err.Error(),
			"code", fault.CodeOf(err, "UNKNOWN"))
	}
	return sent{}, err
}

// handOff republishes a dm event, unchanged, to the whisper topic, with an attribute
// naming the topic it arrived on. EgressWhisper then delivers it: exactly one function
// delivers each event. A repeated hand-off (a redelivery) is harmless: the whisper's
// own claim sends it once.
func (s *ChatService) handOff(ctx context.Context, m trigger.Message, env *envelope) error {
	attrs := make(map[string]string, len(m.Attributes)+2)
	maps.Copy(attrs, m.Attributes)
	attrs[AttrOriginTopic] = env.destination
	if attrs[event.AttrCorrelationID] == "" {
		attrs[event.AttrCorrelationID] = env.cid
	}
	id, err := s.pub.Publish(ctx, s.topics.Whisper, m.Data, attrs)
	if err != nil {
		return fmt.Errorf("hand dm event %s to %s: %w", env.cid, s.topics.Whisper, err)
	}
	s.log.InfoContext(ctx, s.name+": dm event handed to the whisper function", "topic", s.topics.Whisper, "messageId", id)
	return nil
}

// broadcaster resolves a channel login to the broadcaster's user id (Helix users are
// cached for the life of the process).
func (s *ChatService) broadcaster(ctx context.Context, login string) (string, error) {
	users, err := s.helix.GetUsers(ctx, []string{login}, nil)
	if err != nil {
		return "", err
	}
	for _, u := range users {
		if strings.EqualFold(u.Login, login) {
			return u.ID, nil
		}
	}
	return "", fault.New(fault.Permanent, CodeChannelNotFound, "twitch has no user %q", login)
}

// channelLogin extracts the login from "#login" (the # is optional) and checks it has
// the shape of a Twitch login.
func channelLogin(channel string) (string, bool) {
	l := strings.ToLower(strings.TrimPrefix(strings.TrimSpace(channel), "#"))
	if l == "" || len(l) > 25 {
		return "", false
	}
	for i := 0; i < len(l); i++ {
		c := l[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_') {
			return "", false
		}
	}
	return l, true
}

// notSent completes results to n parts: the parts after a failure are FAILED without
// having been sent.
func notSent(results []outcome, n int) []outcome {
	for len(results) < n {
		results = append(results, outcome{Status: event.StatusFailed, Code: CodePartNotSent,
			Message: "not sent because an earlier part failed"})
	}
	return results
}

func sentChars(parts []string) int {
	n := 0
	for _, p := range parts {
		n += CharCount(p)
	}
	return n
}

// sentAnyway reports whether a send's error still means the message went out: a 2xx
// whose body could not be read.
func sentAnyway(err error) bool {
	return fault.CodeOf(err, "") == twitch.CodeMalformedResponse
}
