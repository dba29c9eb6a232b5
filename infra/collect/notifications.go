// Package collect counts what arrives on the local stack's pull subscriptions, for
// the load run, the soak and the end-to-end test: raw notifications by EventSub
// message id (Notifications), and events by correlation id (Events), telling a
// message published twice apart from a subscription's own redelivery.
package collect

import (
	"context"
	"sync"
	"time"

	"cloud.google.com/go/pubsub/v2"

	"github.com/bitbrat/twitch-edge/shared/event"
)

// Notifications counts the raw notifications on a pull subscription of the raw topic,
// by EventSub message id (the eventsub_message_id attribute the connector sets), and
// tells the two kinds of repeat apart: the same notification published twice (a new
// Pub/Sub message id: the connector's fault) and a subscription redelivering the same
// Pub/Sub message (the subscriber's business, not a duplicate on the topic).
type Notifications struct {
	// Group maps an EventSub message id to the load step (or soak phase) it belongs
	// to; nil puts everything in group 0.
	Group func(messageID string) int

	mu      sync.Mutex
	seen    map[string]string // EventSub message id → first Pub/Sub message id
	groups  map[int]*Counts
	total   int
	changed chan struct{}
}

// Counts are what arrived for one group.
type Counts struct {
	// Distinct notifications (by EventSub message id).
	Distinct int
	// Duplicates are notifications published more than once (a second Pub/Sub
	// message id for an EventSub message id already seen).
	Duplicates int
	// Redeliveries are Pub/Sub redeliveries of a message already counted.
	Redeliveries int
	// Latencies are publish time (the emulator's, when it accepted the publish) minus
	// message_timestamp (when the fake Twitch built the frame), per distinct
	// notification: frame sent → publish accepted, end to end.
	Latencies []time.Duration
}

// NewNotifications returns an empty collector; group may be nil.
func NewNotifications(group func(string) int) *Notifications {
	return &Notifications{Group: group, seen: map[string]string{}, groups: map[int]*Counts{}, changed: make(chan struct{})}
}

// Add records one received message.
func (c *Notifications) Add(pubsubID string, attrs map[string]string, publishTime time.Time) {
	id := attrs[event.AttrEventSubMessageID]
	g := 0
	if c.Group != nil {
		g = c.Group(id)
	}
	var lat time.Duration
	if ts, err := time.Parse(time.RFC3339Nano, attrs[event.AttrEventSubMessageTimestamp]); err == nil && !publishTime.IsZero() {
		lat = publishTime.Sub(ts)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	k := c.groups[g]
	if k == nil {
		k = &Counts{}
		c.groups[g] = k
	}
	first, ok := c.seen[id]
	switch {
	case !ok:
		c.seen[id] = pubsubID
		k.Distinct++
		c.total++
		k.Latencies = append(k.Latencies, lat)
	case first == pubsubID:
		k.Redeliveries++
	default:
		k.Duplicates++
	}
	close(c.changed)
	c.changed = make(chan struct{})
}

// Has reports whether the notification with EventSub message id arrived.
func (c *Notifications) Has(messageID string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	_, ok := c.seen[messageID]
	return ok
}

// Total is the number of distinct notifications received.
func (c *Notifications) Total() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.total
}

// Counts returns a copy of one group's counts.
func (c *Notifications) Counts(group int) Counts {
	c.mu.Lock()
	defer c.mu.Unlock()
	k := c.groups[group]
	if k == nil {
		return Counts{}
	}
	out := *k
	out.Latencies = append([]time.Duration(nil), k.Latencies...)
	return out
}

// All sums every group.
func (c *Notifications) All() Counts {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out Counts
	for _, k := range c.groups {
		out.Distinct += k.Distinct
		out.Duplicates += k.Duplicates
		out.Redeliveries += k.Redeliveries
	}
	return out
}

// WaitTotal waits until at least n distinct notifications arrived, or until nothing
// new arrived for quiet, or ctx ends. It returns the total.
func (c *Notifications) WaitTotal(ctx context.Context, n int, quiet time.Duration) int {
	t := time.NewTimer(quiet)
	defer t.Stop()
	for {
		c.mu.Lock()
		total, ch := c.total, c.changed
		c.mu.Unlock()
		if total >= n {
			return total
		}
		select {
		case <-ctx.Done():
			return total
		case <-t.C:
			return total
		case <-ch:
			if !t.Stop() {
				select {
				case <-t.C:
				default:
				}
			}
			t.Reset(quiet)
		}
	}
}

// Receive pulls from sub until ctx ends, acknowledging each message after counting
// it. A failed stream (the emulator restarting, the subscription briefly missing) is
// started again after a short pause; errors are reported to onErr (may be nil).
func (c *Notifications) Receive(ctx context.Context, client *pubsub.Client, sub string, onErr func(error)) {
	for ctx.Err() == nil {
		s := client.Subscriber(sub)
		s.ReceiveSettings.MaxOutstandingMessages = 10_000
		s.ReceiveSettings.MaxOutstandingBytes = 64 << 20
		err := s.Receive(ctx, func(_ context.Context, m *pubsub.Message) {
			c.Add(m.ID, m.Attributes, m.PublishTime)
			m.Ack()
		})
		if ctx.Err() != nil {
			return
		}
		if err != nil && onErr != nil {
			onErr(err)
		}
		select {
		case <-ctx.Done():
		case <-time.After(500 * time.Millisecond):
		}
	}
}
