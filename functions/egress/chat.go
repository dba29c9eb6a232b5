package egress

import (
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
	"github.com/bitbrat/twitch-edge/shared/store"
	"github.com/bitbrat/twitch-edge/shared/twitch"
)

// ChatAPI is what EgressChat needs from Helix (*twitch.Client satisfies it).
type ChatAPI interface {
	SendChatMessage(ctx context.Context, broadcasterID, senderID, message, replyParentID string) (*twitch.ChatMessageResult, error)
	GetUsers(ctx context.Context, logins, ids []string) ([]twitch.User, error)
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
	// Now is the clock. Default time.Now.
	Now func() time.Time
	// Log receives one line per outcome. Default: discard.
	Log *slog.Logger
}

// ChatService is the EgressChat function's logic.
type ChatService struct {
	core
	helix    ChatAPI
	maxParts int
}

// NewChatService checks cfg and returns the service.
func NewChatService(cfg ChatConfig) (*ChatService, error) {
	c, err := newCore("egress.chat", "chat", cfg.Pub, cfg.Claims, cfg.Topics, cfg.BotUserID, cfg.Owner, cfg.Lease, cfg.MaxAge, cfg.Now, cfg.Log)
	if err != nil {
		return nil, err
	}
	var problems []error
	if cfg.Helix == nil {
		problems = append(problems, errors.New("Helix is required"))
	}
	if cfg.Topics.Whisper == "" {
		problems = append(problems, errors.New("Topics.Whisper is required"))
	}
	if err := errors.Join(problems...); err != nil {
		return nil, fmt.Errorf("egress chat: %w", err)
	}
	if cfg.MaxParts <= 0 {
		cfg.MaxParts = DefaultMaxParts
	}
	return &ChatService{core: c, helix: cfg.Helix, maxParts: cfg.MaxParts}, nil
}

func newCore(name, keyspace string, pub Publisher, claims Claims, topics Topics, botID, owner string,
	lease, maxAge time.Duration, now func() time.Time, log *slog.Logger) (core, error) {
	var problems []error
	if pub == nil {
		problems = append(problems, errors.New("Pub is required"))
	}
	if claims == nil {
		problems = append(problems, errors.New("Claims is required"))
	}
	if topics.Finalize == "" {
		problems = append(problems, errors.New("Topics.Finalize is required"))
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
	if err != nil {
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
	sel, ok := SelectText(env.e)
	if !ok {
		return s.reject(ctx, env.cid, env.destination, env.e,
			fault.New(fault.Invalid, CodeNoText, "no candidate text, payload.text or payload.chat.text to send"))
	}
	parts, truncated := SplitText(sel.Text, ChatMaxChars, s.maxParts)

	owner := s.attemptOwner()
	results := make([]outcome, 0, len(parts))
	broadcasterID := ""
	for i, text := range parts {
		if len(results) > 0 && results[len(results)-1].Status != event.StatusSent {
			break // an earlier part failed: the rest would make no sense alone
		}
		key := fmt.Sprintf("%s:%s:%d", s.keyspace, env.cid, i)
		claim, err := s.claims.Acquire(ctx, key, owner, s.lease)
		if err != nil {
			return err
		}
		switch claim.State {
		case store.Completed:
			results = append(results, decodeOutcome(claim.Result))
			continue
		case store.Held:
			return inProgress(key, claim)
		}
		if claim.Attempts > 1 {
			s.log.WarnContext(ctx, s.name+": taking over an expired claim; the part may have been sent already",
				"key", key, "attempts", claim.Attempts)
		}
		if broadcasterID == "" {
			broadcasterID, err = s.broadcaster(ctx, login)
		}
		var res *twitch.ChatMessageResult
		if err == nil {
			res, err = s.helix.SendChatMessage(ctx, broadcasterID, s.botID, text, "")
		}
		if err != nil && sentAnyway(err, claim.Attempts) {
			// Twitch accepted the message but its answer was unreadable, or this is a
			// take-over and Twitch says it is a duplicate of what the crashed attempt
			// sent: it was delivered once.
			s.log.WarnContext(ctx, s.name+": chat message counted as sent", "part", i, "code", fault.CodeOf(err, ""), "error", err.Error())
			res, err = &twitch.ChatMessageResult{}, nil
		}
		if err == nil {
			o := outcome{Status: event.StatusSent, MessageID: res.MessageID, At: event.Timestamp(s.now())}
			s.complete(ctx, key, owner, o)
			results = append(results, o)
			s.log.InfoContext(ctx, s.name+": chat message sent", "channel", "#"+login, "part", i, "parts", len(parts),
				"messageId", res.MessageID, "chars", CharCount(text), "textSource", sel.Source)
			continue
		}
		switch fault.KindOf(err) {
		case fault.Permanent, fault.Invalid:
			o := s.failedBy(err)
			s.complete(ctx, key, owner, o)
			results = append(results, o)
			s.log.WarnContext(ctx, s.name+": chat message not sent", "channel", "#"+login, "part", i,
				"code", o.Code, "twitchMessage", o.Message)
		case fault.Auth:
			s.release(ctx, key, owner)
			return s.authFailure(ctx, env, notSent(append(results, s.failedBy(err)), len(parts)), err)
		default:
			if fault.CodeOf(err, "") == twitch.CodeNetwork {
				// The request may have reached Twitch. Keep the claim, shortened, so the
				// retry is a take-over: it resends within Twitch's 30 s duplicate window,
				// and Twitch's msg_duplicate then tells that the first one went out.
				if _, rerr := s.claims.Acquire(ctx, key, owner, maybeSentLease); rerr != nil {
					s.release(ctx, key, owner)
				}
				s.log.WarnContext(ctx, s.name+": chat message may have been sent; retrying as a take-over", "part", i, "error", err.Error())
				return err
			}
			s.release(ctx, key, owner)
			s.log.WarnContext(ctx, s.name+": chat message will be retried", "part", i, "error", err.Error(),
				"code", fault.CodeOf(err, "UNKNOWN"))
			return err
		}
	}
	f := s.finalizeMessage(env.cid, env.destination, env.e, notSent(results, len(parts)))
	if truncated {
		addTruncation(&f, Truncation{Limit: ChatMaxChars * s.maxParts, OriginalChars: CharCount(sel.Text),
			SentChars: sentChars(parts), Reason: fmt.Sprintf("chat text longer than %d messages", s.maxParts)})
	}
	return s.finalizeOnce(ctx, owner, f)
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
// whose body could not be read, or Twitch's msg_duplicate on a take-over of a crashed
// attempt's claim.
func sentAnyway(err error, attempts int64) bool {
	if fault.CodeOf(err, "") == twitch.CodeMalformedResponse {
		return true
	}
	var dropped *twitch.ChatDroppedError
	return attempts > 1 && errors.As(err, &dropped) && dropped.Reason.Code == "msg_duplicate"
}

// maybeSentLease is how long a part whose send may have reached Twitch stays claimed:
// long enough that the retry is a take-over, short enough that it resends inside
// Twitch's 30 s duplicate window.
const maybeSentLease = 12 * time.Second
