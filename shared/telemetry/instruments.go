package telemetry

import (
	"context"
	"errors"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
)

// Metric names shared by the functions and the Twitch client. The connector's own
// series are in connector/metrics. They are documented in the README's operations
// section and used by terraform/monitoring.tf: renaming one breaks a dashboard.
const (
	MetricFunctionMessages = "function_messages_total"
	MetricEgressOutcomes   = "egress_outcomes_total"
	MetricBudgetRemaining  = "egress_send_budget_remaining"
	MetricWhisperCap       = "egress_whisper_recipients_remaining"
	MetricHelixRemaining   = "helix_ratelimit_remaining"
	MetricHelixRequests    = "helix_requests_total"
	MetricTokenRefreshes   = "twitch_token_refresh_total"
)

// Outcomes of a function's message (function_messages_total's outcome label).
const (
	OutcomeOK         = "ok"
	OutcomeRetry      = "retry"
	OutcomeDeadLetter = "dead_letter"
)

// Instruments are the series the functions and the Twitch client record. A nil
// *Instruments records nothing, so code and tests that do not care pass nil.
type Instruments struct {
	messages  metric.Int64Counter
	egress    metric.Int64Counter
	budget    metric.Int64Gauge
	whispers  metric.Int64Gauge
	helix     metric.Int64Gauge
	helixReqs metric.Int64Counter
	refresh   metric.Int64Counter
}

// NewInstruments creates the instruments on m.
func NewInstruments(m metric.Meter) (*Instruments, error) {
	var i Instruments
	var errs [7]error
	i.messages, errs[0] = m.Int64Counter(MetricFunctionMessages,
		metric.WithDescription("Messages a function handled, by function, outcome (ok, retry, dead_letter) and code."))
	i.egress, errs[1] = m.Int64Counter(MetricEgressOutcomes,
		metric.WithDescription("Egress deliveries reported to finalize, by kind (chat, whisper), status (SENT, FAILED) and code."))
	i.budget, errs[2] = m.Int64Gauge(MetricBudgetRemaining,
		metric.WithDescription("Sends left in the tightest window of a send budget after the last reservation, by budget (chat, whisper) and channel."))
	i.whispers, errs[3] = m.Int64Gauge(MetricWhisperCap,
		metric.WithDescription("Distinct whisper recipients the bot may still add within the day (Twitch allows 40)."))
	i.helix, errs[4] = m.Int64Gauge(MetricHelixRemaining,
		metric.WithDescription("Helix rate-limit points left in the bucket (Ratelimit-Remaining of the last response)."))
	i.helixReqs, errs[5] = m.Int64Counter(MetricHelixRequests,
		metric.WithDescription("Twitch API responses, by host and status class (2xx, 4xx, 429, 5xx, error)."))
	i.refresh, errs[6] = m.Int64Counter(MetricTokenRefreshes,
		metric.WithDescription("Twitch user-token refreshes, by outcome (ok, or the error code)."))
	if err := errors.Join(errs[:]...); err != nil {
		return nil, err
	}
	return &i, nil
}

// Message counts one handled message.
func (i *Instruments) Message(ctx context.Context, function, outcome, code string) {
	if i == nil {
		return
	}
	i.messages.Add(ctx, 1, metric.WithAttributes(
		attribute.String("function", function), attribute.String("outcome", outcome), attribute.String("code", code)))
}

// EgressOutcome counts one delivery outcome (code empty for SENT).
func (i *Instruments) EgressOutcome(ctx context.Context, kind, status, code string) {
	if i == nil {
		return
	}
	i.egress.Add(ctx, 1, metric.WithAttributes(
		attribute.String("kind", kind), attribute.String("status", status), attribute.String("code", code)))
}

// BudgetRemaining records a send budget's headroom.
func (i *Instruments) BudgetRemaining(ctx context.Context, budget, channel string, remaining int) {
	if i == nil {
		return
	}
	i.budget.Record(ctx, int64(remaining), metric.WithAttributes(
		attribute.String("budget", budget), attribute.String("channel", channel)))
}

// WhisperRecipientsRemaining records the daily recipient cap's headroom.
func (i *Instruments) WhisperRecipientsRemaining(ctx context.Context, remaining int) {
	if i == nil {
		return
	}
	i.whispers.Record(ctx, int64(remaining))
}

// TokenRefresh counts one refresh by outcome ("ok" or an error code).
func (i *Instruments) TokenRefresh(ctx context.Context, outcome string) {
	if i == nil {
		return
	}
	i.refresh.Add(ctx, 1, metric.WithAttributes(attribute.String("outcome", outcome)))
}
