package stack

import (
	"context"
	"fmt"
	"time"

	"github.com/bitbrat/twitch-edge/shared/bus"
)

// Function entry points, as deployed and as the local functions server serves them.
const (
	FnNormalize     = "Normalize"
	FnEgressChat    = "EgressChat"
	FnEgressWhisper = "EgressWhisper"
	FnFinalize      = "Finalize"
)

// MaxDeliveryAttempts is how often a push subscription tries a message before it
// moves it to the dead-letter topic (Pub/Sub's minimum, as deployed).
const MaxDeliveryAttempts = 5

// Subscriptions are the subscription ids the stack creates (prefix applied).
type Subscriptions struct {
	// Push subscriptions driving the functions.
	Normalize, EgressChat, EgressWhisper, Finalize string
	// Pull subscriptions for watching: each topic's messages, for tests and the
	// local event printer. Nothing else reads them, so a long run that does not
	// consume one lets it grow (Options.NoWatch turns them off).
	WatchRaw, WatchIngress, WatchEgress, WatchFinalize, WatchDeadLetter string
}

func subscriptionNames(prefix string) Subscriptions {
	return Subscriptions{
		Normalize:       prefix + "push.normalize",
		EgressChat:      prefix + "push.egress-chat",
		EgressWhisper:   prefix + "push.egress-whisper",
		Finalize:        prefix + "push.finalize",
		WatchRaw:        prefix + "watch.raw",
		WatchIngress:    prefix + "watch.ingress",
		WatchEgress:     prefix + "watch.egress",
		WatchFinalize:   prefix + "watch.finalize",
		WatchDeadLetter: prefix + "watch.deadletter",
	}
}

// pushRoute is one function and the topic that triggers it.
type pushRoute struct {
	sub, fn, topic string
}

func (s *Stack) routes() []pushRoute {
	t, n := s.Topics, s.Subs
	return []pushRoute{
		{n.Normalize, FnNormalize, t.Raw},
		{n.EgressChat, FnEgressChat, t.Egress},
		{n.EgressWhisper, FnEgressWhisper, t.Whisper},
		{n.Finalize, FnFinalize, t.Finalize},
	}
}

// PushEndpoint is the URL a push subscription for fn on topic posts to: the
// functions server keeps the topic from the path (`/<Name>/projects/P/topics/T`), as
// the event source a Cloud Function would see.
func (s *Stack) PushEndpoint(fn, topic string) string {
	return fmt.Sprintf("%s/%s/projects/%s/topics/%s", s.FunctionsURL, fn, s.Project, topic)
}

// EnsureTopology creates every topic and subscription of the stack unless it exists:
// after start, and again after a Pub/Sub emulator restart (which loses them).
func (s *Stack) EnsureTopology(ctx context.Context) error {
	t := s.Topics
	if err := bus.EnsureTopics(ctx, s.PubSub, t.Raw, t.Ingress, t.Egress, t.Whisper, t.Finalize, t.DeadLetter); err != nil {
		return fmt.Errorf("create topics: %w", err)
	}
	for _, r := range s.routes() {
		err := bus.EnsureSubscription(ctx, s.PubSub, bus.SubscriptionSpec{
			Name: r.sub, Topic: r.topic, PushEndpoint: s.PushEndpoint(r.fn, r.topic),
			DeadLetterTopic: t.DeadLetter, MaxDeliveryAttempts: MaxDeliveryAttempts,
			MinBackoff: s.opts.MinBackoff, MaxBackoff: s.opts.MaxBackoff,
		})
		if err != nil {
			return fmt.Errorf("push subscription for %s: %w", r.fn, err)
		}
	}
	if err := s.ensureReconcileTopology(ctx); err != nil {
		return err
	}
	if s.opts.NoWatch {
		return nil
	}
	n := s.Subs
	for sub, topic := range map[string]string{
		n.WatchRaw: t.Raw, n.WatchIngress: t.Ingress, n.WatchEgress: t.Egress,
		n.WatchFinalize: t.Finalize, n.WatchDeadLetter: t.DeadLetter,
	} {
		if err := bus.EnsureSubscription(ctx, s.PubSub, bus.SubscriptionSpec{Name: sub, Topic: topic, AckDeadline: 20 * time.Second}); err != nil {
			return fmt.Errorf("watch subscription: %w", err)
		}
	}
	return nil
}
