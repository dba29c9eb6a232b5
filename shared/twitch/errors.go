package twitch

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/bitbrat/twitch-edge/shared/fault"
)

// Codes of the classified errors this package returns (fault.Error.Code). They end up
// in finalize and dead-letter records, so they are part of our wire contract: add new
// ones, never rename.
const (
	CodeBadRequest             = "TWITCH_BAD_REQUEST"
	CodeUnauthorized           = "TWITCH_UNAUTHORIZED"
	CodeForbidden              = "TWITCH_FORBIDDEN"
	CodeNotFound               = "TWITCH_NOT_FOUND"
	CodeConflict               = "TWITCH_CONFLICT"
	CodeSubscriptionExists     = "SUBSCRIPTION_EXISTS"
	CodeUnprocessable          = "TWITCH_UNPROCESSABLE"
	CodeHTTPStatus             = "TWITCH_HTTP_ERROR"
	CodeRateLimited            = "TWITCH_RATE_LIMITED"
	CodeWhisperRateLimited     = "WHISPER_RATE_LIMITED"
	CodeTransportsLimit        = "WEBSOCKET_TRANSPORTS_LIMIT"
	CodeTotalCostLimit         = "SUBSCRIPTION_COST_LIMIT"
	CodeSubscriptionCountLimit = "SUBSCRIPTION_COUNT_LIMIT"
	CodeUnavailable            = "TWITCH_UNAVAILABLE"
	CodeNetwork                = "TWITCH_NETWORK"
	CodeMalformedResponse      = "TWITCH_MALFORMED_RESPONSE"
	CodeInvalidInput           = "TWITCH_INVALID_INPUT"
	CodeChatDropped            = "CHAT_DROPPED"
	CodeNoToken                = "TWITCH_NO_TOKEN"
	CodeTokenRevoked           = "TOKEN_REVOKED"
	CodeTokenRefreshFailed     = "TOKEN_REFRESH_FAILED"
	CodeTokenRefreshRejected   = "TOKEN_REFRESH_REJECTED"
	CodeTokenNotRefreshable    = "TOKEN_NOT_REFRESHABLE"
	CodeTokenInvalid           = "TOKEN_INVALID"
	CodeClientCredentials      = "TWITCH_CLIENT_CREDENTIALS"
)

// Flavour tells apart the different reasons Twitch answers 429. They need different
// reactions: a bucket or whisper limit passes with time, while the EventSub limits only
// clear when subscriptions (often orphans of dead sessions) are deleted.
type Flavour string

// The 429 flavours. FlavourNone is used for every non-429 error.
const (
	FlavourNone Flavour = ""
	// FlavourBucket is Helix's per-token token bucket (Ratelimit-* headers).
	FlavourBucket Flavour = "bucket"
	// FlavourWhisper is one of the whisper limits (3/s, 100/min, 40 recipients/day).
	FlavourWhisper Flavour = "whisper"
	// FlavourTransports is "number of websocket transports limit exceeded": more than
	// three WebSocket sessions with enabled subscriptions for one user token.
	FlavourTransports Flavour = "websocket_transports"
	// FlavourTotalCost is the max_total_cost limit of EventSub subscriptions.
	FlavourTotalCost Flavour = "total_cost"
	// FlavourSubscriptionCount is a limit on the number of subscriptions (per
	// connection, or per type and condition).
	FlavourSubscriptionCount Flavour = "subscription_count"
	// FlavourConduits is the limit on conduits per app (5): it clears only when a
	// conduit is deleted.
	FlavourConduits Flavour = "conduits"
)

// APIError is a non-success answer from Helix or the OAuth server. It is always
// returned inside a *fault.Error (errors.As finds both) so callers classify it with
// fault.KindOf and read the details here.
type APIError struct {
	// Status is the HTTP status code.
	Status int
	// Message is Twitch's "message" field (or a short excerpt of a non-JSON body).
	// Twitch does not echo credentials in it.
	Message string
	// Endpoint is "METHOD /path" without the query string (which can carry user ids
	// but never secrets; it is left out to keep log lines stable).
	Endpoint string
	// Flavour says which limit a 429 hit.
	Flavour Flavour
	// RetryAt is the Ratelimit-Reset time of a 429, zero if unknown.
	RetryAt time.Time
}

func (e *APIError) Error() string {
	s := "twitch " + e.Endpoint + ": " + strconv.Itoa(e.Status) + " " + http.StatusText(e.Status)
	if e.Flavour != FlavourNone {
		s += " (" + string(e.Flavour) + ")"
	}
	if e.Message != "" {
		s += ": " + e.Message
	}
	return s
}

// helixErrorBody is the JSON shape of every Helix and id.twitch.tv error.
type helixErrorBody struct {
	Error   string `json:"error"`
	Status  int    `json:"status"`
	Message string `json:"message"`
}

// flavourOf tells the 429 flavours apart. Twitch does not give them distinct codes, so
// this reads its message; the endpoint decides for whispers, whose limits Twitch
// reports without a distinguishing message.
func flavourOf(endpoint, message string) Flavour {
	m := strings.ToLower(message)
	switch {
	case strings.Contains(m, "conduit"):
		return FlavourConduits
	case strings.Contains(m, "transport"):
		return FlavourTransports
	case strings.Contains(m, "cost"):
		return FlavourTotalCost
	case strings.Contains(m, "maximum subscriptions") || strings.Contains(m, "subscription limit"):
		return FlavourSubscriptionCount
	case strings.Contains(endpoint, "/whispers") || strings.Contains(m, "whisper"):
		return FlavourWhisper
	}
	return FlavourBucket
}

// classify turns an API error into the classified error callers see.
func classify(e *APIError) *fault.Error {
	fe := &fault.Error{Err: e}
	switch {
	case e.Status == http.StatusTooManyRequests:
		fe.Kind = fault.RateLimited
		fe.RetryAt = e.RetryAt
		switch e.Flavour {
		case FlavourWhisper:
			fe.Code = CodeWhisperRateLimited
		case FlavourTransports:
			fe.Code = CodeTransportsLimit
		case FlavourTotalCost:
			fe.Code = CodeTotalCostLimit
		case FlavourSubscriptionCount:
			fe.Code = CodeSubscriptionCountLimit
		case FlavourConduits:
			fe.Code = CodeConduitLimit
		default:
			fe.Code = CodeRateLimited
		}
	case e.Status >= 500:
		fe.Kind, fe.Code = fault.Transient, CodeUnavailable
	case e.Status == http.StatusUnauthorized:
		fe.Kind, fe.Code = fault.Auth, CodeUnauthorized
	case e.Status == http.StatusBadRequest:
		fe.Kind, fe.Code = fault.Permanent, CodeBadRequest
	case e.Status == http.StatusForbidden:
		fe.Kind, fe.Code = fault.Permanent, CodeForbidden
	case e.Status == http.StatusNotFound:
		fe.Kind, fe.Code = fault.Permanent, CodeNotFound
	case e.Status == http.StatusConflict:
		fe.Kind, fe.Code = fault.Permanent, CodeConflict
		if strings.Contains(e.Endpoint, "/eventsub/subscriptions") {
			fe.Code = CodeSubscriptionExists
		}
	case e.Status == http.StatusUnprocessableEntity:
		fe.Kind, fe.Code = fault.Permanent, CodeUnprocessable
	case e.Status == http.StatusRequestTimeout:
		fe.Kind, fe.Code = fault.Transient, CodeUnavailable
	default:
		fe.Kind, fe.Code = fault.Permanent, CodeHTTPStatus
	}
	return fe
}

// AsAPIError returns the *APIError in err's chain, if any.
func AsAPIError(err error) (*APIError, bool) {
	var ae *APIError
	ok := errors.As(err, &ae)
	return ae, ok
}

// ChatDroppedError is what SendChatMessage returns (inside a Permanent *fault.Error
// with code CHAT_DROPPED) when Twitch answered 200 but did not send the message.
type ChatDroppedError struct {
	BroadcasterID string
	// Reason is Twitch's drop_reason (code and message), e.g. msg_duplicate.
	Reason DropReason
}

func (e *ChatDroppedError) Error() string {
	s := "chat message to " + e.BroadcasterID + " dropped by twitch"
	if e.Reason.Code != "" {
		s += ": " + e.Reason.Code
	}
	if e.Reason.Message != "" {
		s += ": " + e.Reason.Message
	}
	return s
}

func invalidInput(format string, args ...any) *fault.Error {
	return fault.New(fault.Invalid, CodeInvalidInput, format, args...)
}

func malformed(endpoint string, err error) *fault.Error {
	return fault.Wrap(fault.Transient, CodeMalformedResponse, err, "twitch %s: malformed response", endpoint)
}

// networkError classifies a transport failure. The *url.Error from net/http carries
// the request URL, which holds no secret (tokens travel in headers and form bodies,
// never in URLs), so it is safe to keep.
func networkError(endpoint string, err error) *fault.Error {
	return fault.Wrap(fault.Transient, CodeNetwork, err, "twitch %s", endpoint)
}

// errorFromResponse builds the classified error of a non-2xx response.
func errorFromResponse(endpoint string, status int, h http.Header, body []byte, now time.Time) *fault.Error {
	e := &APIError{Status: status, Endpoint: endpoint}
	var b helixErrorBody
	if err := jsonUnmarshal(body, &b); err == nil && (b.Message != "" || b.Error != "") {
		e.Message = b.Message
		if e.Message == "" {
			e.Message = b.Error
		}
	} else {
		e.Message = excerpt(body)
	}
	if status == http.StatusTooManyRequests {
		e.Flavour = flavourOf(endpoint, e.Message)
		if reset, ok := parseReset(h); ok && reset.After(now) {
			e.RetryAt = reset
		}
	}
	return classify(e)
}

// excerpt keeps a short, printable prefix of a non-JSON error body (an HTML page from
// a proxy, say) so the error says something useful without dumping the whole page.
func excerpt(body []byte) string {
	const max = 200
	s := strings.TrimSpace(string(body))
	if len(s) > max {
		s = s[:max] + "…"
	}
	return strings.Map(func(r rune) rune {
		if r < 0x20 {
			return ' '
		}
		return r
	}, s)
}

func parseReset(h http.Header) (time.Time, bool) {
	v := h.Get("Ratelimit-Reset")
	if v == "" {
		return time.Time{}, false
	}
	sec, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
	if err != nil || sec <= 0 {
		return time.Time{}, false
	}
	return time.Unix(sec, 0), true
}

// errorf formats an error message; kept here so messages share one style.
func errorf(format string, args ...any) error { return fmt.Errorf(format, args...) }

// wrapf adds the operation to err's message, keeping err (and its classification) in
// the chain.
func wrapf(err error, format string, args ...any) error {
	return fmt.Errorf(format+": %w", append(args, err)...)
}
