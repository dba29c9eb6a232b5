package stack

import (
	"context"
	"fmt"

	"cloud.google.com/go/pubsub/v2"

	"github.com/bitbrat/twitch-edge/shared/bus"
	"github.com/bitbrat/twitch-edge/shared/event"
	"github.com/bitbrat/twitch-edge/shared/store"
)

// Publisher is a publisher on the stack's Pub/Sub client (created on first use,
// stopped by Stop).
func (s *Stack) Publisher() *bus.Publisher {
	s.pubOnce.Do(func() { s.pub = bus.NewPublisher(s.PubSub, &bus.FunctionPublishSettings) })
	return s.pub
}

// PublishEgress publishes e to the egress topic with upstream's attributes, as a
// BitBrat service would.
func (s *Stack) PublishEgress(ctx context.Context, e *event.InternalEventV2) error {
	_, err := s.Publisher().PublishJSON(ctx, s.Topics.Egress, e, event.Attributes(e))
	return err
}

// Outcome reads the delivery outcome recorded on events/{correlationId}.
func (s *Stack) Outcome(ctx context.Context, correlationID string) (store.Outcome, bool, error) {
	return store.NewEvents(s.Firestore, nil).GetOutcome(ctx, correlationID)
}

// Watch receives from a pull subscription (one of Subs.Watch*) until ctx ends or
// the stack stops, calling fn for each message and acknowledging it afterwards.
func (s *Stack) Watch(ctx context.Context, sub string, fn func(bus.Received)) error {
	err := s.PubSub.Subscriber(sub).Receive(ctx, func(_ context.Context, m *pubsub.Message) {
		fn(bus.Received{ID: m.ID, Data: m.Data, Attributes: m.Attributes})
		m.Ack()
	})
	select {
	case <-s.stopping:
		return nil // the client was closed under it
	default:
	}
	if err != nil && ctx.Err() == nil {
		return fmt.Errorf("watch %s: %w", sub, err)
	}
	return nil
}
