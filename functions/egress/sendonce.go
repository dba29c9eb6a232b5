package egress

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/bitbrat/twitch-edge/shared/event"
	"github.com/bitbrat/twitch-edge/shared/fault"
	"github.com/bitbrat/twitch-edge/shared/store"
	"github.com/bitbrat/twitch-edge/shared/twitch"
)

// No chat message or whisper is sent twice, and each event gets one terminal finalize.
// The writes, per send (a whisper, or one part of a chat message):
//
//  1. Before the Helix call, one transaction (store.Claims.ClaimSend) reads the send
//     budget (the channel's chat budget, the bot's whisper budget) and, if it has
//     room, writes it and creates the send's claim already marked in flight
//     (Sending), owned by this attempt for the lease. Both writes commit or neither:
//     no slot is spent on a claim that is not made, no claim is made without its
//     slot, and a send is only made by the attempt whose create succeeded — a
//     concurrent or later delivery's create fails and it reads the claim instead.
//  2. The Helix call. Its outcome, even an unknown one, is then final: a claim marked
//     in flight is never released except when Twitch's answer says nothing was sent
//     (429, 500, 503, a refused token, a connection never made), so no later delivery
//     sends again. A timeout, a reset, a gateway error — a request that may have
//     reached Twitch — ends FAILED with CodeDeliveryUnknown.
//  3. The finalize is published, then the claim is finished (store.Claims.Finish):
//     done, with the outcome and the fact that it was reported, in one write. A
//     delivery that finds the claim finished acknowledges and publishes nothing.
//
// So a delivered single-part message costs 3 writes here (budget, claim, finish) and
// 1 read (the budget); a whisper one write more (its answer's time in the budget, so
// that the budget counts it by arrival: store.Budget); Finalize adds its own write. What the redeliveries Pub/Sub can
// produce (10–600 s backoff, after the ack deadline, concurrent) find, at any time:
//   - no claim: nothing was sent (a released claim is deleted), so the send is made;
//   - a claim in flight whose lease holds: IN_PROGRESS, retried after the lease;
//   - a claim in flight whose lease ran out: its attempt died between 1 and 3 (the
//     lease, 3 min in the deployment, outlasts the function's timeout). The claim is
//     taken over (a conditional write, one winner), the outcome reported
//     DELIVERY_UNKNOWN and the claim finished: never sent again;
//   - a finished claim: the outcome was reported; nothing to do.
//
// An attempt outlives its lease only if it stalls (its function would have been
// killed at the timeout): it then publishes nothing (finalizeHeld checks the lease
// before publishing and bounds the publish by it), since a take-over may have
// reported the event already; the redelivery its error causes reports
// DELIVERY_UNKNOWN. What remains, as before: an instance dying after the publish and
// before the finish (one write) leaves a claim in flight, so a redelivery reports a
// second, DELIVERY_UNKNOWN finalize, which Finalize ranks below the SENT it already
// has; a publish that fails keeps the outcome in the claim (Complete) and the retry
// publishes it through the finalize claim (finalizeFirst), as does a claim finished by
// an earlier version of this code, which used that claim for every event. A chat
// message of several parts completes each part but the last (one more write each),
// so that a retry after a crash between parts knows which went out.
//
// A refusal decided before sending (an unknown channel, the whisper recipient cap) is
// recorded the same way through a claim made without a slot and not in flight.

// DefaultHelixTimeout bounds each Helix call from egress: a send whose answer does not
// come within it ends as DELIVERY_UNKNOWN, so the window in which an outcome can be
// unknown stays short.
const DefaultHelixTimeout = 10 * time.Second

// outcomeUnknown reports whether err from a Helix send to sendPath ("/chat/messages",
// "/whispers") leaves open whether Twitch delivered the message.
func outcomeUnknown(err error, sendPath string) bool {
	if ae, ok := twitch.AsAPIError(err); ok {
		// Twitch answered: 4xx, 500 and 503 come from Helix refusing the request; a 502
		// or 504 comes from a gateway that may have passed it on before giving up.
		return ae.Status == http.StatusBadGateway || ae.Status == http.StatusGatewayTimeout
	}
	if fault.CodeOf(err, "") != twitch.CodeNetwork {
		return false // the client gave up before sending (token, rate-limit wait)
	}
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "dial" {
		return false // no connection, no request
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		// A transport failure of another request (a token refresh before the send)
		// sent nothing; one of the send itself may have.
		if u, perr := url.Parse(ue.URL); perr == nil && !strings.HasSuffix(u.Path, sendPath) {
			return false
		}
	}
	// The send's transport failed, or its answer's body could not be read.
	return true
}

// unknownOutcome is the outcome of a send that may or may not have reached Twitch.
func (c *core) unknownOutcome(message string) outcome {
	return c.failed(CodeDeliveryUnknown, message)
}

// takenOver is the outcome for a claim whose earlier holder stopped mid-send.
func (c *core) takenOver() outcome {
	return c.unknownOutcome("an earlier attempt was sending this when it stopped (crash or timeout); " +
		"whether Twitch delivered it is unknown, so it is not sent again")
}

// partKey is the claim key of part i of event cid (a whisper is part 0).
func (c *core) partKey(cid string, i int) string { return fmt.Sprintf("%s:%s:%d", c.keyspace, cid, i) }

// sent is one send's final outcome as an attempt found or made it.
type sent struct {
	o   outcome
	key string
	// held: this attempt holds the claim (until leaseUntil), which it must finish.
	held       bool
	leaseUntil time.Time
	// finalized: an earlier attempt reported the event's outcome already.
	finalized bool
}

// fromClaim is the outcome of a claim ClaimSend found done, held or taken over, and
// ok false for a new claim (the caller sends).
func (c *core) fromClaim(ctx context.Context, key string, claim store.Claim) (sent, bool, error) {
	switch {
	case claim.State == store.Completed:
		return sent{o: decodeOutcome(claim.Result), key: key, finalized: claim.Finalized != ""}, true, nil
	case claim.State == store.Held:
		return sent{}, true, inProgress(key, claim)
	case claim.Sending:
		o := c.takenOver()
		c.log.WarnContext(ctx, c.name+": an earlier attempt stopped mid-send; not sending again",
			"key", key, "attempts", claim.Attempts, "code", o.Code)
		return sent{o: o, key: key, held: true, leaseUntil: claim.LeaseUntil}, true, nil
	}
	return sent{}, false, nil
}

// refused records an outcome decided without sending (nothing was sent), through a
// claim made without a budget slot, unless the send was claimed already.
func (c *core) refused(ctx context.Context, key, owner string, o outcome) (sent, error) {
	claim, _, err := c.claims.ClaimSend(ctx, key, owner, c.lease, nil)
	if err != nil {
		return sent{}, err
	}
	if r, done, err := c.fromClaim(ctx, key, claim); done {
		return r, err
	}
	return sent{o: o, key: key, held: true, leaseUntil: claim.LeaseUntil}, nil
}

// finalizeHeld publishes f, the event's outcome, and finishes the claim on key that
// owner holds until leaseUntil with o, the outcome of its send: step 3 above.
func (c *core) finalizeHeld(ctx context.Context, key, owner string, leaseUntil time.Time, o outcome, f event.FinalizeMessage) error {
	left := leaseUntil.Sub(c.now()) - c.lease/4
	if left <= 0 {
		c.log.WarnContext(ctx, c.name+": the claim's lease ran out before the outcome was reported; leaving it to the take-over",
			"key", key, "status", o.Status, "code", o.Code)
		return &fault.Error{Kind: fault.Transient, Code: CodeInProgress, RetryAt: leaseUntil,
			Message: fmt.Sprintf("%s: lease ran out at %s before the outcome was reported", key, leaseUntil.UTC().Format(time.RFC3339))}
	}
	pctx, cancel := context.WithTimeout(ctx, left)
	err := c.publishFinalize(pctx, f)
	cancel()
	if err != nil {
		// Keep the outcome, so that the retry reports it without sending.
		c.complete(ctx, key, owner, o)
		return err
	}
	if err := c.claims.Finish(ctx, key, owner, o.encode(), f.Status); err != nil {
		c.log.WarnContext(ctx, c.name+": finalize published but not recorded", "key", key, "error", err.Error())
	}
	return nil
}

// reported tells whether event cid's outcome was reported through one of its send
// claims (Finish); an error when one of them is held (being delivered now).
func (c *core) reported(ctx context.Context, cid string) (bool, error) {
	for i := 0; ; i++ { // a chat event's parts are claimed in order: stop at the first without a claim
		key := c.partKey(cid, i)
		claim, ok, err := c.claims.Peek(ctx, key)
		switch {
		case err != nil:
			return false, err
		case !ok:
			return false, nil
		case claim.State == store.Completed && claim.Finalized != "":
			return true, nil
		case claim.State == store.Held:
			return false, inProgress(key, claim)
		}
	}
}

// helixCtx bounds one Helix call.
func (c *core) helixCtx(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, c.helixTimeout)
}

// sentOutcome is a send Twitch accepted.
func (c *core) sentOutcome(messageID string) outcome {
	return outcome{Status: event.StatusSent, MessageID: messageID, At: event.Timestamp(c.now())}
}
