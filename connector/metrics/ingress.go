package metrics

import (
	"context"
	"strconv"
	"sync"

	"github.com/bitbrat/twitch-edge/shared/bus"
	"github.com/bitbrat/twitch-edge/shared/event"
)

// Names of the series the connector registers outside the relay and the session, for
// the README and terraform/monitoring.tf.
const (
	NameIngress       = "eventsub_ingress_total"
	NameSubscriptions = "eventsub_subscriptions"
	NameShards        = "conduit_shards"
	NameReady         = "connector_ready"
	NameBufferFill    = "relay_buffer_fill_ratio"
)

// Publisher publishes one message (the relay's Publisher).
type Publisher interface {
	Publish(ctx context.Context, topic string, data []byte, attrs map[string]string) (string, error)
}

// CountIngress counts every notification published through next by subscription type
// and channel (broadcaster id), read from the raw topic's attributes: the ingress
// rate of eventsub_ingress_total{type,channel}.
// When next can also publish a batch (*bus.Publisher) so can the result: the relay
// then batches itself (a wrapper that hid it would put the relay back on one
// goroutine per publish).
func CountIngress(next Publisher, reg *Registry) Publisher {
	in := &ingress{next: next, reg: reg}
	if bp, ok := next.(batchPublisher); ok {
		return &batchIngress{ingress: in, next: bp}
	}
	return in
}

type batchPublisher interface {
	PublishBatch(ctx context.Context, topic string, msgs []bus.Message) ([]string, error)
}

type batchIngress struct {
	*ingress
	next batchPublisher
}

func (p *batchIngress) PublishBatch(ctx context.Context, topic string, msgs []bus.Message) ([]string, error) {
	ids, err := p.next.PublishBatch(ctx, topic, msgs)
	if err == nil {
		for _, m := range msgs {
			p.counter(m.Attributes[event.AttrEventSubSubscriptionType], m.Attributes[event.AttrEventSubBroadcasterID]).Inc()
		}
	}
	return ids, err
}

type ingress struct {
	next Publisher
	reg  *Registry
	// byKey holds *Counter by [type, channel]: read by every publish (256 workers),
	// written once per new pair.
	byKey sync.Map
	mu    sync.Mutex // serialises creating a pair's counter
}

func (p *ingress) Publish(ctx context.Context, topic string, data []byte, attrs map[string]string) (string, error) {
	id, err := p.next.Publish(ctx, topic, data, attrs)
	if err == nil {
		p.counter(attrs[event.AttrEventSubSubscriptionType], attrs[event.AttrEventSubBroadcasterID]).Inc()
	}
	return id, err
}

func (p *ingress) counter(typ, channel string) *Counter {
	k := [2]string{typ, channel}
	if c, ok := p.byKey.Load(k); ok {
		return c.(*Counter)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if c, ok := p.byKey.Load(k); ok {
		return c.(*Counter)
	}
	c := p.reg.Counter(NameIngress+`{type=`+strconv.Quote(typ)+`,channel=`+strconv.Quote(channel)+`}`,
		"Notifications published to the raw topic, by subscription type and channel (broadcaster id).")
	p.byKey.Store(k, c)
	return c
}

// SubscriptionsByStatus registers eventsub_subscriptions{status}: fn returns the
// number of subscriptions in each status (enabled, revoked, failed, ...).
func SubscriptionsByStatus(reg *Registry, fn func() map[string]int64) {
	reg.LabeledGauges(NameSubscriptions, "EventSub subscriptions of this instance's session, by status.", "status", fn)
}

// ShardsByStatus registers conduit_shards{status} (conduit mode): fn returns the
// number of the conduit's shards in each status (enabled, disabled,
// websocket_disconnected, webhook_callback_verification_failed, ...).
func ShardsByStatus(reg *Registry, fn func() map[string]int64) {
	reg.LabeledGauges(NameShards, "The conduit's shards, by status.", "status", fn)
}
