// Package egress delivers BitBrat's responses to Twitch: the EgressChat function sends
// an egress event's text to a channel's chat (split into parts when longer than Twitch
// allows), and hands events that ask for a direct message to the EgressWhisper
// function, which whispers the user within Twitch's whisper limits.
//
// Each side effect happens once: every chat part and every whisper is claimed in
// Firestore (collection deliveries, keyed by correlation id and part), together with
// its send budget, before the Helix call, and finished after the finalize is
// published, so a redelivered event is acknowledged without sending again, and a
// claim left by a crashed instance is taken over once its lease ends. Every terminal
// outcome is reported by exactly one finalize message (CONTRACT.md); sendonce.go has
// the argument. Input that can never be delivered gets a FAILED finalize
// and a fault.Invalid error, which the trigger turns into a dead letter.
package egress

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/google/uuid"

	"github.com/bitbrat/twitch-edge/functions/trigger"
	"github.com/bitbrat/twitch-edge/shared/event"
	"github.com/bitbrat/twitch-edge/shared/fault"
	"github.com/bitbrat/twitch-edge/shared/store"
	"github.com/bitbrat/twitch-edge/shared/twitch"
)

// Error codes this package reports (finalize error.code, dead-letter error.code).
// Twitch's own failures keep the twitch package's codes (TWITCH_BAD_REQUEST,
// CHAT_DROPPED, ...). Add codes, never rename them.
const (
	CodeNoCorrelationID = "NO_CORRELATION_ID"
	CodeNoEgress        = "NO_EGRESS"
	CodeNoText          = "NO_TEXT"
	CodeNoChannel       = "NO_CHANNEL"
	CodeChannelNotFound = "CHANNEL_NOT_FOUND"
	CodeBadUserID       = "INVALID_USER_ID"
	CodeWhisperToSelf   = "WHISPER_TO_SELF"
	// CodeRecipientCap: the bot already whispered the daily maximum of distinct users.
	CodeRecipientCap = "WHISPER_RECIPIENT_CAP"
	// CodeLocalRateLimit: the whisper per-second or per-minute budget is spent; the
	// message is retried later (never a FAILED outcome).
	CodeLocalRateLimit = "WHISPER_LOCAL_RATE_LIMIT"
	// CodeInProgress: another delivery of the same event holds the claim; retry later.
	CodeInProgress = store.CodeInProgress
	// CodePartNotSent: an earlier part of a split chat message failed, so this part
	// was not sent.
	CodePartNotSent = "PART_NOT_SENT"
	// CodeExpired: the event is past its timeoutAt or older than MaxAge.
	CodeExpired = "EXPIRED"
	// CodeDeliveryUnknown: the send may have reached Twitch but its answer never
	// came (timeout, reset connection, gateway error, a crash mid-send). It is not
	// sent again, since that could deliver it twice.
	CodeDeliveryUnknown = "DELIVERY_UNKNOWN"
)

// AttrOriginTopic is the attribute EgressChat adds when it hands a dm event to the
// whisper topic: the topic the event first arrived on, which the whisper's finalize
// reports as its destination.
const AttrOriginTopic = "origintopic"

// Publisher publishes one message and waits for the acknowledgement (*bus.Publisher).
type Publisher interface {
	Publish(ctx context.Context, topic string, data []byte, attrs map[string]string) (string, error)
}

// Claims makes each send happen once (*store.Claims on collection deliveries): see
// sendonce.go for how.
type Claims interface {
	ClaimSend(ctx context.Context, key, owner string, lease time.Duration, slot *store.Slot) (store.Claim, time.Time, error)
	Finish(ctx context.Context, key, owner, result, finalized string) error
	Peek(ctx context.Context, key string) (store.Claim, bool, error)
	Acquire(ctx context.Context, key, owner string, lease time.Duration) (store.Claim, error)
	Complete(ctx context.Context, key, owner, result string) error
	Release(ctx context.Context, key, owner string) error
}

// Topics are the topic ids the egress functions publish to, deployment prefix applied.
type Topics struct {
	// Finalize receives delivery outcomes (internal.persistence.finalize.v1). Required.
	Finalize string
	// Whisper is where EgressChat hands dm events (twitch.egress.whisper.v1). Required
	// by the chat service.
	Whisper string
	// Egress is the destination reported when a message does not say which topic it
	// arrived on (the trigger takes the topic from the event source; a local push
	// without one falls back to this): usually internal.egress.v1, prefix applied.
	Egress string
}

// Defaults of the service configurations.
const (
	DefaultLease    = time.Minute
	DefaultMaxParts = 10
	// DefaultMaxWait lets a whisper wait out one per-second window (WhisperSecond).
	DefaultMaxWait = WhisperSecond
	// DefaultRecipientCap is Twitch's daily unique-recipient limit for whispers.
	DefaultRecipientCap = 40
	// DefaultMaxAge bounds how late a reply may still be delivered: Pub/Sub's retries
	// (up to 10 min apart) must not post an answer an hour after the question.
	DefaultMaxAge = 30 * time.Minute
)

// core is what both services share: claims, finalize publishing, clock and logger.
type core struct {
	name     string // for logs: "egress.chat", "egress.whisper"
	pub      Publisher
	claims   Claims
	topics   Topics
	botID    string
	owner    string
	lease    time.Duration
	now      func() time.Time
	log      *slog.Logger
	keyspace string // claim key prefix: "chat" or "whisper"
	maxAge   time.Duration
	// helixTimeout bounds each Helix call (DefaultHelixTimeout).
	helixTimeout time.Duration
}

func (c *core) attemptOwner() string { return c.owner + "/" + uuid.NewString() }

// outcome is one send's result, stored as the claim's result so that a redelivery
// can report what happened without sending again.
type outcome struct {
	Status    string `json:"s"`
	MessageID string `json:"id,omitempty"`
	Code      string `json:"c,omitempty"`
	Message   string `json:"m,omitempty"`
	// At is when the outcome happened (finalize deliveredAt).
	At string `json:"at"`
	// Cut records a whisper's truncation.
	Cut *Truncation `json:"t,omitempty"`
}

// Truncation records text that was cut to fit Twitch's limits; it travels in the
// finalize message as the extra member "truncated".
type Truncation struct {
	// Limit is the limit applied, in characters.
	Limit int `json:"limit"`
	// OriginalChars and SentChars are the text's length before and after.
	OriginalChars int `json:"originalChars"`
	SentChars     int `json:"sentChars"`
	// Reason says which rule applied.
	Reason string `json:"reason"`
}

func (o outcome) encode() string {
	b, _ := json.Marshal(o)
	return string(b)
}

func decodeOutcome(s string) outcome {
	var o outcome
	if json.Unmarshal([]byte(s), &o) != nil || (o.Status != event.StatusSent && o.Status != event.StatusFailed) {
		// A completed claim means the send happened; without a readable record, report
		// it sent.
		return outcome{Status: event.StatusSent}
	}
	return o
}

func (o outcome) errorInfo() *event.ErrorInfo {
	if o.Status != event.StatusFailed {
		return nil
	}
	return &event.ErrorInfo{Code: o.Code, Message: o.Message}
}

// failed is the outcome of a send Twitch (or we) refused for good.
func (c *core) failed(code, message string) outcome {
	return outcome{Status: event.StatusFailed, Code: code, Message: message, At: event.Timestamp(c.now())}
}

// failedBy is the outcome of a send that failed with err: its code, and Twitch's own
// message when Twitch answered.
func (c *core) failedBy(err error) outcome {
	return c.failed(fault.CodeOf(err, "EGRESS_FAILED"), twitchMessage(err))
}

// twitchMessage is what Twitch said (its message, or the drop reason of a chat
// message that was not sent); our error text otherwise.
func twitchMessage(err error) string {
	var drop *twitch.ChatDroppedError
	if errors.As(err, &drop) {
		if drop.Reason.Code != "" && drop.Reason.Message != "" {
			return drop.Reason.Code + ": " + drop.Reason.Message
		}
		if drop.Reason.Code != "" || drop.Reason.Message != "" {
			return drop.Reason.Code + drop.Reason.Message
		}
		return "twitch did not send the message and gave no reason"
	}
	if ae, ok := twitch.AsAPIError(err); ok && ae.Message != "" {
		return ae.Message
	}
	var fe *fault.Error
	if errors.As(err, &fe) && fe.Message != "" {
		return fe.Message
	}
	return err.Error()
}

// envelope is a decoded egress event with what every outcome needs.
type envelope struct {
	e           *event.InternalEventV2
	cid         string
	destination string
}

// decode parses the event. A message that is not an event, or has no correlation id
// or egress, is unprocessable: the FAILED finalize goes out here (when a correlation
// id is known from the body or the attributes) and the error is fault.Invalid. It
// returns nil, nil for a late redelivery of an event whose outcome was already
// reported.
func (c *core) decode(ctx context.Context, m trigger.Message, destination string) (*envelope, error) {
	e, err := event.Decode(m.Data)
	if err != nil {
		return nil, c.reject(ctx, trigger.CorrelationIDOf(m), destination, nil, err)
	}
	env := &envelope{e: e, cid: e.CorrelationID, destination: destination}
	if env.cid == "" {
		return nil, c.reject(ctx, trigger.CorrelationIDOf(m), destination, e,
			fault.New(fault.Invalid, CodeNoCorrelationID, "egress event has no correlationId"))
	}
	if e.Egress == nil {
		return nil, c.reject(ctx, env.cid, destination, e,
			fault.New(fault.Invalid, CodeNoEgress, "event %s has no egress", env.cid))
	}
	now := c.now()
	if c.maxAge > 0 && !m.PublishTime.IsZero() && now.Sub(m.PublishTime) > c.maxAge {
		return nil, c.reject(ctx, env.cid, destination, e, fault.New(fault.Invalid, CodeExpired,
			"published %s ago, limit %s", now.Sub(m.PublishTime).Round(time.Second), c.maxAge))
	}
	if e.TimeoutAt != "" {
		if deadline, err := event.ParseTimestamp(e.TimeoutAt); err == nil && now.After(deadline) {
			return nil, c.reject(ctx, env.cid, destination, e, fault.New(fault.Invalid, CodeExpired,
				"timeoutAt %s has passed", e.TimeoutAt))
		}
	}
	return env, nil
}

// reject reports an undeliverable event: a FAILED finalize when cid is known, then
// cause (fault.Invalid) carrying cid, so the trigger dead-letters the original.
func (c *core) reject(ctx context.Context, cid, destination string, e *event.InternalEventV2, cause error) error {
	code := fault.CodeOf(cause, "UNPROCESSABLE")
	c.log.WarnContext(ctx, c.name+": undeliverable event", "code", code, "error", cause.Error())
	if cid != "" {
		// Through the finalize claim, so that each event gets one terminal finalize. A
		// redelivery of a rejected event is dead-lettered again (in case the first dead
		// letter was lost); one that has only grown older than MaxAge since its outcome
		// was reported is acknowledged quietly.
		dup, err := c.reported(ctx, cid)
		if err != nil {
			return err
		}
		if !dup {
			f := c.finalizeMessage(cid, destination, e, []outcome{c.failed(code, twitchMessage(cause))})
			if dup, err = c.finalizeFirst(ctx, c.attemptOwner(), f); err != nil {
				return err
			}
		}
		if dup && code == CodeExpired {
			return nil
		}
	}
	return trigger.WithCorrelationID(cause, cid)
}

// finalizeMessage builds the CONTRACT.md finalize message for the outcomes of an
// event's parts (one for a whisper or a short chat message).
func (c *core) finalizeMessage(cid, destination string, e *event.InternalEventV2, parts []outcome) event.FinalizeMessage {
	f := event.FinalizeMessage{CorrelationID: cid, Destination: destination, Status: event.StatusSent}
	var firstFailed *outcome
	for i := range parts {
		if parts[i].Status != event.StatusSent && firstFailed == nil {
			firstFailed = &parts[i]
		}
		if parts[i].At > f.DeliveredAt {
			f.DeliveredAt = parts[i].At
		}
	}
	if f.DeliveredAt == "" {
		f.DeliveredAt = event.Timestamp(c.now())
	}
	if firstFailed != nil {
		f.Status, f.Error = event.StatusFailed, firstFailed.errorInfo()
	} else if len(parts) > 0 {
		// A split message is known by its first part.
		f.ProviderMessageID = parts[0].MessageID
	}
	if len(parts) > 1 {
		f.Parts = make([]event.PartOutcome, len(parts))
		for i, p := range parts {
			f.Parts[i] = event.PartOutcome{Index: i, Status: p.Status, ProviderMessageID: p.MessageID, Error: p.errorInfo()}
		}
	}
	for _, p := range parts {
		if p.Cut != nil {
			addTruncation(&f, *p.Cut)
		}
	}
	if e != nil {
		f.Candidates, f.Annotations = e.Candidates, e.Annotations
		if e.QOS != nil {
			// Finalize sets expireAt from qos.ttl (CONTRACT.md); carry it along.
			if b, err := json.Marshal(e.QOS); err == nil {
				addExtra(&f, "qos", b)
			}
		}
	}
	return f
}

func addExtra(f *event.FinalizeMessage, key string, v json.RawMessage) {
	if f.Extra == nil {
		f.Extra = event.Extra{}
	}
	f.Extra[key] = v
}

// addTruncation records a truncation as the finalize's extra member "truncated".
func addTruncation(f *event.FinalizeMessage, t Truncation) {
	b, _ := json.Marshal(t)
	addExtra(f, "truncated", b)
}

func (c *core) publishFinalize(ctx context.Context, f event.FinalizeMessage) error {
	b, err := json.Marshal(f)
	if err != nil {
		return fault.Wrap(fault.Invalid, "FINALIZE_ENCODE_FAILED", err, "encode finalize for %s", f.CorrelationID)
	}
	if _, err := c.pub.Publish(ctx, c.topics.Finalize, b, event.FinalizeAttributes(f.CorrelationID)); err != nil {
		return fmt.Errorf("publish finalize for %s: %w", f.CorrelationID, err)
	}
	return nil
}

// finalizeOnce publishes f unless a delivery of the same event already did: the
// finalize has its own claim, completed once the message is published.
func (c *core) finalizeOnce(ctx context.Context, owner string, f event.FinalizeMessage) error {
	_, err := c.finalizeFirst(ctx, owner, f)
	return err
}

// finalizeFirst is finalizeOnce, also telling whether the outcome had already been
// reported (dup).
func (c *core) finalizeFirst(ctx context.Context, owner string, f event.FinalizeMessage) (dup bool, err error) {
	key := c.keyspace + ":" + f.CorrelationID + ":finalize"
	claim, err := c.claims.Acquire(ctx, key, owner, c.lease)
	if err != nil {
		return false, err
	}
	switch claim.State {
	case store.Completed:
		c.log.InfoContext(ctx, c.name+": duplicate delivery, outcome already reported", "status", f.Status)
		return true, nil
	case store.Held:
		return false, inProgress(key, claim)
	}
	if err := c.publishFinalize(ctx, f); err != nil {
		c.release(ctx, key, owner)
		return false, err
	}
	if err := c.claims.Complete(ctx, key, owner, f.Status); err != nil {
		// Published but not recorded: a redelivery would publish the same outcome again,
		// which the finalize function records idempotently. Acknowledge now.
		c.log.WarnContext(ctx, c.name+": finalize published but not recorded", "error", err.Error())
	}
	return false, nil
}

func (c *core) release(ctx context.Context, key, owner string) {
	if err := c.claims.Release(ctx, key, owner); err != nil {
		c.log.WarnContext(ctx, c.name+": release claim", "key", key, "error", err.Error())
	}
}

func (c *core) complete(ctx context.Context, key, owner string, o outcome) {
	if err := c.claims.Complete(ctx, key, owner, o.encode()); err != nil {
		// The send happened; failing now would send again on retry. A redelivery after
		// the lease may still resend: the rare at-least-once case claims allow.
		c.log.WarnContext(ctx, c.name+": sent but could not record it", "key", key, "error", err.Error())
	}
}

func inProgress(key string, claim store.Claim) error {
	return &fault.Error{Kind: fault.Transient, Code: CodeInProgress, RetryAt: claim.LeaseUntil,
		Message: fmt.Sprintf("%s is being delivered by %s until %s", key, claim.Owner, claim.LeaseUntil.UTC().Format(time.RFC3339))}
}

// authFailure reports a send refused for the bot's credentials (401 even after a token
// refresh): a FAILED finalize with Twitch's message, not recorded as final, and the
// Auth error, which the trigger dead-letters so that the event can be replayed once a
// human has fixed the token.
func (c *core) authFailure(ctx context.Context, env *envelope, parts []outcome, err error) error {
	c.log.ErrorContext(ctx, c.name+": twitch refused the bot's credentials", "error", err.Error())
	f := c.finalizeMessage(env.cid, env.destination, env.e, parts)
	if perr := c.publishFinalize(ctx, f); perr != nil {
		return perr
	}
	return trigger.WithCorrelationID(err, env.cid)
}

func firstNonEmpty(ss ...string) string {
	for _, s := range ss {
		if s != "" {
			return s
		}
	}
	return ""
}
