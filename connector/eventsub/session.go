// Package eventsub holds the Twitch EventSub WebSocket: it connects, reads the
// welcome, creates the configured subscriptions on every new session within Twitch's
// ten-second window, watches keepalives, hands a session over on session_reconnect
// without losing or repeating a notification, records revocations, cleans up
// orphaned subscriptions, and passes every fresh notification frame, unchanged, to a
// Sink. It never sends a data frame (Twitch closes the socket with 4001 if it does).
package eventsub

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"

	"github.com/bitbrat/twitch-edge/shared/fault"
	"github.com/bitbrat/twitch-edge/shared/twitch"
)

// Helix is what the session needs from the Twitch API.
type Helix interface {
	CreateEventSubSubscription(ctx context.Context, r twitch.CreateSubscriptionRequest) (*twitch.CreatedSubscription, error)
	ListEventSubSubscriptions(ctx context.Context, f twitch.ListSubscriptionsFilter) (*twitch.SubscriptionList, error)
	DeleteEventSubSubscription(ctx context.Context, id string) error
}

// Sink receives fresh notification frames. Forward may block when the sink is full
// (backpressure); it must not lose a frame it accepted.
type Sink interface {
	Forward(ctx context.Context, f Frame) error
}

// State records the session and its subscriptions (in Firestore in production).
// Failures are logged, never fatal: the socket matters more than the record.
type State interface {
	SessionStarted(ctx context.Context, sessionID string, connectedAt time.Time) error
	SubscriptionChanged(ctx context.Context, sub SubscriptionState) error
}

// SubscriptionState is one subscription's last known status.
type SubscriptionState struct {
	Key       string
	ID        string
	Type      string
	Version   string
	Condition map[string]string
	SessionID string
	// Status is Twitch's status ("enabled", a revocation reason, ...) or "failed"
	// when creating it failed (Reason says why).
	Status    string
	Reason    string
	UpdatedAt time.Time
}

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
	Now           func() time.Time
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
	if o.Metrics == nil {
		o.Metrics = NewMetrics(nil)
	}
}

// Session keeps one EventSub WebSocket session alive. Run it once.
type Session struct {
	o Options

	mu        sync.Mutex
	connected bool
	sessionID string
	subs      map[string]SubscriptionState // by spec key
	revoked   map[string]string            // spec key → reason; not resubscribed
	// records carries state writes to one writer goroutine, in the order they
	// happened in memory, so Firestore ends with the last word and neither the socket
	// nor subscribing ever waits for Firestore.
	records chan func(context.Context) error
	// work tracks goroutines started per connection (subscribing), which Run waits
	// for before it stops the writer.
	work sync.WaitGroup
}

// New returns a Session.
func New(o Options) *Session {
	o.defaults()
	return &Session{o: o, subs: map[string]SubscriptionState{}, revoked: map[string]string{},
		records: make(chan func(context.Context) error, 1024)}
}

// Status is a snapshot for health checks and logs.
type Status struct {
	Connected bool
	SessionID string
	// Ready: connected, and every subscription not revoked is enabled.
	Ready         bool
	Subscriptions []SubscriptionState
}

// Status returns the current state.
func (s *Session) Status() Status {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := Status{Connected: s.connected, SessionID: s.sessionID}
	ready := s.connected
	for _, sp := range s.o.Specs {
		k := sp.Key()
		sub, ok := s.subs[k]
		if ok {
			st.Subscriptions = append(st.Subscriptions, sub)
		}
		if _, gone := s.revoked[k]; gone {
			continue
		}
		if !ok || sub.Status != twitch.StatusEnabled || sub.SessionID != s.sessionID {
			ready = false
		}
	}
	st.Ready = ready
	return st
}

// errors that end a connection, named for logs and metrics.
var (
	errKeepalive = errors.New("keepalive timeout: no message within the session's keepalive window")
	errNoWelcome = errors.New("no session_welcome")
)

// Run connects and keeps reconnecting until ctx is cancelled. It returns ctx's error.
func (s *Session) Run(ctx context.Context) error {
	writerDone := make(chan struct{})
	go s.writeRecords(writerDone)
	defer func() {
		s.work.Wait()
		close(s.records)
		<-writerDone
	}()
	attempt := 0
	for {
		if s.nothingToSubscribe() {
			// Every subscription was revoked for good: a socket without subscriptions
			// would only be closed by Twitch (4003) over and over.
			s.o.Log.Error("eventsub: every subscription is revoked; not connecting until restarted with new authorization")
			<-ctx.Done()
			return ctx.Err()
		}
		started := s.o.Now()
		err := s.runConnection(ctx, s.o.URL)
		s.setConnected(false, "")
		if ctx.Err() != nil {
			return ctx.Err()
		}
		reason := reasonOf(err)
		s.o.Metrics.reconnect(reason)
		s.o.Log.Warn("eventsub: connection lost, reconnecting", "reason", reason, "error", errString(err))
		// A connection that lived a while earns an immediate retry; repeated quick
		// failures back off (jittered) so Twitch is not hammered.
		if s.o.Now().Sub(started) > time.Minute {
			attempt = 0
		}
		if attempt > 0 {
			d := backoff(attempt, s.o.MinBackoff, s.o.MaxBackoff)
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(d):
			}
		}
		attempt++
	}
}

func backoff(attempt int, lo, hi time.Duration) time.Duration {
	d := lo << min(attempt-1, 16)
	if d > hi || d <= 0 {
		d = hi
	}
	// Full jitter in [d/2, d].
	return d/2 + rand.N(d/2+1)
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// reasonOf names why a connection ended, for the reconnects metric.
func reasonOf(err error) string {
	switch {
	case errors.Is(err, errKeepalive):
		return "keepalive"
	case errors.Is(err, errNoWelcome):
		return "no_welcome"
	}
	switch websocket.CloseStatus(err) {
	case twitch.CloseInternalServerError:
		return "4000_server_error"
	case twitch.CloseClientSentInbound:
		return "4001_client_sent_inbound"
	case twitch.CloseFailedPingPong:
		return "4002_ping_pong"
	case twitch.CloseConnectionUnused:
		return "4003_unused"
	case twitch.CloseReconnectGrace:
		return "4004_reconnect_grace"
	case twitch.CloseNetworkTimeout:
		return "4005_network_timeout"
	case twitch.CloseNetworkError:
		return "4006_network_error"
	case twitch.CloseInvalidReconnect:
		return "4007_invalid_reconnect"
	case websocket.StatusNormalClosure, websocket.StatusGoingAway:
		return "closed_by_server"
	case -1:
		if err != nil && (fault.KindOf(err) != fault.Unknown) {
			return "dial_" + fault.KindOf(err).String()
		}
		return "dropped"
	}
	return fmt.Sprintf("close_%d", websocket.CloseStatus(err))
}

func (s *Session) setConnected(c bool, id string) {
	s.mu.Lock()
	s.connected, s.sessionID = c, id
	s.mu.Unlock()
	if c {
		s.o.Metrics.Connected.Set(1)
	} else {
		s.o.Metrics.Connected.Set(0)
	}
}

// conn is one WebSocket with its reader goroutine.
type conn struct {
	ws      *websocket.Conn
	session twitch.Session
	url     string
	// lastRead is when the reader last received a frame (unix ns): the watchdog's
	// measure of Twitch's silence, independent of how fast frames are processed.
	lastRead atomic.Int64
}

type readResult struct {
	c    *conn
	data []byte
	at   time.Time
	err  error
}

// dial connects to url and reads the welcome.
func (s *Session) dial(ctx context.Context, url string) (*conn, error) {
	dctx, cancel := context.WithTimeout(ctx, s.o.WelcomeTimeout)
	defer cancel()
	ws, _, err := websocket.Dial(dctx, url, &websocket.DialOptions{HTTPClient: s.o.HTTPClient})
	if err != nil {
		return nil, fault.Wrap(fault.Transient, "EVENTSUB_DIAL", err, "dial eventsub")
	}
	ws.SetReadLimit(s.o.MaxFrameBytes)
	_, data, err := ws.Read(dctx)
	if err != nil {
		ws.CloseNow()
		return nil, fmt.Errorf("%w: %w", errNoWelcome, err)
	}
	msg, err := twitch.DecodeMessage(data)
	if err != nil || msg.Metadata.MessageType != twitch.MessageTypeWelcome {
		ws.CloseNow()
		return nil, fmt.Errorf("%w: first frame is not a welcome (%v)", errNoWelcome, err)
	}
	sess, err := msg.Session()
	if err != nil {
		ws.CloseNow()
		return nil, fmt.Errorf("%w: %w", errNoWelcome, err)
	}
	return &conn{ws: ws, session: *sess, url: url}, nil
}

// read pumps c's frames into out until the socket ends. It never drops a frame it
// read: runConnection drains out until every reader has returned.
func (s *Session) read(ctx context.Context, c *conn, out chan<- readResult) {
	for {
		_, data, err := c.ws.Read(ctx)
		now := s.o.Now()
		if err == nil {
			c.lastRead.Store(now.UnixNano())
		}
		out <- readResult{c: c, data: data, at: now, err: err}
		if err != nil {
			return
		}
	}
}

// drainQuiet is how long the old socket of a hand-over must stay silent before it is
// closed.
const drainQuiet = 750 * time.Millisecond

// handover is the outcome of dialing a reconnect_url.
type handover struct {
	c   *conn
	err error
}

// runConnection holds one logical session, across any number of session_reconnect
// hand-overs, until it is lost.
func (s *Session) runConnection(parent context.Context, url string) error {
	// Work started for this connection (subscribing, clean-up, a hand-over dial) ends
	// with it, so a slow call cannot act on a later session's behalf.
	ctx, cancel := context.WithCancel(parent)
	defer cancel()
	cur, err := s.dial(ctx, url)
	if err != nil {
		return err
	}
	cur.lastRead.Store(s.o.Now().UnixNano())
	frames := make(chan readResult, 64)
	var readers sync.WaitGroup
	startReader := func(c *conn) {
		readers.Add(1)
		go func() { defer readers.Done(); s.read(ctx, c, frames) }()
	}
	open := map[*conn]bool{cur: true}
	handovers := make(chan handover, 1)
	handingOver := false
	var draining *conn // the old socket of a hand-over, read until quiet
	defer func() {
		cancel() // ends an in-flight hand-over dial and this connection's subscribing
		if handingOver {
			if h := <-handovers; h.c != nil {
				h.c.ws.CloseNow()
			}
		}
		// CloseNow, not a close handshake: the reader holds the socket's read lock, and
		// a handshake would wait seconds for it on exactly the sockets that are dead.
		for c := range open {
			c.ws.CloseNow()
		}
		s.drainFrames(parent, frames, &readers)
	}()
	startReader(cur)
	s.onNewSession(ctx, cur, true)

	watchdog := time.NewTimer(s.keepaliveWindow(cur))
	defer watchdog.Stop()
	drain := time.NewTimer(time.Hour)
	drain.Stop()
	defer drain.Stop()
	closeDrained := func() {
		if draining != nil {
			delete(open, draining)
			go draining.ws.Close(websocket.StatusNormalClosure, "reconnected") // the handshake may take a while
			draining = nil
		}
	}

	for {
		select {
		case <-ctx.Done():
			return parent.Err()
		case <-watchdog.C:
			// Silence is measured from the last frame received. Frames still queued
			// mean this process is behind (backpressure), not that Twitch is silent.
			window := s.keepaliveWindow(cur)
			silent := s.o.Now().Sub(time.Unix(0, cur.lastRead.Load()))
			if len(frames) > 0 || silent < window {
				watchdog.Reset(max(window-silent, 100*time.Millisecond))
				continue
			}
			return errKeepalive
		case <-drain.C:
			closeDrained()
		case h := <-handovers:
			handingOver = false
			if h.err != nil {
				// Keep the old socket: Twitch closes it (4004) if no hand-over happens,
				// and that ends this session the ordinary way.
				s.o.Log.Error("eventsub: reconnect URL failed; staying on the old socket", "error", h.err.Error())
				continue
			}
			closeDrained() // a second hand-over before the first drained
			draining, cur = cur, h.c
			cur.lastRead.Store(s.o.Now().UnixNano())
			open[cur] = true
			startReader(cur)
			s.onNewSession(ctx, cur, false)
			// The new socket has welcomed us. Frames already in flight on the old one
			// must not be lost: keep reading it until it has been quiet for a moment
			// (or Twitch closes it), then close it. The window drops any repeat.
			resetTimer(drain, drainQuiet)
			s.o.Metrics.Handovers.Inc()
			resetTimer(watchdog, s.keepaliveWindow(cur))
		case r := <-frames:
			if r.err != nil {
				if r.c != cur {
					// The old socket of a hand-over ended: expected.
					if r.c == draining {
						delete(open, draining)
						draining = nil
					}
					continue
				}
				return r.err
			}
			if r.c == draining {
				resetTimer(drain, drainQuiet)
			}
			reconnectURL, err := s.handleFrame(ctx, r)
			if err != nil {
				return err
			}
			if reconnectURL != "" && !handingOver {
				handingOver = true
				go func() {
					c, err := s.dial(ctx, reconnectURL)
					handovers <- handover{c, err}
				}()
			}
		}
	}
}

// drainFrames forwards the frames already read when a connection ends (Twitch will
// not send them again), until every reader has returned. Forwarding is bounded in
// time: on shutdown the relay may be full.
func (s *Session) drainFrames(parent context.Context, frames chan readResult, readers *sync.WaitGroup) {
	done := make(chan struct{})
	go func() { readers.Wait(); close(done) }()
	ctx, cancel := context.WithTimeout(context.WithoutCancel(parent), 5*time.Second)
	defer cancel()
	handle := func(r readResult) {
		if r.err == nil {
			if _, err := s.handleFrame(ctx, r); err != nil {
				s.o.Log.Error("eventsub: frame read before the connection ended could not be forwarded", "error", err.Error())
			}
		}
	}
	for {
		select {
		case r := <-frames:
			handle(r)
		case <-done:
			for {
				select {
				case r := <-frames:
					handle(r)
				default:
					return
				}
			}
		}
	}
}

func (s *Session) keepaliveWindow(c *conn) time.Duration {
	secs := 10
	if c.session.KeepaliveTimeoutSeconds != nil && *c.session.KeepaliveTimeoutSeconds > 0 {
		secs = *c.session.KeepaliveTimeoutSeconds
	}
	return time.Duration(secs)*time.Second + s.o.KeepaliveGrace
}

func resetTimer(t *time.Timer, d time.Duration) {
	t.Stop()
	t.Reset(d)
}

func (s *Session) onNewSession(ctx context.Context, c *conn, subscribe bool) {
	s.setConnected(true, c.session.ID)
	s.o.Log.Info("eventsub: session welcomed", "sessionId", c.session.ID, "handover", !subscribe,
		"keepaliveSeconds", c.keepalive())
	if s.o.State != nil {
		id, at := c.session.ID, c.session.ConnectedAt
		s.enqueueRecord(func(ctx context.Context) error { return s.o.State.SessionStarted(ctx, id, at) })
	}
	if subscribe {
		// Subscriptions must exist within ten seconds of the welcome; create them
		// while the reader keeps the socket serviced.
		s.work.Add(1)
		go func() { defer s.work.Done(); s.subscribeAll(ctx) }()
		return
	}
	// After a hand-over the subscriptions carried over: only their session changed.
	s.mu.Lock()
	for k, sub := range s.subs {
		if sub.Status == twitch.StatusEnabled {
			sub.SessionID = c.session.ID
			s.subs[k] = sub
		}
	}
	s.mu.Unlock()
}

func (c *conn) keepalive() int {
	if c.session.KeepaliveTimeoutSeconds == nil {
		return 0
	}
	return *c.session.KeepaliveTimeoutSeconds
}

// handleFrame acts on one frame. It returns the reconnect URL of a
// session_reconnect, or an error that ends the connection (a sink that stopped).
func (s *Session) handleFrame(ctx context.Context, r readResult) (string, error) {
	f, err := ParseFrame(r.data, r.at)
	if err != nil {
		// Twitch sent something we cannot read: say so, keep the socket.
		s.o.Metrics.BadFrames.Inc()
		s.o.Log.Error("eventsub: unreadable frame", "error", err.Error(), "bytes", len(r.data))
		return "", nil
	}
	switch f.MessageType {
	case twitch.MessageTypeKeepalive:
		s.o.Metrics.Keepalives.Inc()
	case twitch.MessageTypeNotification:
		switch s.o.Window.Check(f.MessageID, f.MessageTimestamp, r.at) {
		case Duplicate:
			s.o.Metrics.Duplicates.Inc()
			s.o.Log.Debug("eventsub: duplicate notification dropped", "eventsubMessageId", f.MessageID)
			return "", nil
		case Stale:
			s.o.Metrics.Stale.Inc()
			s.o.Log.Warn("eventsub: stale notification dropped", "eventsubMessageId", f.MessageID,
				"messageTimestamp", f.MessageTimestamp, "subscriptionType", f.SubscriptionType)
			return "", nil
		}
		s.o.Metrics.Notifications.Inc()
		if err := s.o.Sink.Forward(ctx, f); err != nil {
			return "", fmt.Errorf("forward notification %s: %w", f.MessageID, err)
		}
	case twitch.MessageTypeReconnect:
		msg, err := twitch.DecodeMessage(r.data)
		if err != nil {
			return "", nil
		}
		sess, err := msg.Session()
		if err != nil || sess.ReconnectURL == nil || *sess.ReconnectURL == "" {
			s.o.Log.Error("eventsub: session_reconnect without reconnect_url", "error", errString(err))
			return "", nil
		}
		s.o.Log.Info("eventsub: session_reconnect, handing over", "sessionId", sess.ID)
		return *sess.ReconnectURL, nil
	case twitch.MessageTypeRevocation:
		s.handleRevocation(ctx, r.data)
	case twitch.MessageTypeWelcome:
		// Only the first frame of a socket is a welcome; dial reads it. Another one
		// is unexpected but harmless.
		s.o.Log.Warn("eventsub: unexpected session_welcome mid-session")
	default:
		s.o.Log.Warn("eventsub: unknown message type ignored", "messageType", f.MessageType)
	}
	return "", nil
}
