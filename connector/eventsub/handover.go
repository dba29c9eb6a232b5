package eventsub

import (
	"context"
	"sync"
	"time"

	"github.com/coder/websocket"
)

// drainQuiet is how long the old socket of a hand-over must stay silent before it is
// closed.
const drainQuiet = 750 * time.Millisecond

// dialResult is the outcome of dialing a reconnect_url.
type dialResult struct {
	c   *conn
	err error
}

// handover is the set of sockets one logical session reads across
// session_reconnect: the current socket, the old one of a hand-over still being
// drained, and a dial of the reconnect_url in flight. Every socket's reader feeds
// frames; only the connection loop's goroutine calls its methods.
type handover struct {
	s   *Session
	ctx context.Context // the connection's: ends the readers and an in-flight dial

	frames  chan readResult
	readers sync.WaitGroup
	open    map[*conn]bool

	cur      *conn
	draining *conn // the old socket of a hand-over, read until quiet
	dialing  bool
	dialed   chan dialResult
	drain    *time.Timer // fires when draining has been quiet for drainQuiet
}

func newHandover(ctx context.Context, s *Session, first *conn) *handover {
	h := &handover{s: s, ctx: ctx, frames: make(chan readResult, 64), open: map[*conn]bool{},
		dialed: make(chan dialResult, 1), drain: time.NewTimer(time.Hour)}
	h.drain.Stop()
	h.cur = first
	h.read(first)
	return h
}

// read starts c's reader and counts c among the open sockets.
func (h *handover) read(c *conn) {
	c.lastRead.Store(h.s.o.Now().UnixNano())
	h.open[c] = true
	h.readers.Add(1)
	go func() { defer h.readers.Done(); h.s.read(h.ctx, c, h.frames) }()
}

// begin dials a reconnect_url in the background, unless a dial is in flight.
func (h *handover) begin(url string) {
	if h.dialing {
		return
	}
	h.dialing = true
	go func() {
		c, err := h.s.dial(h.ctx, url)
		h.dialed <- dialResult{c, err}
	}()
}

// complete takes the result of begin's dial. On success the new socket becomes
// current and the old one drains; it reports whether the session moved.
func (h *handover) complete(d dialResult) bool {
	h.dialing = false
	if d.err != nil {
		// Keep the old socket: Twitch closes it (4004) if no hand-over happens, and
		// that ends this session the ordinary way.
		h.s.o.Log.Error("eventsub: reconnect URL failed; staying on the old socket", "error", d.err.Error())
		return false
	}
	h.closeDrained() // a second hand-over before the first drained
	h.draining, h.cur = h.cur, d.c
	h.read(h.cur)
	h.s.onNewSession(h.ctx, h.cur, false)
	// The new socket has welcomed us. Frames already in flight on the old one must
	// not be lost: keep reading it until it has been quiet for a moment (or Twitch
	// closes it), then close it. The window drops any repeat.
	resetTimer(h.drain, drainQuiet)
	return true
}

// heard notes a frame from c: a draining socket that still talks is not quiet yet.
func (h *handover) heard(c *conn) {
	if c == h.draining {
		resetTimer(h.drain, drainQuiet)
	}
}

// ended notes that c's reader stopped; it reports whether that ends the session
// (c is current). The old socket of a hand-over ending is expected.
func (h *handover) ended(c *conn) bool {
	if c == h.cur {
		return true
	}
	if c == h.draining {
		delete(h.open, c)
		h.draining = nil
	}
	return false
}

// closeDrained closes the old socket of a hand-over.
func (h *handover) closeDrained() {
	if h.draining == nil {
		return
	}
	delete(h.open, h.draining)
	go h.draining.ws.Close(websocket.StatusNormalClosure, "reconnected") // the handshake may take a while
	h.draining = nil
}

// silence reports whether the current socket has been silent longer than its
// keepalive window, and otherwise how long until it could be. Silence is measured
// from the last frame received: frames still queued mean this process is behind
// (backpressure), not that Twitch is silent.
func (h *handover) silence() (wait time.Duration, dead bool) {
	window := h.s.keepaliveWindow(h.cur)
	silent := h.s.o.Now().Sub(time.Unix(0, h.cur.lastRead.Load()))
	if len(h.frames) > 0 || silent < window {
		return max(window-silent, 100*time.Millisecond), false
	}
	return 0, true
}

// close ends every socket and forwards the frames already read. The connection's
// context must be cancelled first (it ends an in-flight dial and the readers).
func (h *handover) close(parent context.Context) {
	h.drain.Stop()
	if h.dialing {
		if d := <-h.dialed; d.c != nil {
			d.c.ws.CloseNow()
		}
	}
	// CloseNow, not a close handshake: the reader holds the socket's read lock, and a
	// handshake would wait seconds for it on exactly the sockets that are dead.
	for c := range h.open {
		c.ws.CloseNow()
	}
	h.s.drainFrames(parent, h.frames, &h.readers)
}

// runConnection holds one logical session, across any number of session_reconnect
// hand-overs, until it is lost.
func (s *Session) runConnection(parent context.Context, url string) error {
	// Work started for this connection (subscribing, clean-up, a hand-over dial) ends
	// with it, so a slow call cannot act on a later session's behalf.
	ctx, cancel := context.WithCancel(parent)
	defer cancel()
	first, err := s.dial(ctx, url)
	if err != nil {
		return err
	}
	h := newHandover(ctx, s, first)
	defer func() {
		cancel()
		h.close(parent)
	}()
	s.onNewSession(ctx, first, true)

	watchdog := time.NewTimer(s.keepaliveWindow(first))
	defer watchdog.Stop()
	revokedRetry := time.NewTicker(s.o.RevokedRetry)
	defer revokedRetry.Stop()
	for {
		select {
		case <-ctx.Done():
			return parent.Err()
		case <-revokedRetry.C:
			s.retryRevokedOn(ctx)
		case <-s.retry:
			s.retryRevokedOn(ctx)
		case <-watchdog.C:
			wait, dead := h.silence()
			if dead {
				return errKeepalive
			}
			watchdog.Reset(wait)
		case <-h.drain.C:
			h.closeDrained()
		case d := <-h.dialed:
			if h.complete(d) {
				s.o.Metrics.Handovers.Inc()
				resetTimer(watchdog, s.keepaliveWindow(h.cur))
			}
		case r := <-h.frames:
			if r.err != nil {
				if h.ended(r.c) {
					return r.err
				}
				continue
			}
			h.heard(r.c)
			reconnectURL, err := s.handleFrame(ctx, r)
			if err != nil {
				return err
			}
			if reconnectURL != "" {
				h.begin(reconnectURL)
			}
		}
	}
}

func resetTimer(t *time.Timer, d time.Duration) {
	t.Stop()
	t.Reset(d)
}

// retryRevokedOn subscribes, on the live session, what was revoked for good.
func (s *Session) retryRevokedOn(ctx context.Context) {
	if !s.unrevoke() {
		return
	}
	s.o.Log.Info("eventsub: retrying revoked subscriptions on the current session")
	s.work.Add(1)
	go func() { defer s.work.Done(); s.subscribeAll(ctx) }()
}
