package main

import (
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/bitbrat/twitch-edge/connector/eventsub"
	"github.com/bitbrat/twitch-edge/connector/metrics"
	"github.com/bitbrat/twitch-edge/connector/relay"
	"github.com/bitbrat/twitch-edge/shared/event"
)

// statusPublishTimeout bounds one status publish.
const statusPublishTimeout = 10 * time.Second

// statusQueue is how many status events wait for publishing; past it, new ones are
// dropped with a log line (they describe state changes, which /readyz and the
// metrics show too, and must never hold up a socket's reader).
const statusQueue = 256

// statusEvents publishes connector.status.changed events (shared/event) to
// internal.ingress.v1 from a queue of its own, so that the socket goroutines that
// report a change never wait for Pub/Sub.
type statusEvents struct {
	pub      relay.Publisher
	topic    string
	instance string
	log      *slog.Logger
	now      func() time.Time

	published, failed, dropped *metrics.Counter

	mu     sync.Mutex // guards closed and sending on q
	closed bool
	q      chan event.ConnectorStatus
	done   chan struct{}
}

func newStatusEvents(pub relay.Publisher, topic, instance string, reg *metrics.Registry, log *slog.Logger) *statusEvents {
	s := &statusEvents{
		pub: pub, topic: topic, instance: instance, log: log, now: time.Now,
		published: reg.Counter("connector_status_events_published_total", "connector.status.changed events published"),
		failed:    reg.Counter("connector_status_events_failed_total", "connector.status.changed events Pub/Sub refused or timed out"),
		dropped:   reg.Counter("connector_status_events_dropped_total", "connector.status.changed events dropped on a full queue"),
		q:         make(chan event.ConnectorStatus, statusQueue),
		done:      make(chan struct{}),
	}
	go s.run()
	return s
}

// Emit queues a status event from previous to current about subject; fill adds the
// details (shard, subscription, reason, counts). It never blocks.
func (s *statusEvents) Emit(subject, previous, current string, fill func(*event.ConnectorStatus)) {
	ev := event.NewConnectorStatus(s.instance, subject, previous, current, s.now())
	if fill != nil {
		fill(&ev)
	}
	s.log.Info("connector: status changed", "subject", subject, "previousState", previous, "currentState", current,
		"shard", ev.Shard, "subscriptionType", ev.SubscriptionType, "reason", ev.Reason)
	if s.topic == "" {
		return // no ingress topic configured (package tests of other parts)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		s.log.Warn("connector: status event after shutdown; not published", "subject", subject, "currentState", current)
		return
	}
	select {
	case s.q <- ev:
	default:
		s.dropped.Inc()
		s.log.Warn("connector: status event dropped (queue full: Pub/Sub slow)", "subject", subject, "currentState", current)
	}
}

func (s *statusEvents) run() {
	defer close(s.done)
	for ev := range s.q {
		data, err := json.Marshal(ev)
		if err == nil {
			ctx, cancel := context.WithTimeout(context.Background(), statusPublishTimeout)
			_, err = s.pub.Publish(ctx, s.topic, data, event.StatusAttributes())
			cancel()
		}
		if err != nil {
			s.failed.Inc()
			s.log.Warn("connector: status event not published", "topic", s.topic, "subject", ev.Subject,
				"currentState", ev.CurrentState, "error", err.Error())
			continue
		}
		s.published.Inc()
	}
}

// Close publishes what is queued until ctx ends, then gives up on the rest.
func (s *statusEvents) Close(ctx context.Context) {
	s.mu.Lock()
	if !s.closed {
		s.closed = true
		close(s.q)
	}
	s.mu.Unlock()
	select {
	case <-s.done:
	case <-ctx.Done():
		s.log.Warn("connector: status events left unpublished at shutdown", "left", len(s.q))
	}
}

// sessionStatusPoll is how often WebSocket mode looks for state changes to report.
const sessionStatusPoll = 250 * time.Millisecond

// watchSession reports a WebSocket-mode session's changes as status events (session
// connected or disconnected, a subscription revoked) until ctx ends, when a
// connected session is reported disconnected. It reads the session's Status, so the
// session's own code stays as it is.
func (a *App) watchSession(ctx context.Context, s interface{ Status() eventsub.Status }) {
	t := time.NewTicker(sessionStatusPoll)
	defer t.Stop()
	connected, sessionID := false, ""
	revoked := map[string]bool{}
	for {
		st := s.Status()
		if st.Connected && (!connected || st.SessionID != sessionID) {
			prev := event.StateConnecting
			if connected {
				prev = event.StateConnected
			}
			a.status.Emit("session", prev, event.StateConnected, func(e *event.ConnectorStatus) {
				e.Reason = "session " + st.SessionID + " welcomed"
			})
		} else if !st.Connected && connected {
			a.status.Emit("session", event.StateConnected, event.StateDisconnected, func(e *event.ConnectorStatus) {
				e.Reason = "session " + sessionID + " lost"
			})
		}
		connected, sessionID = st.Connected, st.SessionID
		for key, reason := range st.Revoked {
			if revoked[key] {
				continue
			}
			revoked[key] = true
			a.status.Emit("subscription", event.StateConnected, event.StateError, func(e *event.ConnectorStatus) {
				e.Reason, e.Details = reason, map[string]any{"key": key}
				e.SubscriptionType, _, _ = strings.Cut(key, "@")
			})
		}
		for key := range revoked {
			if _, still := st.Revoked[key]; !still {
				delete(revoked, key)
			}
		}
		select {
		case <-ctx.Done():
			if connected {
				a.status.Emit("session", event.StateConnected, event.StateDisconnected, func(e *event.ConnectorStatus) {
					e.Reason = "session " + sessionID + " ended (lease given up or shutdown)"
				})
			}
			return
		case <-t.C:
		}
	}
}
