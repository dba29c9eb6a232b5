package bus

import (
	"context"
	"maps"
	"strings"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
)

// AttributeCarrier is a message's attributes as an OpenTelemetry carrier under the
// Pub/Sub client library's prefix (googclient_traceparent): what the library injects
// on Publish, and what a consumer extracts to continue the trace.
type AttributeCarrier map[string]string

const traceAttrPrefix = "googclient_"

func (c AttributeCarrier) Get(key string) string { return c[traceAttrPrefix+key] }
func (c AttributeCarrier) Set(key, v string)     { c[traceAttrPrefix+key] = v }
func (c AttributeCarrier) Keys() []string {
	var out []string
	for k := range c {
		if rest, ok := strings.CutPrefix(k, traceAttrPrefix); ok {
			out = append(out, rest)
		}
	}
	return out
}

const tracerScope = "github.com/bitbrat/twitch-edge/shared/bus"

// traceBatch starts one producer span per message of a batch, as the client
// library's Publish does, and carries each span's context in the message's
// attributes (a copy: the caller's map is left alone), so that a consumer continues
// the trace across PublishBatch too. With no tracer provider installed the spans
// are not recording and nothing is added. end closes the spans with err.
func traceBatch(ctx context.Context, topic string, msgs []Message) (out []Message, end func(err error)) {
	tracer := otel.Tracer(tracerScope)
	var spans []trace.Span
	out = msgs
	for i, m := range msgs {
		_, span := tracer.Start(ctx, topic+" create", trace.WithSpanKind(trace.SpanKindProducer),
			trace.WithAttributes(attribute.String("messaging.system", "gcp_pubsub"),
				attribute.String("messaging.destination.name", topic)))
		if !span.IsRecording() {
			span.End()
			continue
		}
		if len(spans) == 0 {
			out = append([]Message(nil), msgs...)
		}
		a := maps.Clone(m.Attributes)
		if a == nil {
			a = map[string]string{}
		}
		otel.GetTextMapPropagator().Inject(trace.ContextWithSpan(ctx, span), AttributeCarrier(a))
		out[i].Attributes = a
		spans = append(spans, span)
	}
	return out, func(err error) {
		for _, s := range spans {
			if err != nil {
				s.SetStatus(codes.Error, err.Error())
			}
			s.End()
		}
	}
}
