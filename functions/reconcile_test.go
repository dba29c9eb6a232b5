package functions

import (
	"errors"
	"maps"
	"strings"
	"testing"

	"github.com/bitbrat/twitch-edge/shared/config"
)

func TestReadReconcileSettings(t *testing.T) {
	base := map[string]string{
		"TWITCH_CLIENT_ID": "client", "TWITCH_CLIENT_SECRET": "client-secret-value", "TWITCH_CHANNELS": "brat,1002",
		"CONDUIT_WEBHOOK_SHARDS": "2", "EVENTSUB_WEBHOOK_CALLBACK_URL": "https://hook.example/EventSubWebhook",
		SettingWebhookSecret: "a-webhook-secret-of-some-length", "EVENTSUB_EXTRA_SUBSCRIPTIONS": "stream.online:1",
	}
	with := func(k, v string) map[string]string {
		m := maps.Clone(base)
		if v == "" {
			delete(m, k)
		} else {
			m[k] = v
		}
		return m
	}
	for _, tc := range []struct {
		name    string
		env     map[string]string
		wantErr string
	}{
		{"complete", base, ""},
		{"no webhook shards", with("CONDUIT_WEBHOOK_SHARDS", ""), "CONDUIT_WEBHOOK_SHARDS"},
		{"bad shard count", with("CONDUIT_WEBHOOK_SHARDS", "many"), "CONDUIT_WEBHOOK_SHARDS"},
		{"no callback", with("EVENTSUB_WEBHOOK_CALLBACK_URL", ""), "EVENTSUB_WEBHOOK_CALLBACK_URL"},
		{"callback not a URL", with("EVENTSUB_WEBHOOK_CALLBACK_URL", "ftp://x"), "EVENTSUB_WEBHOOK_CALLBACK_URL"},
		{"no client secret", with("TWITCH_CLIENT_SECRET", ""), "TWITCH_CLIENT_SECRET"},
		{"no client id", with("TWITCH_CLIENT_ID", ""), "TWITCH_CLIENT_ID"},
		{"no webhook secret", with(SettingWebhookSecret, ""), SettingWebhookSecret},
		{"bad extra type", with("EVENTSUB_EXTRA_SUBSCRIPTIONS", "nonsense"), "EVENTSUB_EXTRA_SUBSCRIPTIONS"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := readReconcileSettings(config.Map(tc.env))
			if tc.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				if s.webhookShards != 2 || s.callback != base["EVENTSUB_WEBHOOK_CALLBACK_URL"] || s.secret.Reveal() != base[SettingWebhookSecret] ||
					len(s.extra) != 1 || len(s.twitch.Channels) != 2 {
					t.Fatalf("settings %+v", s)
				}
				return
			}
			var ce *configError
			if err == nil || !errors.As(err, &ce) || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("error %v, want a configuration error naming %s", err, tc.wantErr)
			}
			for _, secret := range []string{base["TWITCH_CLIENT_SECRET"], base[SettingWebhookSecret]} {
				if strings.Contains(err.Error(), secret) {
					t.Fatalf("the error shows a secret: %v", err)
				}
			}
		})
	}
}

func TestEventSubReconcileRegistered(t *testing.T) {
	if Handlers()[NameEventSubReconcile] == nil {
		t.Fatalf("%s is not among the handlers", NameEventSubReconcile)
	}
}
