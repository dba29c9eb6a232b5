package egress

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/bitbrat/twitch-edge/functions/trigger"
	"github.com/bitbrat/twitch-edge/shared/event"
	"github.com/bitbrat/twitch-edge/shared/fault"
	"github.com/bitbrat/twitch-edge/shared/logging"
	"github.com/bitbrat/twitch-edge/shared/store"
	"github.com/bitbrat/twitch-edge/shared/twitch"
)

// WhisperAPI is what EgressWhisper needs from Helix (*twitch.Client satisfies it).
type WhisperAPI interface {
	SendWhisper(ctx context.Context, fromUserID, toUserID, message string) error
}

// Recipients counts the distinct users the bot whispered, across instances
// (*store.WhisperRecipients).
type Recipients interface {
	Admit(ctx context.Context, r store.WhisperRequest) (store.WhisperAdmission, error)
	Withdraw(ctx context.Context, senderID, recipientID, key string) error
}

// WhisperConfig are the whisper service's dependencies and settings.
type WhisperConfig struct {
	// Helix sends whispers. Required.
	Helix WhisperAPI
	// Pub publishes finalize messages. Required.
	Pub Publisher
	// Claims records each whisper's delivery (collection deliveries). Required.
	Claims Claims
	// Recipients enforces the daily unique-recipient cap. Required.
	Recipients Recipients
	// Topics: Finalize is required.
	Topics Topics
	// BotUserID is the sender (the whisper token's user, with a verified phone).
	// Required, digits.
	BotUserID string
	// Owner names this instance in claims. Default "egress".
	Owner string
	// Lease is how long a claim blocks other deliveries. Default DefaultLease.
	Lease time.Duration
	// MaxAge: an event published longer ago than this, or past its timeoutAt, is not
	// delivered late: FAILED (EXPIRED) and dead-lettered. Default DefaultMaxAge.
	MaxAge time.Duration
	// Budgets holds the per-second and per-minute limits across instances
	// (*store.SendBudgets). Required.
	Budgets SendBudgets
	// RecipientCap is the number of distinct users the bot may whisper per day.
	// Default DefaultRecipientCap (Twitch's 40).
	RecipientCap int
	// MaxWait is the longest the handler waits for a free send slot; a longer wait
	// returns a RateLimited error instead, and Pub/Sub retries later. Default
	// DefaultMaxWait.
	MaxWait time.Duration
	// Sleep waits for d or until ctx ends. Default: a timer. Tests advance a fake
	// clock instead.
	Sleep func(ctx context.Context, d time.Duration) error
	// HelixTimeout bounds each Helix call. Default DefaultHelixTimeout.
	HelixTimeout time.Duration
	// SeenWithin, when positive, limits whispers to users seen on
	// internal.ingress.v1 within it (Seen is then required). Default 0: off.
	SeenWithin time.Duration
	// Seen answers whether a user was seen (*store.SeenUsers).
	Seen Seen
	// Now is the clock (limits, admissions, deliveredAt). Default time.Now.
	Now func() time.Time
	// Log receives one line per outcome. Default: discard.
	Log *slog.Logger
}

// WhisperService is the EgressWhisper function's logic.
type WhisperService struct {
	core
	helix      WhisperAPI
	recipients Recipients
	budgets    SendBudgets
	seen       Seen
	seenWithin time.Duration
	cap        int
	maxWait    time.Duration
	sleep      func(ctx context.Context, d time.Duration) error
}

// NewWhisperService checks cfg and returns the service.
func NewWhisperService(cfg WhisperConfig) (*WhisperService, error) {
	c, err := newCore("egress.whisper", "whisper", cfg.Pub, cfg.Claims, cfg.Topics, cfg.BotUserID, cfg.Owner, cfg.Lease, cfg.MaxAge, cfg.Now, cfg.Log)
	if err != nil {
		return nil, err
	}
	c.helixTimeout = cmp.Or(cfg.HelixTimeout, DefaultHelixTimeout)
	var problems []error
	if cfg.Helix == nil {
		problems = append(problems, errors.New("cfg.Helix is required"))
	}
	if cfg.Recipients == nil {
		problems = append(problems, errors.New("cfg.Recipients is required"))
	}
	if cfg.Budgets == nil {
		problems = append(problems, errors.New("cfg.Budgets is required"))
	}
	if cfg.SeenWithin > 0 && cfg.Seen == nil {
		problems = append(problems, errors.New("cfg.Seen is required with SeenWithin"))
	}
	if err := errors.Join(problems...); err != nil {
		return nil, fmt.Errorf("egress whisper: %w", err)
	}
	if cfg.RecipientCap <= 0 {
		cfg.RecipientCap = DefaultRecipientCap
	}
	if cfg.MaxWait <= 0 {
		cfg.MaxWait = DefaultMaxWait
	}
	if cfg.Sleep == nil {
		cfg.Sleep = sleep
	}
	return &WhisperService{core: c, helix: cfg.Helix, recipients: cfg.Recipients, budgets: cfg.Budgets, seen: cfg.Seen, seenWithin: cfg.SeenWithin,
		cap: cfg.RecipientCap, maxWait: cfg.MaxWait, sleep: cfg.Sleep}, nil
}

// Handle whispers one dm event's text to its userId, within Twitch's limits: 3 per
// second and 100 per minute (a full budget is a RateLimited error, retried later),
// 40 distinct recipients per day (beyond: FAILED, code WHISPER_RECIPIENT_CAP), and
// 500 characters to a first-time recipient, 10,000 otherwise (longer text is
// truncated, and the finalize records it). Errors follow ChatService.Handle.
func (s *WhisperService) Handle(ctx context.Context, m trigger.Message) error {
	env, err := s.decode(ctx, m, firstNonEmpty(m.Attributes[AttrOriginTopic], m.Topic, s.topics.Egress))
	if err != nil || env == nil { // nil, nil: a duplicate of an event already reported
		return err
	}
	ctx = logging.WithCorrelationID(ctx, env.cid)
	to := env.e.UserID
	switch {
	case !twitch.IsUserID(to):
		return s.reject(ctx, env.cid, env.destination, env.e,
			fault.New(fault.Invalid, CodeBadUserID, "whisper target userId %q is not a Twitch user id", to))
	case to == s.botID:
		return s.reject(ctx, env.cid, env.destination, env.e,
			fault.New(fault.Invalid, CodeWhisperToSelf, "the bot cannot whisper itself"))
	}
	if err := s.checkRecipient(ctx, env, to); err != nil {
		return err
	}
	sel, ok := SelectText(env.e)
	if !ok {
		return s.reject(ctx, env.cid, env.destination, env.e,
			fault.New(fault.Invalid, CodeNoText, "no candidate text, payload.text or payload.chat.text to send"))
	}

	owner := s.attemptOwner()
	key := s.partKey(env.cid, 0)
	r, err := s.send(ctx, env, key, owner, to, sel.Text)
	if err != nil {
		if fault.KindOf(err) == fault.Auth {
			return s.authFailure(ctx, env, []outcome{s.failedBy(err)}, err)
		}
		if fault.CodeOf(err, "") != CodeInProgress {
			s.log.WarnContext(ctx, s.name+": whisper will be retried", "error", err.Error(), "code", fault.CodeOf(err, "UNKNOWN"),
				"retryAfter", fault.RetryAfter(err, s.now()).String())
		}
		return err
	}
	f := s.finalizeMessage(env.cid, env.destination, env.e, []outcome{r.o})
	switch {
	case r.finalized:
		s.log.InfoContext(ctx, s.name+": duplicate delivery, outcome already reported", "status", f.Status)
		return nil
	case r.held:
		return s.finalizeHeld(ctx, key, owner, r.leaseUntil, r.o, f)
	}
	// Done by an earlier attempt whose finalize did not go out (its publish failed) or
	// went out through the finalize claim (an earlier version).
	return s.finalizeOnce(ctx, owner, f)
}

// send applies the limits, claims the whisper and sends it. It returns its final
// outcome (SENT, or FAILED for good; found, when an earlier attempt claimed it), or an
// error when the whisper must be retried (or, for Auth, reported and dead-lettered).
func (s *WhisperService) send(ctx context.Context, env *envelope, key, owner, to, text string) (sent, error) {
	adm, err := s.recipients.Admit(ctx, store.WhisperRequest{SenderID: s.botID, RecipientID: to, Key: env.cid, At: s.now(), Cap: s.cap})
	if err != nil {
		return sent{}, err
	}
	if !adm.Admitted {
		s.log.WarnContext(ctx, s.name+": daily whisper recipient cap reached", "to", to, "admission", adm.String())
		return s.refused(ctx, key, owner, s.failed(CodeRecipientCap, fmt.Sprintf(
			"the bot already whispered %d different users in the last 24 hours (Twitch allows %d); the next recipient can be whispered after %s",
			adm.Recipients, s.cap, adm.NextSlot.UTC().Format(time.RFC3339))))
	}
	limit, reason := WhisperMaxChars, "whisper longer than Twitch allows"
	if adm.FirstTime {
		limit, reason = WhisperFirstTimeMaxChars, "whisper to a first-time recipient longer than Twitch allows"
	}
	msg, cut := Truncate(text, limit)
	claim, err := s.claimSlot(ctx, key, owner)
	if err != nil {
		return sent{}, err
	}
	if r, done, err := s.fromClaim(ctx, key, claim); done {
		if err == nil && adm.FirstTime && r.o.Status == event.StatusFailed && r.o.Code == CodeRecipientCap {
			// An earlier attempt was refused for the cap and reported it; the slot this
			// attempt was just given will not be used.
			s.withdraw(ctx, to, env.cid)
		}
		return r, err
	}
	held := sent{key: key, held: true, leaseUntil: claim.LeaseUntil}
	hctx, cancel := s.helixCtx(ctx)
	err = s.helix.SendWhisper(hctx, s.botID, to, msg)
	cancel()
	s.settleSlot(ctx, claim)
	if err != nil && outcomeUnknown(err, "/whispers") {
		s.log.WarnContext(ctx, s.name+": whisper outcome unknown; not retried", "to", to, "error", err.Error())
		held.o = s.unknownOutcome("no answer from Twitch (" + err.Error() + "); the whisper may have been delivered, so it is not sent again")
		return held, nil
	}
	if err != nil {
		if k := fault.KindOf(err); k == fault.Permanent || k == fault.Invalid {
			held.o = s.failedBy(err)
			s.log.WarnContext(ctx, s.name+": whisper not sent", "to", to, "code", held.o.Code, "twitchMessage", held.o.Message)
			// Nothing was delivered: the recipient's slot goes back to the daily budget.
			if adm.FirstTime {
				s.withdraw(ctx, to, env.cid)
			}
			return held, nil
		}
		s.release(ctx, key, owner) // nothing was sent: the retry may send
		return sent{}, err
	}
	held.o = outcome{Status: event.StatusSent, At: event.Timestamp(s.now())}
	if cut {
		held.o.Cut = &Truncation{Limit: limit, OriginalChars: CharCount(text), SentChars: CharCount(msg), Reason: reason}
	}
	s.log.InfoContext(ctx, s.name+": whisper sent", "to", to, "chars", CharCount(msg), "truncated", cut,
		"firstTimeRecipient", adm.FirstTime)
	return held, nil
}

// withdraw gives back the recipient slot the whisper cid took.
func (s *WhisperService) withdraw(ctx context.Context, to, cid string) {
	if err := s.recipients.Withdraw(ctx, s.botID, to, cid); err != nil {
		s.log.WarnContext(ctx, s.name+": could not give back the recipient slot", "to", to, "error", err.Error())
	}
}

func sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
