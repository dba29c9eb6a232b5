// Package logging builds the process's slog.Logger: JSON lines with the field names
// Cloud Logging reads (severity, message, time, logging.googleapis.com/trace), the
// correlation id of the event being handled on every line, and a last line of defence
// against secrets reaching a log.
package logging

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"regexp"
	"slices"
	"strings"

	"go.opentelemetry.io/otel/trace"
)

// Keys Cloud Logging understands in a JSON log line.
const (
	KeySeverity      = "severity"
	KeyMessage       = "message"
	KeyCorrelationID = "correlationId"
	KeyTrace         = "logging.googleapis.com/trace"
	KeySpanID        = "logging.googleapis.com/spanId"
	KeyTraceSampled  = "logging.googleapis.com/trace_sampled"
)

// Option configures New.
type Option func(*contextHandler)

// TraceProject names the Google Cloud project traces are filed under: a line logged
// with a context that carries an OpenTelemetry span gets the trace as
// "projects/P/traces/T" (the form Cloud Logging links to Cloud Trace) and the span id.
// Without it the trace field is the bare trace id.
func TraceProject(project string) Option {
	return func(h *contextHandler) { h.project = project }
}

// New returns a JSON logger writing to w at level. Component names the process part
// (e.g. "connector", "normalize") and is added to every line.
func New(w io.Writer, level slog.Leveler, component string, opts ...Option) *slog.Logger {
	h := slog.NewJSONHandler(w, &slog.HandlerOptions{
		Level:       level,
		ReplaceAttr: replaceAttr,
	})
	ch := &contextHandler{Handler: h}
	for _, o := range opts {
		o(ch)
	}
	l := slog.New(ch)
	if component != "" {
		l = l.With("component", component)
	}
	return l
}

// ParseLevel turns LOG_LEVEL's value (debug, info, warn, error; case-insensitive)
// into a level; ok is false for anything else.
func ParseLevel(s string) (slog.Level, bool) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "debug":
		return slog.LevelDebug, true
	case "", "info":
		return slog.LevelInfo, true
	case "warn", "warning":
		return slog.LevelWarn, true
	case "error":
		return slog.LevelError, true
	}
	return slog.LevelInfo, false
}

func replaceAttr(groups []string, a slog.Attr) slog.Attr {
	if len(groups) > 0 {
		return redact(a)
	}
	switch a.Key {
	case slog.LevelKey:
		a.Key = KeySeverity
		if lv, ok := a.Value.Any().(slog.Level); ok {
			a.Value = slog.StringValue(severity(lv))
		}
	case slog.MessageKey:
		a.Key = KeyMessage
	}
	return redact(a)
}

// severity maps slog levels onto Cloud Logging's LogSeverity names.
func severity(l slog.Level) string {
	switch {
	case l >= slog.LevelError:
		return "ERROR"
	case l >= slog.LevelWarn:
		return "WARNING"
	case l >= slog.LevelInfo:
		return "INFO"
	default:
		return "DEBUG"
	}
}

// Redaction is the last line of defence, in three ways: by type (config.Secret
// resolves to Redacted through slog.LogValuer before this runs, under any key), by
// value (what looks like a bearer header or a Twitch access or refresh token, under any
// key, also inside an error's text), and by key (a string under an obvious name).
// Numbers, flags, durations and times are never credentials: a boolean staticToken
// stays readable.

// secretKeys are attribute keys whose string values are never written. Code should
// not log secrets in the first place; this catches the mistake of logging a whole
// credential or header under an obvious name.
var secretKeys = []string{"token", "secret", "password", "authorization", "apikey", "api_key"}

// Redacted is what a secret attribute's value is replaced with.
const Redacted = "[REDACTED]"

var (
	// authHeader matches an Authorization header's credentials ("Bearer x", "OAuth x").
	authHeader = regexp.MustCompile(`(?i)\b(bearer|oauth)\s+[A-Za-z0-9._~+/=-]{8,}`)
	// twitchToken matches the shapes of Twitch's user access tokens (30 lower-case
	// letters and digits) and refresh tokens (50), as whole words.
	twitchToken = regexp.MustCompile(`\b([a-z0-9]{30}|[a-z0-9]{50})\b`)
)

func redact(a slog.Attr) slog.Attr {
	switch a.Value.Kind() {
	case slog.KindString:
		if secretKey(a.Key) {
			a.Value = slog.StringValue(Redacted)
		} else if r, ok := redactValue(a.Value.String()); ok {
			a.Value = slog.StringValue(r)
		}
	case slog.KindAny:
		if secretKey(a.Key) {
			a.Value = slog.StringValue(Redacted)
			return a
		}
		switch v := a.Value.Any().(type) {
		case error:
			if r, ok := redactValue(v.Error()); ok {
				a.Value = slog.StringValue(r)
			}
		case fmt.Stringer:
			if r, ok := redactValue(v.String()); ok {
				a.Value = slog.StringValue(r)
			}
		case []string:
			var c []string
			for i, e := range v {
				if r, ok := redactValue(e); ok {
					if c == nil {
						c = slices.Clone(v)
					}
					c[i] = r
				}
			}
			if c != nil {
				a.Value = slog.AnyValue(c)
			}
		}
	}
	return a
}

func secretKey(key string) bool {
	k := strings.ToLower(key)
	for _, s := range secretKeys {
		if strings.Contains(k, s) {
			return true
		}
	}
	return false
}

// redactValue replaces what looks like a credential inside s; ok is false when s has
// none (the common case costs a length check).
func redactValue(s string) (string, bool) {
	if len(s) < 14 {
		return s, false
	}
	r := authHeader.ReplaceAllString(s, "$1 "+Redacted)
	if len(r) >= 30 {
		r = twitchToken.ReplaceAllString(r, Redacted)
	}
	return r, r != s
}

type ctxKey struct{}

type ctxFields struct {
	correlationID string
	trace         string
}

// WithCorrelationID returns ctx carrying the correlation id of the event being handled;
// every line logged with that context carries it.
func WithCorrelationID(ctx context.Context, id string) context.Context {
	f, _ := ctx.Value(ctxKey{}).(ctxFields)
	f.correlationID = id
	return context.WithValue(ctx, ctxKey{}, f)
}

// WithTrace returns ctx carrying a Cloud Trace resource name
// ("projects/P/traces/T") that Cloud Logging links the line to.
func WithTrace(ctx context.Context, trace string) context.Context {
	f, _ := ctx.Value(ctxKey{}).(ctxFields)
	f.trace = trace
	return context.WithValue(ctx, ctxKey{}, f)
}

// CorrelationID returns the correlation id carried by ctx, if any.
func CorrelationID(ctx context.Context) string {
	f, _ := ctx.Value(ctxKey{}).(ctxFields)
	return f.correlationID
}

// contextHandler adds what the context carries: the correlation id, and the trace of
// the current OpenTelemetry span (or one given with WithTrace).
type contextHandler struct {
	slog.Handler
	project string
}

func (h *contextHandler) Handle(ctx context.Context, r slog.Record) error {
	f, _ := ctx.Value(ctxKey{}).(ctxFields)
	if f.correlationID != "" {
		r.AddAttrs(slog.String(KeyCorrelationID, f.correlationID))
	}
	if sc := trace.SpanContextFromContext(ctx); sc.IsValid() {
		t := sc.TraceID().String()
		if h.project != "" {
			t = "projects/" + h.project + "/traces/" + t
		}
		r.AddAttrs(slog.String(KeyTrace, t), slog.String(KeySpanID, sc.SpanID().String()),
			slog.Bool(KeyTraceSampled, sc.IsSampled()))
	} else if f.trace != "" {
		r.AddAttrs(slog.String(KeyTrace, f.trace))
	}
	return h.Handler.Handle(ctx, r)
}

func (h *contextHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return &contextHandler{h.Handler.WithAttrs(as), h.project}
}

func (h *contextHandler) WithGroup(name string) slog.Handler {
	return &contextHandler{h.Handler.WithGroup(name), h.project}
}
