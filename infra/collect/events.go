package collect

import (
	"context"
	"encoding/json"
	"strings"
	"sync"

	"github.com/bitbrat/twitch-edge/shared/bus"
	"github.com/bitbrat/twitch-edge/shared/event"
)

// Events keeps every message of a watched subscription (ingress, finalize, dead
// letters) by correlation id: the attribute, or the body's correlationId.
type Events struct {
	mu      sync.Mutex
	changed chan struct{}
	all     []bus.Received
	byCID   map[string]int             // messages, redeliveries included
	ids     map[string]map[string]bool // distinct Pub/Sub message ids
}

// NewEvents returns an empty collector.
func NewEvents() *Events {
	return &Events{changed: make(chan struct{}), byCID: map[string]int{}, ids: map[string]map[string]bool{}}
}

// Add records one received message (the shape stack.Watch hands over).
func (c *Events) Add(r bus.Received) {
	cid := r.Attributes[event.AttrCorrelationID]
	if cid == "" {
		var v struct {
			CorrelationID string `json:"correlationId"`
		}
		_ = json.Unmarshal(r.Data, &v)
		cid = v.CorrelationID
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.all = append(c.all, r)
	c.byCID[cid]++
	if c.ids[cid] == nil {
		c.ids[cid] = map[string]bool{}
	}
	c.ids[cid][r.ID] = true
	close(c.changed)
	c.changed = make(chan struct{})
}

// Len is the number of messages received.
func (c *Events) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.all)
}

// Distinct is the number of distinct Pub/Sub messages with correlation id cid (a
// redelivery of the same message counts once).
func (c *Events) Distinct(cid string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.ids[cid])
}

// Find returns the first message match accepts.
func (c *Events) Find(match func(bus.Received) bool) (bus.Received, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, r := range c.all {
		if match(r) {
			return r, true
		}
	}
	return bus.Received{}, false
}

// Dump is the bodies received, one a line, the last limit bytes.
func (c *Events) Dump(limit int) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var b strings.Builder
	for _, r := range c.all {
		b.Write(r.Data)
		b.WriteByte('\n')
	}
	s := b.String()
	if len(s) > limit {
		s = s[len(s)-limit:]
	}
	return s
}

// Missing are the correlation ids of cids not received yet.
func (c *Events) Missing(cids []string) []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []string
	for _, id := range cids {
		if c.byCID[id] == 0 {
			out = append(out, id)
		}
	}
	return out
}

// Repeated is how many of cids arrived in more than one message.
func (c *Events) Repeated(cids []string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, id := range cids {
		if c.byCID[id] > 1 {
			n++
		}
	}
	return n
}

// WaitFor waits for the first message with correlation id cid.
func (c *Events) WaitFor(ctx context.Context, cid string) (bus.Received, error) {
	if err := c.WaitForAll(ctx, []string{cid}); err != nil {
		return bus.Received{}, err
	}
	r, _ := c.Find(func(r bus.Received) bool {
		return r.Attributes[event.AttrCorrelationID] == cid || strings.Contains(string(r.Data), cid)
	})
	return r, nil
}

// WaitForAll waits until every correlation id has arrived at least once, or ctx
// ends.
func (c *Events) WaitForAll(ctx context.Context, cids []string) error {
	for {
		c.mu.Lock()
		ch := c.changed
		c.mu.Unlock()
		if len(c.Missing(cids)) == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-ch:
		}
	}
}
