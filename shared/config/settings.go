package config

import (
	"log/slog"

	"github.com/bitbrat/twitch-edge/shared/event"
	"github.com/bitbrat/twitch-edge/shared/twitch"
)

// DefaultLocalProject is the project id used when GOOGLE_CLOUD_PROJECT is unset and
// the emulators are in use (local runs and tests).
const DefaultLocalProject = "bitbrat-local"

// Common is what every process reads.
type Common struct {
	Project   string       // GOOGLE_CLOUD_PROJECT
	Database  string       // FIRESTORE_DATABASE
	BusPrefix event.Prefix // BUS_PREFIX
	LogLevel  slog.Level   // LOG_LEVEL
}

// ReadCommon reads the variables every process shares.
func ReadCommon(r *Reader) Common {
	c := Common{
		Database:  r.String("FIRESTORE_DATABASE", "(default)"),
		BusPrefix: event.Prefix(r.String("BUS_PREFIX", "")),
		LogLevel:  r.LogLevel("LOG_LEVEL"),
	}
	// With emulators the project is only a namespace; in the cloud it must be given.
	_, psEmu := r.value("PUBSUB_EMULATOR_HOST")
	_, fsEmu := r.value("FIRESTORE_EMULATOR_HOST")
	if psEmu || fsEmu {
		c.Project = r.String("GOOGLE_CLOUD_PROJECT", DefaultLocalProject)
	} else {
		c.Project = r.Required("GOOGLE_CLOUD_PROJECT")
	}
	return c
}

// Twitch is how a process reaches Twitch.
type Twitch struct {
	ClientID       string   // TWITCH_CLIENT_ID
	ClientSecret   Secret   // TWITCH_CLIENT_SECRET
	BotUserID      string   // TWITCH_BOT_USER_ID (empty: the token's user)
	BotAccessToken Secret   // TWITCH_BOT_ACCESS_TOKEN (static fallback for local runs)
	Channels       []string // TWITCH_CHANNELS
	APIBaseURL     string   // TWITCH_API_BASE_URL
	AuthBaseURL    string   // TWITCH_AUTH_BASE_URL
	EventSubWSURL  string   // TWITCH_EVENTSUB_WS_URL
	// EventSubSubscriptionsURL is TWITCH_EVENTSUB_SUBSCRIPTIONS_URL, default
	// APIBaseURL + "/eventsub/subscriptions" (Twitch's CLI mock serves it elsewhere).
	EventSubSubscriptionsURL string
}

// Twitch's production endpoints.
const (
	DefaultAPIBaseURL    = "https://api.twitch.tv/helix"
	DefaultAuthBaseURL   = "https://id.twitch.tv/oauth2"
	DefaultEventSubWSURL = "wss://eventsub.wss.twitch.tv/ws"
)

// ReadTwitch reads the Twitch settings.
func ReadTwitch(r *Reader) Twitch {
	t := Twitch{
		ClientID:       r.Required("TWITCH_CLIENT_ID"),
		ClientSecret:   r.Secret("TWITCH_CLIENT_SECRET"),
		BotUserID:      r.String("TWITCH_BOT_USER_ID", ""),
		BotAccessToken: r.Secret("TWITCH_BOT_ACCESS_TOKEN"),
		Channels:       r.List("TWITCH_CHANNELS"),
		APIBaseURL:     r.URL("TWITCH_API_BASE_URL", DefaultAPIBaseURL, "https", "http"),
		AuthBaseURL:    r.URL("TWITCH_AUTH_BASE_URL", DefaultAuthBaseURL, "https", "http"),
		EventSubWSURL:  r.URL("TWITCH_EVENTSUB_WS_URL", DefaultEventSubWSURL, "wss", "ws"),
	}
	t.EventSubSubscriptionsURL = r.URL("TWITCH_EVENTSUB_SUBSCRIPTIONS_URL", t.APIBaseURL+"/eventsub/subscriptions", "https", "http")
	if t.BotUserID != "" && !twitch.IsUserID(t.BotUserID) {
		r.fail("TWITCH_BOT_USER_ID", "%q is not a Twitch user id (digits only)", t.BotUserID)
	}
	return t
}

// Topics are the topic names a process uses, prefix applied.
type Topics struct {
	Raw        string // EVENTSUB_RAW_TOPIC
	Ingress    string
	Egress     string
	Whisper    string // WHISPER_TOPIC
	Finalize   string
	DeadLetter string
}

// ReadTopics reads topic overrides and applies the prefix.
func ReadTopics(r *Reader, p event.Prefix) Topics {
	return Topics{
		Raw:        p.Topic(r.String("EVENTSUB_RAW_TOPIC", event.TopicEventSubRaw)),
		Ingress:    p.Topic(event.TopicIngress),
		Egress:     p.Topic(event.TopicEgress),
		Whisper:    p.Topic(r.String("WHISPER_TOPIC", event.TopicWhisper)),
		Finalize:   p.Topic(event.TopicFinalize),
		DeadLetter: p.Topic(event.TopicDeadLetter),
	}
}
