package stack

import (
	"os"
	"strings"

	"github.com/bitbrat/twitch-edge/infra/faketwitch"
	"github.com/bitbrat/twitch-edge/shared/config"
)

// twitchVars are the TWITCH_* variables of both components.
func (s *Stack) twitchVars() map[string]string {
	if s.Fake != nil {
		tw := s.Fake.Twitch
		return map[string]string{
			"TWITCH_CLIENT_ID":       tw.ClientID(),
			"TWITCH_CLIENT_SECRET":   tw.ClientSecret(),
			"TWITCH_BOT_USER_ID":     faketwitch.BotID,
			"TWITCH_CHANNELS":        strings.Join(s.Fake.ChannelLogins(), ","),
			"TWITCH_API_BASE_URL":    tw.APIBaseURL(),
			"TWITCH_AUTH_BASE_URL":   tw.AuthBaseURL(),
			"TWITCH_EVENTSUB_WS_URL": tw.EventSubWSURL(),
		}
	}
	t := s.opts.RealTwitch
	v := map[string]string{}
	set := func(k, val string) {
		if val != "" {
			v[k] = val
		}
	}
	set("TWITCH_CLIENT_ID", t.ClientID)
	set("TWITCH_CLIENT_SECRET", t.ClientSecret.Reveal())
	set("TWITCH_BOT_USER_ID", t.BotUserID)
	set("TWITCH_BOT_ACCESS_TOKEN", t.BotAccessToken.Reveal())
	set("TWITCH_CHANNELS", strings.Join(t.Channels, ","))
	set("TWITCH_API_BASE_URL", t.APIBaseURL)
	set("TWITCH_AUTH_BASE_URL", t.AuthBaseURL)
	set("TWITCH_EVENTSUB_WS_URL", t.EventSubWSURL)
	set("TWITCH_EVENTSUB_SUBSCRIPTIONS_URL", t.EventSubSubscriptionsURL)
	return v
}

// ChildEnv is a child's environment: this process's, minus every variable the stack
// decides (config.OwnedByStack: a developer's shell cannot point a component
// elsewhere by accident), plus vars.
func ChildEnv(vars map[string]string) []string {
	var out []string
	for _, kv := range os.Environ() {
		if !config.OwnedByStack(kv) {
			out = append(out, kv)
		}
	}
	for k, v := range vars {
		out = append(out, k+"="+v)
	}
	return out
}

// env is a component's environment: this process's, minus what the stack owns, plus
// the stack's settings, plus the caller's overrides. drop removes stack variables
// the component does not read.
func (s *Stack) env(own map[string]string, extra map[string]string, drop ...string) []string {
	vars := map[string]string{
		"GOOGLE_CLOUD_PROJECT":    s.Project,
		"PUBSUB_EMULATOR_HOST":    s.PubSubHost,
		"FIRESTORE_EMULATOR_HOST": s.FirestoreHost,
	}
	if s.Prefix != "" {
		vars["BUS_PREFIX"] = string(s.Prefix)
	}
	for k, v := range s.twitchEnv {
		vars[k] = v
	}
	for _, k := range drop {
		delete(vars, k)
	}
	for _, m := range []map[string]string{own, s.opts.Env, extra} {
		for k, v := range m {
			vars[k] = v
		}
	}
	return ChildEnv(vars)
}
