package eventsub

import (
	"sync"

	"github.com/bitbrat/twitch-edge/connector/metrics"
)

// Metrics are the session's counters.
type Metrics struct {
	Notifications     *metrics.Counter
	Duplicates        *metrics.Counter
	Stale             *metrics.Counter
	Keepalives        *metrics.Counter
	BadFrames         *metrics.Counter
	Revocations       *metrics.Counter
	SubscribeFailures *metrics.Counter
	OrphansDeleted    *metrics.Counter
	Handovers         *metrics.Counter
	Connected         *metrics.Gauge

	reg        *metrics.Registry
	mu         sync.Mutex
	reconnects map[string]*metrics.Counter
}

// NewMetrics registers the session's series in reg (nil: a private registry).
func NewMetrics(reg *metrics.Registry) *Metrics {
	if reg == nil {
		reg = metrics.New()
	}
	return &Metrics{
		Notifications:     reg.Counter("eventsub_notifications_total", "Notifications forwarded."),
		Duplicates:        reg.Counter("eventsub_duplicates_dropped_total", "Notifications dropped as repeats of a message_id already forwarded."),
		Stale:             reg.Counter("eventsub_stale_dropped_total", "Notifications dropped for a message_timestamp older than ten minutes."),
		Keepalives:        reg.Counter("eventsub_keepalives_total", "session_keepalive messages received."),
		BadFrames:         reg.Counter("eventsub_bad_frames_total", "Frames that could not be parsed."),
		Revocations:       reg.Counter("eventsub_revocations_total", "Subscriptions revoked by Twitch."),
		SubscribeFailures: reg.Counter("eventsub_subscribe_failures_total", "Subscriptions that could not be created."),
		OrphansDeleted:    reg.Counter("eventsub_orphans_deleted_total", "Orphaned subscriptions of dead sessions deleted."),
		Handovers:         reg.Counter("eventsub_handovers_total", "session_reconnect hand-overs completed."),
		Connected:         reg.Gauge("eventsub_connected", "1 while a session is connected."),
		reg:               reg,
		reconnects:        map[string]*metrics.Counter{},
	}
}

// reconnect counts a lost connection by reason.
func (m *Metrics) reconnect(reason string) {
	m.mu.Lock()
	c, ok := m.reconnects[reason]
	if !ok {
		c = m.reg.Counter(`eventsub_reconnects_total{reason="`+reason+`"}`, "Connections lost, by reason.")
		m.reconnects[reason] = c
	}
	m.mu.Unlock()
	c.Inc()
}

// Reconnects returns the count for one reason (for tests and logs).
func (m *Metrics) Reconnects(reason string) uint64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	if c, ok := m.reconnects[reason]; ok {
		return c.Value()
	}
	return 0
}
