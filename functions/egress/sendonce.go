package egress

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/bitbrat/twitch-edge/shared/event"
	"github.com/bitbrat/twitch-edge/shared/fault"
	"github.com/bitbrat/twitch-edge/shared/twitch"
)

// No chat message or whisper is sent twice. Every send is claimed (Claims.Acquire)
// and, just before the Helix request leaves, marked in flight (Claims.MarkSending,
// which also proves the claim is still ours). Afterwards the claim is completed with
// the outcome, or released when Twitch's answer says nothing was sent (429, 500, 503,
// a refused token, a connection that was never made). Everything else — a timeout, a
// reset connection, a gateway error — may have reached Twitch, so the send is not
// repeated: it is finalized FAILED with CodeDeliveryUnknown. A take-over of a claim
// whose holder died after the mark reports the same. Pub/Sub's redeliveries, at any
// timing, then find a completed claim and send nothing.

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

// markSending marks key in flight just before the Helix call. An error means: do not
// send. A lost claim keeps its new holder's lease (nothing is released).
func (c *core) markSending(ctx context.Context, key, owner string) error {
	err := c.claims.MarkSending(ctx, key, owner, c.lease)
	if err != nil && fault.CodeOf(err, "") != CodeInProgress {
		c.release(ctx, key, owner)
	}
	return err
}

// helixCtx bounds one Helix call.
func (c *core) helixCtx(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, c.helixTimeout)
}

// sentOutcome is a send Twitch accepted.
func (c *core) sentOutcome(messageID string) outcome {
	return outcome{Status: event.StatusSent, MessageID: messageID, At: event.Timestamp(c.now())}
}
