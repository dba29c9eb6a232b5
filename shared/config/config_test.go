package config

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"github.com/bitbrat/twitch-edge/shared/event"
)

func TestReadTwitchDefaultsAndOverrides(t *testing.T) {
	r := NewReader(Map(map[string]string{
		"TWITCH_CLIENT_ID":        "cid",
		"TWITCH_CHANNELS":         "alice, bob\ncarol  12345",
		"TWITCH_API_BASE_URL":     "http://127.0.0.1:9999/helix/",
		"TWITCH_BOT_ACCESS_TOKEN": "tok-very-secret",
	}))
	tw := ReadTwitch(r)
	if err := r.Err(); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(tw.Channels, "|"); got != "alice|bob|carol|12345" {
		t.Errorf("channels = %s", got)
	}
	if tw.APIBaseURL != "http://127.0.0.1:9999/helix" || tw.EventSubSubscriptionsURL != "http://127.0.0.1:9999/helix/eventsub/subscriptions" {
		t.Errorf("urls = %s %s", tw.APIBaseURL, tw.EventSubSubscriptionsURL)
	}
	if tw.AuthBaseURL != DefaultAuthBaseURL || tw.EventSubWSURL != DefaultEventSubWSURL {
		t.Errorf("defaults = %s %s", tw.AuthBaseURL, tw.EventSubWSURL)
	}
	if tw.BotAccessToken.Reveal() != "tok-very-secret" {
		t.Errorf("secret value lost")
	}
}

func TestBadValuesNameTheVariable(t *testing.T) {
	cases := []struct {
		env  map[string]string
		want string
	}{
		{map[string]string{}, "TWITCH_CLIENT_ID: required"},
		{map[string]string{"TWITCH_CLIENT_ID": "x", "TWITCH_API_BASE_URL": "not a url"}, "TWITCH_API_BASE_URL"},
		{map[string]string{"TWITCH_CLIENT_ID": "x", "TWITCH_EVENTSUB_WS_URL": "http://x/ws"}, "TWITCH_EVENTSUB_WS_URL"},
		{map[string]string{"TWITCH_CLIENT_ID": "x", "TWITCH_BOT_USER_ID": "bot"}, "TWITCH_BOT_USER_ID"},
	}
	for _, c := range cases {
		r := NewReader(Map(c.env))
		ReadTwitch(r)
		if err := r.Err(); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("env %v: err = %v, want mention of %s", c.env, err, c.want)
		}
	}
	r := NewReader(Map(map[string]string{"CONNECTOR_BUFFER": "-1", "LOG_LEVEL": "loud"}))
	r.Int("CONNECTOR_BUFFER", 10, 1, 100)
	r.LogLevel("LOG_LEVEL")
	if err := r.Err(); err == nil || !strings.Contains(err.Error(), "CONNECTOR_BUFFER") || !strings.Contains(err.Error(), "LOG_LEVEL") {
		t.Errorf("want both variables named, got %v", err)
	}
}

func TestCommonProject(t *testing.T) {
	r := NewReader(Map(map[string]string{"PUBSUB_EMULATOR_HOST": "127.0.0.1:1", "BUS_PREFIX": "dev.", "LOG_LEVEL": "debug"}))
	c := ReadCommon(r)
	if r.Err() != nil || c.Project != DefaultLocalProject || c.LogLevel != slog.LevelDebug {
		t.Errorf("emulator common = %+v, %v", c, r.Err())
	}
	if got := ReadTopics(r, c.BusPrefix); got.Ingress != "dev.internal.ingress.v1" || got.Raw != "dev."+event.TopicEventSubRaw {
		t.Errorf("topics = %+v", got)
	}
	r = NewReader(Map(map[string]string{}))
	ReadCommon(r)
	if err := r.Err(); err == nil || !strings.Contains(err.Error(), "GOOGLE_CLOUD_PROJECT") {
		t.Errorf("cloud without project: %v", err)
	}
}

func TestSecretNeverPrints(t *testing.T) {
	s := Secret("hunter2")
	var sb strings.Builder
	fmt.Fprintf(&sb, "%s %v %+v %#v %q", s, s, struct{ S Secret }{s}, s, s)
	j, _ := json.Marshal(struct{ S Secret }{s})
	sb.Write(j)
	slog.New(slog.NewJSONHandler(&sb, nil)).Info("x", "s", s)
	if strings.Contains(sb.String(), "hunter2") {
		t.Fatalf("secret leaked: %s", sb.String())
	}
}
