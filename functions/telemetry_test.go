package functions

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"
	"time"

	cloudevent "github.com/cloudevents/sdk-go/v2/event"
	"go.opentelemetry.io/otel/trace"

	"github.com/bitbrat/twitch-edge/functions/trigger"
	"github.com/bitbrat/twitch-edge/shared/bus"
	"github.com/bitbrat/twitch-edge/shared/emulators"
	"github.com/bitbrat/twitch-edge/shared/event"
	"github.com/bitbrat/twitch-edge/shared/fault"
	"github.com/bitbrat/twitch-edge/shared/logging"
	"github.com/bitbrat/twitch-edge/shared/telemetry"
	"github.com/bitbrat/twitch-edge/shared/telemetry/otlptest"
)

// telemetryEnv is an env with real providers exporting to an in-test OTLP receiver.
func telemetryEnv(t *testing.T) (*env, *otlptest.Receiver) {
	t.Helper()
	rcv, err := otlptest.Start()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(rcv.Stop)
	tel, err := telemetry.Setup(context.Background(), telemetry.Config{Service: "functions", Instance: "t",
		Project: "p", Endpoint: rcv.Endpoint(), SampleRatio: 1, ExportInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = tel.Shutdown(context.Background()) })
	ins, err := telemetry.NewInstruments(tel.Meter(scope))
	if err != nil {
		t.Fatal(err)
	}
	return &env{tel: tel, ins: ins}, rcv
}

func waitValues(t *testing.T, e *env, rcv *otlptest.Receiver, want map[string]float64) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second) // hang guard
	defer cancel()
	if err := e.tel.ForceFlush(ctx); err != nil {
		t.Fatal(err)
	}
	err := rcv.Wait(ctx, func() bool {
		for k, v := range want {
			if got, ok := rcv.Value(k); !ok || got != v {
				return false
			}
		}
		return true
	})
	if err != nil {
		for k, v := range want {
			got, ok := rcv.Value(k)
			t.Logf("%s = %v (%v), want %v", k, got, ok, v)
		}
		t.Fatal(err)
	}
}

// The trigger runs each message in a consumer span continuing the message's trace —
// the handler, the trigger's own log lines and the dead letter inside it — and counts
// the outcome the trigger applied.
func TestObservedContinuesTheMessagesTraceAndCountsOutcomes(t *testing.T) {
	e, rcv := telemetryEnv(t)
	ctx := context.Background()
	ps, err := bus.NewClient(ctx, emulators.ProjectID(t), bus.WithEmulator(emulators.Host(emulators.PubSub)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ps.Close() })
	if err := bus.EnsureTopics(ctx, ps, event.TopicDeadLetter); err != nil {
		t.Fatal(err)
	}
	pub := bus.NewPublisher(ps, &bus.FunctionPublishSettings)
	t.Cleanup(pub.Close)
	var logs bytes.Buffer
	log := logging.New(&logs, slog.LevelInfo, "functions", logging.TraceProject("p"))
	dl := trigger.DeadLetters{Pub: pub, Topic: event.TopicDeadLetter, Source: "test", OriginalType: "raw"}

	// The upstream publish: a span whose context travels in the attributes as the
	// Pub/Sub client writes it (googclient_traceparent).
	pctx, parent := e.tel.Tracer("test").Start(ctx, "upstream create")
	attrs := map[string]string{}
	e.tel.Propagator.Inject(pctx, bus.AttributeCarrier(attrs))
	parent.End()
	if attrs["googclient_traceparent"] == "" {
		t.Fatalf("no googclient_traceparent in %v", attrs)
	}
	msg, _ := json.Marshal(map[string]any{"message": map[string]any{"data": []byte("{}"), "messageId": "m1", "attributes": attrs}})
	ce := cloudevent.New()
	ce.SetID("ce-1")
	ce.SetType("google.cloud.pubsub.topic.v1.messagePublished")
	ce.SetSource("//pubsub.googleapis.com/projects/p/topics/raw")
	if err := ce.SetData("application/json", json.RawMessage(msg)); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		err     error
		outcome string
	}{
		{nil, telemetry.OutcomeOK},
		{fault.New(fault.Transient, "PUBSUB_UNAVAILABLE", "down"), telemetry.OutcomeRetry},
		{fault.New(fault.Invalid, "EVENTSUB_BAD_FRAME", "bad"), telemetry.OutcomeDeadLetter},
	} {
		var seen trace.SpanContext
		h := func(ctx context.Context, _ trigger.Message) error {
			seen = trace.SpanContextFromContext(ctx)
			return c.err
		}
		_ = trigger.Wrap("Normalize", log, dl, h, observed("Normalize", e))(ctx, ce)
		if seen.TraceID() != parent.SpanContext().TraceID() || seen.SpanID() == parent.SpanContext().SpanID() {
			t.Errorf("%s: the handler's span %v does not continue the message's trace %v", c.outcome, seen, parent.SpanContext())
		}
	}
	// The trigger's lines (will retry, dead-lettering) carry the trace.
	want := "projects/p/traces/" + parent.SpanContext().TraceID().String()
	lines := strings.Split(strings.TrimSpace(logs.String()), "\n")
	if len(lines) < 2 {
		t.Fatalf("log lines: %q", lines)
	}
	for _, l := range lines {
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil || m[logging.KeyTrace] != want {
			t.Errorf("line without the trace %s: %s", want, l)
		}
	}
	waitValues(t, e, rcv, map[string]float64{
		otlptest.Key("functions", telemetry.MetricFunctionMessages, "function=Normalize", "outcome=ok", "code="):                            1,
		otlptest.Key("functions", telemetry.MetricFunctionMessages, "function=Normalize", "outcome=retry", "code=PUBSUB_UNAVAILABLE"):       1,
		otlptest.Key("functions", telemetry.MetricFunctionMessages, "function=Normalize", "outcome=dead_letter", "code=EVENTSUB_BAD_FRAME"): 1,
	})
}

func TestOutcomesCountsWhatIsPublishedToFinalize(t *testing.T) {
	e, rcv := telemetryEnv(t)
	ctx := context.Background()
	ps, err := bus.NewClient(ctx, emulators.ProjectID(t), bus.WithEmulator(emulators.Host(emulators.PubSub)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ps.Close() })
	if err := bus.EnsureTopics(ctx, ps, event.TopicFinalize, "other"); err != nil {
		t.Fatal(err)
	}
	pub := bus.NewPublisher(ps, &bus.FunctionPublishSettings)
	t.Cleanup(pub.Close)
	p := outcomes{next: pub, topic: event.TopicFinalize, kind: "chat", ins: e.ins}
	for _, m := range []struct {
		topic string
		f     event.FinalizeMessage
	}{
		{event.TopicFinalize, event.FinalizeMessage{CorrelationID: "c1", Status: event.StatusSent}},
		{event.TopicFinalize, event.FinalizeMessage{CorrelationID: "c2", Status: event.StatusFailed, Error: &event.ErrorInfo{Code: "CHANNEL_NOT_ALLOWED"}}},
		{"other", event.FinalizeMessage{CorrelationID: "c3", Status: event.StatusSent}}, // not an outcome
	} {
		b, _ := json.Marshal(m.f)
		if _, err := p.Publish(ctx, m.topic, b, nil); err != nil {
			t.Fatal(err)
		}
	}
	waitValues(t, e, rcv, map[string]float64{
		otlptest.Key("functions", telemetry.MetricEgressOutcomes, "kind=chat", "status=SENT", "code="):                      1,
		otlptest.Key("functions", telemetry.MetricEgressOutcomes, "kind=chat", "status=FAILED", "code=CHANNEL_NOT_ALLOWED"): 1,
	})
}
