package bus

import (
	"context"
	"fmt"
	"sync"
	"time"

	"cloud.google.com/go/pubsub/v2"
	"cloud.google.com/go/pubsub/v2/apiv1/pubsubpb"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"
)

// In the cloud, Terraform owns topics and subscriptions. These helpers create them
// for local runs and tests, and tolerate their already existing.

// TopicName is the full resource name of topic in client's project.
func TopicName(client *pubsub.Client, topic string) string {
	return fmt.Sprintf("projects/%s/topics/%s", client.Project(), topic)
}

// SubscriptionName is the full resource name of subscription in client's project.
func SubscriptionName(client *pubsub.Client, sub string) string {
	return fmt.Sprintf("projects/%s/subscriptions/%s", client.Project(), sub)
}

// EnsureTopics creates each topic unless it exists.
func EnsureTopics(ctx context.Context, client *pubsub.Client, topics ...string) error {
	for _, t := range topics {
		_, err := client.TopicAdminClient.CreateTopic(ctx, &pubsubpb.Topic{Name: TopicName(client, t)})
		if err != nil && status.Code(err) != codes.AlreadyExists {
			return Classify(fmt.Errorf("create topic %s: %w", t, err))
		}
	}
	return nil
}

// SubscriptionSpec describes a subscription to create.
type SubscriptionSpec struct {
	Name  string
	Topic string
	// PushEndpoint, when set, makes a push subscription to that URL.
	PushEndpoint string
	// AckDeadline defaults to 60 s.
	AckDeadline time.Duration
	// DeadLetterTopic, when set, moves a message there after MaxDeliveryAttempts
	// (5 to 100; Pub/Sub's minimum, 5, by default).
	DeadLetterTopic     string
	MaxDeliveryAttempts int32
	// MinBackoff and MaxBackoff set the retry policy (both zero: Pub/Sub's default of
	// immediate redelivery).
	MinBackoff, MaxBackoff time.Duration
}

// EnsureSubscription creates the subscription unless it exists.
func EnsureSubscription(ctx context.Context, client *pubsub.Client, s SubscriptionSpec) error {
	ack := s.AckDeadline
	if ack == 0 {
		ack = 60 * time.Second
	}
	sub := &pubsubpb.Subscription{
		Name:               SubscriptionName(client, s.Name),
		Topic:              TopicName(client, s.Topic),
		AckDeadlineSeconds: int32(ack / time.Second),
	}
	if s.PushEndpoint != "" {
		sub.PushConfig = &pubsubpb.PushConfig{PushEndpoint: s.PushEndpoint}
	}
	if s.DeadLetterTopic != "" {
		n := s.MaxDeliveryAttempts
		if n == 0 {
			n = 5
		}
		sub.DeadLetterPolicy = &pubsubpb.DeadLetterPolicy{
			DeadLetterTopic:     TopicName(client, s.DeadLetterTopic),
			MaxDeliveryAttempts: n,
		}
	}
	if s.MinBackoff > 0 || s.MaxBackoff > 0 {
		sub.RetryPolicy = &pubsubpb.RetryPolicy{
			MinimumBackoff: durationpb.New(s.MinBackoff),
			MaximumBackoff: durationpb.New(s.MaxBackoff),
		}
	}
	_, err := client.SubscriptionAdminClient.CreateSubscription(ctx, sub)
	if err != nil && status.Code(err) != codes.AlreadyExists {
		return Classify(fmt.Errorf("create subscription %s: %w", s.Name, err))
	}
	return nil
}

// Received is a message pulled from a subscription.
type Received struct {
	ID         string
	Data       []byte
	Attributes map[string]string
}

// Collect pulls and acknowledges messages from sub until max have arrived or nothing
// has arrived for quiet. Tests and the local stack's event printer use it.
func Collect(ctx context.Context, client *pubsub.Client, sub string, max int, quiet time.Duration) ([]Received, error) {
	return CollectFor(ctx, client, sub, max, quiet, quiet)
}

// CollectFor is Collect with a separate, usually longer, wait for the first message
// (a streaming pull takes a moment to start on a busy machine).
func CollectFor(ctx context.Context, client *pubsub.Client, sub string, max int, first, quiet time.Duration) ([]Received, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		mu  sync.Mutex
		out []Received
	)
	timer := time.AfterFunc(first, cancel)
	defer timer.Stop()
	err := client.Subscriber(sub).Receive(ctx, func(_ context.Context, m *pubsub.Message) {
		m.Ack()
		mu.Lock()
		defer mu.Unlock()
		if len(out) >= max {
			return
		}
		out = append(out, Received{ID: m.ID, Data: m.Data, Attributes: m.Attributes})
		timer.Reset(quiet)
		if len(out) >= max {
			cancel()
		}
	})
	mu.Lock()
	defer mu.Unlock()
	if err != nil && ctx.Err() == nil {
		return out, Classify(fmt.Errorf("receive from %s: %w", sub, err))
	}
	return out, nil
}
