package main

import (
	"context"
	"sync"
	"time"

	"github.com/bitbrat/twitch-edge/connector/eventsub"
	"github.com/bitbrat/twitch-edge/shared/store"
)

// The make-before-break hand-off between two instances (a deploy or a restart with a
// standby). Break-before-make loses what Twitch sends while no socket is subscribed
// (about 0.2 s of traffic per hand-off, measured before this existed): so the holder,
// told to stop, keeps its session and asks for a successor in Firestore; a standby
// that sees the request opens its own session and subscribes at once, says it is
// ready, and the holder lets go only then (or when its wait runs out). During the
// overlap Twitch sends each event to both sessions, each copy with its own
// message_id: both instances mark what they forward then (eventsub.Overlap), and
// Normalize dedupes marked frames by their content. The lease stays what decides
// who holds the session afterwards; the successor takes it when the holder releases
// it. Twitch allows three WebSocket connections per user: two sessions, plus one
// session_reconnect hand-over in flight, fit.

// handoffFresh: a request older than this is not answered (its holder has stopped
// by now; clocks of two instances may differ by a little).
const handoffFresh = 30 * time.Second

// overlapTail is how long the successor keeps marking frames after it took the
// lease: a frame the old holder read is published before it releases the lease, but
// the successor may read its own copy of the same event a moment later.
const overlapTail = 10 * time.Second

// handoff runs both sides of the hand-off for one App.
type handoff struct {
	a   *App
	rec *store.Handoff
	// ov marks the frames of this App's session (one session at a time).
	ov *eventsub.Overlap

	mu       sync.Mutex
	early    *earlySession // a session opened for another instance's request
	answered time.Time     // the request last answered
	tail     *time.Timer   // ends the overlap after a take-over
}

// earlySession is a session a standby runs before it holds the lease.
type earlySession struct {
	s      *eventsub.Session
	from   string // the instance whose request it answers
	cancel context.CancelFunc
	done   chan struct{}
}

func newHandoff(a *App) *handoff {
	return &handoff{a: a, rec: store.NewHandoff(a.deps.Firestore, "eventsub", nil), ov: &eventsub.Overlap{}}
}

// start watches for other instances' requests until ctx ends; the returned stop
// closes an early session not taken over and waits for the watcher.
func (h *handoff) start(ctx context.Context) (stop func()) {
	wctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); h.watch(wctx) }()
	return func() {
		cancel()
		<-done
		h.dropEarly("shutting down")
	}
}

func (h *handoff) watch(ctx context.Context) {
	for ctx.Err() == nil {
		h.a.log.Debug("connector: watching for hand-off requests", "host", firestoreHost(h.a.cfg))
		err := h.rec.Watch(ctx, func(st store.HandoffState) { h.consider(ctx, st) })
		if ctx.Err() != nil {
			return
		}
		h.a.log.Warn("connector: hand-off watch failed; retrying in 2s", "host", firestoreHost(h.a.cfg), "error", err.Error())
		select {
		case <-ctx.Done():
		case <-time.After(2 * time.Second):
		}
	}
}

// consider answers a fresh request of another instance by opening a session.
func (h *handoff) consider(ctx context.Context, st store.HandoffState) {
	me := h.a.cfg.InstanceID
	if st.RequestedBy == "" || st.RequestedBy == me || time.Since(st.RequestedAt) > handoffFresh {
		return
	}
	h.a.mu.Lock()
	holding := h.a.holding
	h.a.mu.Unlock()
	h.mu.Lock()
	defer h.mu.Unlock()
	if holding || h.early != nil || st.RequestedAt.Equal(h.answered) {
		return
	}
	h.answered = st.RequestedAt
	h.a.log.Info("connector: hand-off requested; opening a session before the holder lets go",
		"holder", st.RequestedBy, "instance", me)
	// Not ended by ctx: once taken over, the session lives as long as the lease.
	ectx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	h.ov.Set(true)
	e := &earlySession{s: h.a.newSession(ectx), from: st.RequestedBy, cancel: cancel, done: make(chan struct{})}
	h.early = e
	go func() { defer close(e.done); _ = e.s.Run(ectx) }()
	go h.announce(ectx, e, st.RequestedAt)
}

// ack tells the holder that a successor is on its way (it waits for one only then).
func (h *handoff) ack(ctx context.Context, requestedAt time.Time) {
	actx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := h.rec.Ack(actx, requestedAt, h.a.cfg.InstanceID); err != nil {
		h.a.log.Warn("connector: could not acknowledge the hand-off request", "host", firestoreHost(h.a.cfg), "error", err.Error())
	}
}

// announce records readiness once the early session has every subscription.
func (h *handoff) announce(ctx context.Context, e *earlySession, requestedAt time.Time) {
	h.ack(ctx, requestedAt)
	wctx, cancel := context.WithTimeout(ctx, handoffFresh)
	defer cancel()
	h.a.log.Info("connector: waiting for the early session's subscriptions", "holder", e.from)
	for !e.s.Status().Ready {
		select {
		case <-wctx.Done():
			if ctx.Err() == nil {
				h.a.log.Warn("connector: early session not subscribed in time; the holder lets go without it", "holder", e.from)
			}
			return
		case <-time.After(20 * time.Millisecond):
		}
	}
	rctx, rcancel := context.WithTimeout(ctx, 5*time.Second)
	defer rcancel()
	sid := e.s.Status().SessionID
	if err := h.rec.Ready(rctx, requestedAt, h.a.cfg.InstanceID, sid); err != nil {
		h.a.log.Warn("connector: could not record hand-off readiness", "host", firestoreHost(h.a.cfg), "error", err.Error())
		return
	}
	h.a.log.Info("connector: early session subscribed; told the holder", "holder", e.from, "sessionId", sid)
}

// standbyWait is how long a standby waits before looking at the lease again, held
// by owner: briefly while an early session waits for it, and an early session
// answering someone else than the holder is closed (another instance won).
func (h *handoff) standbyWait(owner string, wait time.Duration) time.Duration {
	h.mu.Lock()
	e := h.early
	h.mu.Unlock()
	if e == nil {
		return wait
	}
	if owner != e.from {
		h.dropEarly("the lease went to " + owner)
		return wait
	}
	return min(wait, 200*time.Millisecond)
}

func (h *handoff) dropEarly(why string) {
	h.mu.Lock()
	e := h.early
	h.early = nil
	h.mu.Unlock()
	if e == nil {
		return
	}
	h.a.log.Info("connector: closing the early session", "reason", why)
	e.cancel()
	<-e.done
	h.ov.Set(false)
}

// takeEarly hands the early session, if any, to the new lease holder: run holds it
// until ctx ends. Marking continues for overlapTail.
func (h *handoff) takeEarly() (s *eventsub.Session, run func(ctx context.Context)) {
	h.mu.Lock()
	defer h.mu.Unlock()
	e := h.early
	h.early = nil
	if e == nil {
		return nil, nil
	}
	h.tail = time.AfterFunc(overlapTail, func() { h.ov.Set(false) })
	h.a.log.Info("connector: lease taken over; keeping the early session", "previousHolder", e.from,
		"overlapFor", overlapTail.String())
	return e.s, func(ctx context.Context) {
		select {
		case <-ctx.Done():
		case <-e.done:
		}
		e.cancel()
		<-e.done
	}
}

// sessionContext is the holder's session context: unlike ctx (SIGTERM), it ends only
// after the hand-off, or when cancelled (the lease is lost).
func (h *handoff) sessionContext(ctx context.Context) (context.Context, context.CancelFunc) {
	sctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	done := make(chan struct{})
	stop := context.AfterFunc(ctx, func() { defer close(done); h.handOff(sctx); cancel() })
	var once sync.Once
	return sctx, func() {
		once.Do(func() {
			cancel()
			if !stop() { // the hand-off has begun: wait for it to end
				<-done
			}
		})
	}
}

// handOff asks for a successor and waits, within half the shutdown grace (the relay's
// flush needs the rest), until one has subscribed. Without a standby (no
// acknowledgement within half that wait) it lets go at once, as before.
func (h *handoff) handOff(ctx context.Context) {
	a := h.a
	a.mu.Lock()
	s, holding := a.session, a.holding
	a.mu.Unlock()
	if ctx.Err() != nil || !holding || s == nil || !s.Status().Connected {
		return
	}
	me, wait := a.cfg.InstanceID, a.cfg.ShutdownGrace/2
	h.mu.Lock()
	if h.tail != nil {
		h.tail.Stop()
	}
	h.mu.Unlock()
	// Marked from before the request: any event a successor's session gets, this
	// session reads after this point.
	h.ov.Set(true)
	began := time.Now()
	wctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	at, err := h.rec.Request(wctx, me)
	if err != nil {
		a.log.Warn("connector: could not ask for a successor; letting go without one", "host", firestoreHost(a.cfg), "error", err.Error())
		return
	}
	a.log.Info("connector: stopping; waiting for a standby to subscribe before letting go", "waitUpTo", wait.String())
	defer h.withdraw(ctx, at)
	acked := false
	for {
		st, err := h.rec.Get(wctx)
		if err == nil && st.ReadyFor(me, at) {
			a.log.Info("connector: successor subscribed; letting go", "successor", st.ReadyBy,
				"successorSessionId", st.ReadySession, "waited", time.Since(began).Round(time.Millisecond).String())
			return
		}
		acked = acked || (err == nil && st.AckedFor(me, at))
		if !acked && time.Since(began) > wait/2 {
			a.log.Info("connector: no standby answered; letting go without a successor", "waited", time.Since(began).Round(time.Millisecond).String())
			return
		}
		select {
		case <-wctx.Done():
			if ctx.Err() == nil {
				a.log.Warn("connector: the standby did not subscribe in time; letting go without a successor", "waited", wait.String())
			}
			return
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// withdraw ends this instance's request, so that a standby starting later does not
// open a session for a holder that has let go. Bounded: shutdown is waiting.
func (h *handoff) withdraw(ctx context.Context, at time.Time) {
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
	defer cancel()
	if err := h.rec.Withdraw(wctx, h.a.cfg.InstanceID, at); err != nil {
		h.a.log.Warn("connector: could not withdraw the hand-off request", "host", firestoreHost(h.a.cfg), "error", err.Error())
	}
}
