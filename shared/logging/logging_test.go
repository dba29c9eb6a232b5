package logging_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"strings"
	"testing"

	"go.opentelemetry.io/otel/trace"

	"github.com/bitbrat/twitch-edge/shared/config"
	"github.com/bitbrat/twitch-edge/shared/logging"
)

// line logs one record through New and returns it decoded.
func line(t *testing.T, ctx context.Context, level slog.Level, log func(*slog.Logger)) map[string]any {
	t.Helper()
	var b bytes.Buffer
	log(logging.New(&b, level, "test"))
	if b.Len() == 0 {
		return nil
	}
	var m map[string]any
	if err := json.Unmarshal(b.Bytes(), &m); err != nil {
		t.Fatalf("not one JSON line: %q: %v", b.String(), err)
	}
	return m
}

func TestCloudLoggingFields(t *testing.T) {
	ctx := logging.WithTrace(logging.WithCorrelationID(context.Background(), "c-1"), "projects/p/traces/t")
	for _, c := range []struct {
		level slog.Level
		want  string
	}{{slog.LevelDebug, "DEBUG"}, {slog.LevelInfo, "INFO"}, {slog.LevelWarn, "WARNING"}, {slog.LevelError, "ERROR"}} {
		m := line(t, ctx, slog.LevelDebug, func(l *slog.Logger) { l.Log(ctx, c.level, "hello", "n", 1) })
		if m["severity"] != c.want || m["message"] != "hello" || m["component"] != "test" ||
			m[logging.KeyCorrelationID] != "c-1" || m[logging.KeyTrace] != "projects/p/traces/t" || m["time"] == nil {
			t.Errorf("level %v: %v", c.level, m)
		}
		if _, ok := m["level"]; ok {
			t.Errorf("level key kept: %v", m)
		}
	}
	if m := line(t, ctx, slog.LevelWarn, func(l *slog.Logger) { l.Info("quiet") }); m != nil {
		t.Errorf("info logged at warn level: %v", m)
	}
}

func TestParseLevel(t *testing.T) {
	for in, want := range map[string]slog.Level{"": slog.LevelInfo, "debug": slog.LevelDebug, " WARN ": slog.LevelWarn,
		"warning": slog.LevelWarn, "Error": slog.LevelError, "info": slog.LevelInfo} {
		if got, ok := logging.ParseLevel(in); !ok || got != want {
			t.Errorf("ParseLevel(%q) = %v %v, want %v", in, got, ok, want)
		}
	}
	if _, ok := logging.ParseLevel("loud"); ok {
		t.Error("ParseLevel accepted loud")
	}
}

// Shapes of Twitch credentials (made up): access tokens are 30 lower-case letters and
// digits, refresh tokens 50.
const (
	accessToken  = "0123456789abcdefghijklmnopqrst"
	refreshToken = "abcdefghijklmnopqrstuvwxyz0123456789abcdefghijklmn"
)

func TestRedaction(t *testing.T) {
	for _, c := range []struct {
		name string
		attr slog.Attr
		// want is the logged value; "" means Redacted.
		want any
	}{
		{"secret type under an innocent key", slog.Any("value", config.Secret("hunter2")), ""},
		{"secret type in a group", slog.Group("cfg", slog.Any("x", config.Secret("hunter2"))), map[string]any{"x": logging.Redacted}},
		{"string under a secret key", slog.String("accessToken", "whatever"), ""},
		{"authorization header", slog.String("Authorization", "Bearer abc"), ""},
		{"bearer under an innocent key", slog.String("header", "Bearer "+accessToken), "Bearer " + logging.Redacted},
		{"oauth header inside text", slog.String("detail", "sent OAuth abcdefgh12345678 to helix"), "sent OAuth " + logging.Redacted + " to helix"},
		{"access token shape", slog.String("note", "got "+accessToken), "got " + logging.Redacted},
		{"refresh token shape", slog.String("value", refreshToken), logging.Redacted},
		{"token inside an error", slog.Any("error", errors.New("refresh "+refreshToken+" refused")), "refresh " + logging.Redacted + " refused"},
		{"token in a list", slog.Any("items", []string{"a", accessToken}), []any{"a", logging.Redacted}},
		{"boolean under a token key", slog.Bool("staticToken", true), true},
		{"number under a token key", slog.Int("tokenExpiresIn", 3600), float64(3600)},
		{"uuid", slog.String("eventsubMessageId", "befa7b53-d79d-478f-86b9-120f112b044e"), "befa7b53-d79d-478f-86b9-120f112b044e"},
		{"session id", slog.String("sessionId", "AQoQexAWVYKSTIu4ec_2VAxyuhAB"), "AQoQexAWVYKSTIu4ec_2VAxyuhAB"},
		{"ordinary text", slog.String("msg2", "subscriptions created for 4 channels"), "subscriptions created for 4 channels"},
		{"longer word is not a token", slog.String("word", accessToken+"x"), accessToken + "x"},
	} {
		t.Run(c.name, func(t *testing.T) {
			m := line(t, context.Background(), slog.LevelInfo, func(l *slog.Logger) { l.Info("m", c.attr) })
			want := c.want
			if want == "" {
				want = logging.Redacted
			}
			got := m[c.attr.Key]
			if gb, _ := json.Marshal(got); string(gb) != mustJSON(t, want) {
				t.Errorf("%s logged as %s, want %s", c.attr.Key, gb, mustJSON(t, want))
			}
		})
	}
}

func mustJSON(t *testing.T, v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestNoSecretInAnyLine logs a whole configuration the way a careless line would and
// checks no credential appears.
func TestNoSecretInAnyLine(t *testing.T) {
	var b bytes.Buffer
	l := logging.New(&b, slog.LevelDebug, "test")
	tw := config.Twitch{ClientID: "cid", ClientSecret: config.Secret("client-secret-value"), BotAccessToken: config.Secret(accessToken)}
	l.Info("config", "twitch", tw, "copy", tw.BotAccessToken, "raw", tw.BotAccessToken.Reveal())
	l.Error("refresh failed", "error", errors.New("invalid refresh token "+refreshToken))
	for _, s := range []string{"client-secret-value", accessToken, refreshToken} {
		if strings.Contains(b.String(), s) {
			t.Errorf("%q logged:\n%s", s, b.String())
		}
	}
}

func TestTraceFieldsFromTheSpanInTheContext(t *testing.T) {
	tid, _ := trace.TraceIDFromHex("4bf92f3577b34da6a3ce929d0e0e4736")
	sid, _ := trace.SpanIDFromHex("00f067aa0ba902b7")
	span := trace.NewSpanContext(trace.SpanContextConfig{TraceID: tid, SpanID: sid, TraceFlags: trace.FlagsSampled})
	ctx := trace.ContextWithSpanContext(context.Background(), span)
	for _, c := range []struct {
		name, project, want string
	}{
		{"with the project", "p1", "projects/p1/traces/4bf92f3577b34da6a3ce929d0e0e4736"},
		{"without it", "", "4bf92f3577b34da6a3ce929d0e0e4736"},
	} {
		t.Run(c.name, func(t *testing.T) {
			var b bytes.Buffer
			logging.New(&b, slog.LevelInfo, "test", logging.TraceProject(c.project)).With("k", "v").InfoContext(ctx, "hello")
			var m map[string]any
			if err := json.Unmarshal(b.Bytes(), &m); err != nil {
				t.Fatal(err)
			}
			if m[logging.KeyTrace] != c.want || m[logging.KeySpanID] != "00f067aa0ba902b7" || m[logging.KeyTraceSampled] != true {
				t.Errorf("line %v", m)
			}
		})
	}
	var b bytes.Buffer
	logging.New(&b, slog.LevelInfo, "test", logging.TraceProject("p1")).InfoContext(context.Background(), "no span")
	if strings.Contains(b.String(), logging.KeyTrace) {
		t.Errorf("a line without a span carries a trace: %s", b.String())
	}
}
