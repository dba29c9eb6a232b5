package functions

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/bitbrat/twitch-edge/functions/egress"
	"github.com/bitbrat/twitch-edge/functions/trigger"
	"github.com/bitbrat/twitch-edge/shared/bus"
	"github.com/bitbrat/twitch-edge/shared/fault"
	"github.com/bitbrat/twitch-edge/shared/store"
	"github.com/bitbrat/twitch-edge/shared/telemetry"
)

// scope names the functions' instruments and spans.
const scope = "github.com/bitbrat/twitch-edge/functions"

// MetricsHandler serves the instance's metrics in the Prometheus format (the local
// server mounts it at /metrics); empty until the first message built the clients.
func MetricsHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		envMu.Lock()
		e := envVal
		envMu.Unlock()
		if e == nil || e.tel.Handler() == nil {
			w.Header().Set("Content-Type", "text/plain; version=0.0.4")
			return
		}
		e.tel.Handler().ServeHTTP(w, r)
	})
}

// observed is the trigger's Observe hook: each message is handled in a consumer span
// that continues the trace the message carries (the Pub/Sub client's
// googclient_traceparent attribute), and its outcome is counted as the trigger applies
// it: ok, retry, or dead_letter.
func observed(name string, e *env) trigger.Option {
	tracer := e.tel.Tracer(scope)
	return trigger.Observe(func(ctx context.Context, m trigger.Message) (context.Context, func(error)) {
		ctx = e.tel.Propagator.Extract(ctx, bus.AttributeCarrier(m.Attributes))
		ctx, span := tracer.Start(ctx, name+" process", trace.WithSpanKind(trace.SpanKindConsumer),
			trace.WithAttributes(attribute.String("messaging.system", "gcp_pubsub"),
				attribute.String("messaging.message.id", m.ID), attribute.String("messaging.destination.name", m.Topic)))
		return ctx, func(err error) {
			outcome, code := telemetry.OutcomeOK, ""
			if err != nil {
				outcome, code = telemetry.OutcomeDeadLetter, fault.CodeOf(err, "UNPROCESSABLE")
				if fault.Retryable(err) {
					outcome, code = telemetry.OutcomeRetry, fault.CodeOf(err, "UNKNOWN")
				}
				span.SetStatus(codes.Error, code)
			}
			span.End()
			e.ins.Message(ctx, name, outcome, code)
		}
	})
}

// outcomes counts the delivery outcomes an egress function publishes to finalize.
type outcomes struct {
	next        egress.Publisher
	topic, kind string
	ins         *telemetry.Instruments
}

func (p outcomes) Publish(ctx context.Context, topic string, data []byte, attrs map[string]string) (string, error) {
	id, err := p.next.Publish(ctx, topic, data, attrs)
	if err == nil && topic == p.topic {
		var f struct {
			Status string `json:"status"`
			Error  *struct {
				Code string `json:"code"`
			} `json:"error"`
		}
		if json.Unmarshal(data, &f) == nil {
			code := ""
			if f.Error != nil {
				code = f.Error.Code
			}
			p.ins.EgressOutcome(ctx, p.kind, f.Status, code)
		}
	}
	return id, err
}

// recipients records the whisper recipient cap's headroom after each admission.
type recipients struct {
	egress.Recipients
	ins *telemetry.Instruments
}

func (r recipients) Admit(ctx context.Context, req store.WhisperRequest) (store.WhisperAdmission, error) {
	adm, err := r.Recipients.Admit(ctx, req)
	if err == nil {
		r.ins.WhisperRecipientsRemaining(ctx, max(req.Cap-adm.Recipients, 0))
	}
	return adm, err
}

// budgets are the send budgets reporting their headroom: keys are "chat:BOT:CHANNEL"
// and "whisper:BOT".
func (e *env) budgets() *store.SendBudgets {
	return store.NewSendBudgets(e.fs).Observed(func(ctx context.Context, key string, left int) {
		kind, rest, _ := strings.Cut(key, ":")
		_, channel, _ := strings.Cut(rest, ":")
		e.ins.BudgetRemaining(ctx, kind, channel, left)
	})
}
