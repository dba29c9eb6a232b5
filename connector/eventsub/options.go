package eventsub

import (
	"log/slog"
	"net/http"
	"time"
)

// Options configure a Session. Zero values take the defaults stated.
type Options struct {
	// URL is the EventSub WebSocket URL (with keepalive_timeout_seconds if wanted).
	URL string
	// Specs are the subscriptions to create on every new session.
	Specs []Spec
	Helix Helix
	Sink  Sink
	// State may be nil.
	State State
	// Window dedupes notifications (default NewWindow(100_000)).
	Window *Window
	Log    *slog.Logger
	// Metrics may be nil.
	Metrics *Metrics
	// KeepaliveGrace is added to the session's keepalive timeout before the
	// connection is declared dead (default 1 s).
	KeepaliveGrace time.Duration
	// WelcomeTimeout bounds the wait for session_welcome after dialing (default 10 s).
	WelcomeTimeout time.Duration
	// MinBackoff and MaxBackoff bound the jittered wait between reconnect attempts
	// (defaults 500 ms and 30 s). The first attempt after a drop is immediate.
	MinBackoff, MaxBackoff time.Duration
	// HTTPClient dials the socket (default http.DefaultClient).
	HTTPClient *http.Client
	// MaxFrameBytes bounds one frame (default 1 MiB; Twitch's are a few KiB).
	MaxFrameBytes int64
	// Revoked are specs (by key) revoked for good before this session began, with
	// the reason (the state an earlier instance recorded): not subscribed at once.
	Revoked map[string]string
	// RevokedRetry is how often subscriptions revoked for good are tried again
	// (default 30 min); RetryRevoked tries at once (the token changed).
	RevokedRetry time.Duration
	// Overlap, while active, marks forwarded frames (a hand-off between instances is
	// in progress) and keeps this session from deleting live subscriptions of other
	// sessions on a limit error: they are the other instance's. May be nil.
	Overlap *Overlap
	Now     func() time.Time
}

func (o *Options) defaults() {
	if o.Window == nil {
		o.Window = NewWindow(100_000)
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.KeepaliveGrace == 0 {
		o.KeepaliveGrace = time.Second
	}
	if o.WelcomeTimeout == 0 {
		o.WelcomeTimeout = 10 * time.Second
	}
	if o.MinBackoff == 0 {
		o.MinBackoff = 500 * time.Millisecond
	}
	if o.MaxBackoff == 0 {
		o.MaxBackoff = 30 * time.Second
	}
	if o.HTTPClient == nil {
		o.HTTPClient = http.DefaultClient
	}
	if o.MaxFrameBytes == 0 {
		o.MaxFrameBytes = 1 << 20
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.RevokedRetry == 0 {
		o.RevokedRetry = 30 * time.Minute
	}
	if o.Metrics == nil {
		o.Metrics = NewMetrics(nil)
	}
}
