// Package bus publishes to Google Cloud Pub/Sub (cloud.google.com/go/pubsub/v2) and
// creates the topics and subscriptions local runs and tests need. Every publish is
// awaited (or its result handed back to be awaited) and every error is classified
// with package fault, so callers decide retry or give-up without reading strings.
package bus

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"cloud.google.com/go/pubsub/v2"
	"cloud.google.com/go/pubsub/v2/apiv1/pubsubpb"
	"google.golang.org/api/option"
	"google.golang.org/api/option/internaloption"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/bitbrat/twitch-edge/shared/fault"
)

// ClientOption configures NewClient.
type ClientOption func(*clientOptions)

type clientOptions struct {
	emulatorHost string
	tracing      bool
}

// WithTracing turns on the client library's OpenTelemetry tracing: a span per
// publish, and the trace context carried in each message's googclient_traceparent
// attribute, so a consumer continues the trace. It uses the global tracer provider
// (telemetry.Telemetry.Install).
func WithTracing(on bool) ClientOption {
	return func(o *clientOptions) { o.tracing = on }
}

// WithEmulator points the client at the Pub/Sub emulator at host ("127.0.0.1:8085"):
// plain gRPC, no credentials. An empty host changes nothing. Without it the client
// library's own rule applies: PUBSUB_EMULATOR_HOST when the process has it (a
// deployment never does), Google Cloud with the default credentials otherwise.
func WithEmulator(host string) ClientOption {
	return func(o *clientOptions) { o.emulatorHost = host }
}

// NewClient connects to Pub/Sub for project.
func NewClient(ctx context.Context, project string, opts ...ClientOption) (*pubsub.Client, error) {
	var o clientOptions
	for _, opt := range opts {
		opt(&o)
	}
	var co []option.ClientOption
	if o.emulatorHost != "" {
		// What the client library does for PUBSUB_EMULATOR_HOST, given explicitly so
		// that no caller has to change its process's environment.
		co = append(co,
			option.WithEndpoint(o.emulatorHost),
			option.WithGRPCDialOption(grpc.WithTransportCredentials(insecure.NewCredentials())),
			option.WithoutAuthentication(),
			option.WithTelemetryDisabled(),
			internaloption.SkipDialSettingsValidation(),
		)
	}
	c, err := pubsub.NewClientWithConfig(ctx, project, &pubsub.ClientConfig{EnableOpenTelemetryTracing: o.tracing}, co...)
	if err != nil {
		return nil, fmt.Errorf("pubsub client for project %s: %w", project, err)
	}
	return c, nil
}

// Publisher publishes to any number of topics, keeping one pubsub.Publisher (and its
// batching goroutines) per topic for the life of the process.
type Publisher struct {
	client   *pubsub.Client
	settings pubsub.PublishSettings

	mu   sync.Mutex
	pubs map[string]*pubsub.Publisher
}

// NewPublisher returns a Publisher over client. settings nil means
// pubsub.DefaultPublishSettings.
func NewPublisher(client *pubsub.Client, settings *pubsub.PublishSettings) *Publisher {
	s := pubsub.DefaultPublishSettings
	if settings != nil {
		s = *settings
	}
	return &Publisher{client: client, settings: s, pubs: make(map[string]*pubsub.Publisher)}
}

func (p *Publisher) publisher(topic string) *pubsub.Publisher {
	p.mu.Lock()
	defer p.mu.Unlock()
	pub, ok := p.pubs[topic]
	if !ok {
		pub = p.client.Publisher(topic)
		pub.PublishSettings = p.settings
		p.pubs[topic] = pub
	}
	return pub
}

// Result is a publish in flight.
type Result struct {
	topic string
	r     *pubsub.PublishResult
}

// Get waits for the server's acknowledgement and returns the message id, or a
// classified error.
func (r *Result) Get(ctx context.Context) (string, error) {
	id, err := r.r.Get(ctx)
	if err != nil {
		return "", Classify(fmt.Errorf("publish to %s: %w", r.topic, err))
	}
	return id, nil
}

// Ready is closed when the result is known.
func (r *Result) Ready() <-chan struct{} { return r.r.Ready() }

// PublishAsync starts publishing data to topic (a topic id, prefix already applied)
// and returns at once; the message is batched with others.
func (p *Publisher) PublishAsync(ctx context.Context, topic string, data []byte, attrs map[string]string) *Result {
	return &Result{topic: topic, r: p.publisher(topic).Publish(ctx, &pubsub.Message{Data: data, Attributes: attrs})}
}

// Publish publishes data to topic and waits for the acknowledgement.
func (p *Publisher) Publish(ctx context.Context, topic string, data []byte, attrs map[string]string) (string, error) {
	if err := CheckMessage(data, attrs); err != nil {
		return "", fmt.Errorf("publish to %s: %w", topic, err)
	}
	return p.PublishAsync(ctx, topic, data, attrs).Get(ctx)
}

// PublishJSON encodes v as JSON and publishes it to topic, waiting for the
// acknowledgement.
func (p *Publisher) PublishJSON(ctx context.Context, topic string, v any, attrs map[string]string) (string, error) {
	var b []byte
	var err error
	if m, ok := v.(json.Marshaler); ok {
		b, err = m.MarshalJSON() // json.Marshal would re-validate the output once more
	} else {
		b, err = json.Marshal(v)
	}
	if err != nil {
		return "", fault.Wrap(fault.Invalid, "ENCODE_FAILED", err, "encode message for %s", topic)
	}
	return p.Publish(ctx, topic, b, attrs)
}

// Close flushes pending messages and stops every topic's publisher.
func (p *Publisher) Close() {
	p.mu.Lock()
	pubs := p.pubs
	p.pubs = make(map[string]*pubsub.Publisher)
	p.mu.Unlock()
	var wg sync.WaitGroup
	for _, pub := range pubs {
		wg.Add(1)
		go func() { defer wg.Done(); pub.Stop() }()
	}
	wg.Wait()
}

// Classify wraps a Pub/Sub error in a fault.Error by its gRPC status: unavailable,
// deadline, exhausted, aborted and internal errors are transient; a missing topic or
// a permission problem is permanent until someone fixes the deployment; an invalid
// argument or a message too large for Pub/Sub is invalid input.
func Classify(err error) error {
	if err == nil {
		return nil
	}
	var fe *fault.Error
	if errors.As(err, &fe) {
		return err
	}
	if errors.Is(err, pubsub.ErrOversizedMessage) {
		// "item size exceeds bundle byte limit": the client refuses a message above
		// Pub/Sub's 10 MB request limit before sending it. Retrying cannot help.
		return fault.Wrap(fault.Invalid, CodeMessageTooLarge, err, "pubsub")
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return fault.Wrap(fault.Transient, "PUBSUB_TIMEOUT", err, "pubsub")
	}
	st, _ := status.FromError(err)
	switch st.Code() {
	case codes.NotFound:
		return fault.Wrap(fault.Permanent, "PUBSUB_NOT_FOUND", err, "pubsub")
	case codes.PermissionDenied, codes.Unauthenticated:
		return fault.Wrap(fault.Permanent, "PUBSUB_PERMISSION_DENIED", err, "pubsub")
	case codes.InvalidArgument:
		return fault.Wrap(fault.Invalid, "PUBSUB_INVALID_ARGUMENT", err, "pubsub")
	default:
		return fault.Wrap(fault.Transient, "PUBSUB_UNAVAILABLE", err, "pubsub")
	}
}

// FunctionPublishSettings suit a Cloud Function that publishes a message or two per
// invocation and waits for them: no batching delay.
var FunctionPublishSettings = func() pubsub.PublishSettings {
	s := pubsub.DefaultPublishSettings
	s.DelayThreshold = time.Millisecond
	s.CountThreshold = 1
	return s
}()

// Message is one message of a PublishBatch.
type Message struct {
	Data       []byte
	Attributes map[string]string
}

// PublishBatch publishes msgs to topic in one Publish request and waits for its
// acknowledgement: the message ids in order, or one classified error for all (none
// of them is then known to be published). It is the publish RPC alone, for a caller
// that batches itself (the connector's relay): the client's pubsub.Publisher spends
// more per message than the request does (a result and its channel, flow control,
// an OpenCensus tag context, the message sized twice, a bundler handing each batch
// to a goroutine). The request must fit Pub/Sub's limits: at most MaxBatchCount
// messages and 10 MB; the client library's own retry of transient codes (its
// default call options: 60 s) applies.
func (p *Publisher) PublishBatch(ctx context.Context, topic string, msgs []Message) (ids []string, err error) {
	msgs, end := traceBatch(ctx, topic, msgs)
	defer func() { end(err) }()
	req := &pubsubpb.PublishRequest{Topic: TopicName(p.client, topic), Messages: make([]*pubsubpb.PubsubMessage, len(msgs))}
	all := make([]pubsubpb.PubsubMessage, len(msgs))
	for i, m := range msgs {
		all[i].Data, all[i].Attributes = m.Data, m.Attributes
		req.Messages[i] = &all[i]
	}
	res, err := p.client.TopicAdminClient.Publish(ctx, req)
	if err != nil {
		return nil, Classify(fmt.Errorf("publish %d messages to %s: %w", len(msgs), topic, err))
	}
	if len(res.MessageIds) != len(msgs) {
		return nil, fault.New(fault.Transient, "PUBSUB_BAD_RESPONSE", "publish %d messages to %s: %d ids in the response",
			len(msgs), topic, len(res.MessageIds))
	}
	return res.MessageIds, nil
}

// MaxBatchCount is the most messages one Publish request may carry.
const MaxBatchCount = pubsub.MaxPublishRequestCount
