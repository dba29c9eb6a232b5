// Package eventsub holds the Twitch EventSub WebSocket: it connects, reads the
// welcome, creates the configured subscriptions on every new session within Twitch's
// ten-second window, watches keepalives, hands a session over on session_reconnect
// without losing or repeating a notification, records revocations, cleans up
// orphaned subscriptions, and passes every fresh notification frame, unchanged, to a
// Sink. It never sends a data frame (Twitch closes the socket with 4001 if it does).
package eventsub

import (
	"context"
	"sync"
	"time"

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

// Session keeps one EventSub WebSocket session alive. Run it once.
type Session struct {
	o Options

	mu        sync.Mutex
	connected bool
	sessionID string
	subs      map[string]SubscriptionState // by spec key
	revoked   map[string]string            // spec key → reason; not resubscribed
	// retried are the specs a retry of revoked ones is trying: refused again for
	// lack of authorization, they go back to revoked.
	retried map[string]bool
	retry   chan struct{} // RetryRevoked's signal
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
	s := &Session{o: o, subs: map[string]SubscriptionState{}, revoked: map[string]string{},
		records: make(chan func(context.Context) error, 1024), retry: make(chan struct{}, 1), retried: map[string]bool{}}
	for k, reason := range o.Revoked {
		s.revoked[k] = reason
	}
	return s
}

// Status is a snapshot for health checks and logs.
type Status struct {
	Connected bool
	SessionID string
	// Ready: connected, and every subscription not revoked is enabled.
	Ready bool
	// Revoked are the specs revoked for good (key → reason), waiting for a retry.
	Revoked       map[string]string
	Subscriptions []SubscriptionState
}

// Live counts the subscriptions Twitch has enabled: those delivering now. The
// records of revoked and failed ones are in Subscriptions too, and must not be
// counted as serving.
func (st Status) Live() int {
	n := 0
	for _, sub := range st.Subscriptions {
		if sub.Status == twitch.StatusEnabled {
			n++
		}
	}
	return n
}

// Status returns the current state.
func (s *Session) Status() Status {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := Status{Connected: s.connected, SessionID: s.sessionID}
	if len(s.revoked) > 0 {
		st.Revoked = make(map[string]string, len(s.revoked))
		for k, v := range s.revoked {
			st.Revoked[k] = v
		}
	}
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

// RetryRevoked tries the subscriptions revoked for good again now (the token
// changed: someone may have re-authorized).
func (s *Session) RetryRevoked() {
	select {
	case s.retry <- struct{}{}:
	default:
	}
}

// unrevoke clears the revoked specs for a retry; it reports whether there were any.
func (s *Session) unrevoke() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for k := range s.revoked {
		s.retried[k] = true
		delete(s.revoked, k)
	}
	return len(s.retried) > 0
}
