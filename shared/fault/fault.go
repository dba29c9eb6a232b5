// Package fault classifies errors so that every edge (a Cloud Function handler, the
// connector's loops) decides retry, dead-letter or give-up from one Kind, never from
// string matching.
//
// The kinds map to what a Pub/Sub-triggered handler does with a message:
//   - Invalid: the input can never be processed; dead-letter it and acknowledge.
//   - Permanent: the input was fine but the outside world refused it for good
//     (Twitch said 400/403/404); record a FAILED outcome and acknowledge.
//   - Transient: a retry may succeed (5xx, network, emulator restarting); return an
//     error so Pub/Sub redelivers with backoff.
//   - RateLimited: like Transient, but with a known time before which a retry is
//     pointless (RetryAt).
//   - Auth: credentials are missing, revoked or lack a scope; retrying without a
//     human fixing the token will not help.
package fault

import (
	"errors"
	"fmt"
	"time"
)

// Kind says what a caller should do with a failed operation.
type Kind int

// The kinds. Unknown is what an unclassified error reports; callers treat it as
// Transient, so an unexpected error is retried (bounded by Pub/Sub's dead-letter
// policy) rather than dropped.
const (
	Unknown Kind = iota
	Invalid
	Permanent
	Transient
	RateLimited
	Auth
)

func (k Kind) String() string {
	switch k {
	case Invalid:
		return "invalid"
	case Permanent:
		return "permanent"
	case Transient:
		return "transient"
	case RateLimited:
		return "rate_limited"
	case Auth:
		return "auth"
	default:
		return "unknown"
	}
}

// Error is a classified error. Code is a short machine-readable reason in
// SCREAMING_SNAKE_CASE (it becomes `error.code` in finalize and dead-letter
// messages); Message is for humans and must never contain a secret.
type Error struct {
	Kind    Kind
	Code    string
	Message string
	// RetryAt is set for RateLimited: the earliest time a retry can succeed.
	RetryAt time.Time
	Err     error
}

func (e *Error) Error() string {
	msg := e.Code
	if e.Message != "" {
		msg += ": " + e.Message
	}
	if e.Err != nil {
		msg += ": " + e.Err.Error()
	}
	return msg
}

func (e *Error) Unwrap() error { return e.Err }

// New returns a classified error.
func New(kind Kind, code, format string, args ...any) *Error {
	return &Error{Kind: kind, Code: code, Message: fmt.Sprintf(format, args...)}
}

// Wrap classifies err, keeping it in the chain.
func Wrap(kind Kind, code string, err error, format string, args ...any) *Error {
	return &Error{Kind: kind, Code: code, Message: fmt.Sprintf(format, args...), Err: err}
}

// KindOf returns the Kind of the first *Error in err's chain, or Unknown.
func KindOf(err error) Kind {
	var fe *Error
	if errors.As(err, &fe) {
		return fe.Kind
	}
	return Unknown
}

// CodeOf returns the Code of the first *Error in err's chain, or fallback.
func CodeOf(err error, fallback string) string {
	var fe *Error
	if errors.As(err, &fe) && fe.Code != "" {
		return fe.Code
	}
	return fallback
}

// Retryable reports whether retrying the operation may succeed.
func Retryable(err error) bool {
	switch KindOf(err) {
	case Transient, RateLimited, Unknown:
		return err != nil
	default:
		return false
	}
}

// RetryAfter returns how long to wait before a retry can succeed (zero when
// unknown or already past).
func RetryAfter(err error, now time.Time) time.Duration {
	var fe *Error
	if errors.As(err, &fe) && !fe.RetryAt.IsZero() && fe.RetryAt.After(now) {
		return fe.RetryAt.Sub(now)
	}
	return 0
}
