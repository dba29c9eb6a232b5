package functions

import (
	"time"

	"github.com/bitbrat/twitch-edge/shared/config"
)

// Settings are what the Cloud Functions read beyond config.Common and config.Twitch
// (their rows in config.Settings and the README name the readers).
type Settings struct {
	// EgressDestination, when set, becomes egress.destination of normalized events.
	EgressDestination string        // EGRESS_DESTINATION
	NormalizeMaxAge   time.Duration // NORMALIZE_MAX_AGE: older notifications are dead-lettered
	EventTTL          time.Duration // EVENT_TTL: expireAt = deliveredAt + TTL
	// EgressMaxAge: an egress event published longer ago is not delivered late
	// (EGRESS_MAX_AGE).
	EgressMaxAge time.Duration
	// EgressChannels are the channels the bot may post in (EGRESS_CHANNELS, default
	// TWITCH_CHANNELS); empty allows any.
	EgressChannels []string
	// WhisperSeenWithin, when positive, limits whispers to users seen on the ingress
	// topic within it (EGRESS_WHISPER_SEEN_WITHIN, default 0: off).
	WhisperSeenWithin time.Duration
	// TokenDatabase is the Firestore database holding the bot's token document
	// (TWITCH_TOKEN_DATABASE); empty: FIRESTORE_DATABASE, upstream's location.
	TokenDatabase string
}

// readSettings reads the functions' own settings.
func readSettings(r *config.Reader) Settings {
	s := Settings{
		EgressDestination: r.String("EGRESS_DESTINATION", ""),
		NormalizeMaxAge:   r.Duration("NORMALIZE_MAX_AGE", 24*time.Hour),
		EventTTL:          r.Duration("EVENT_TTL", 7*24*time.Hour),
		EgressMaxAge:      r.Duration("EGRESS_MAX_AGE", 30*time.Minute),
		EgressChannels:    r.List("EGRESS_CHANNELS"),
		WhisperSeenWithin: r.Duration("EGRESS_WHISPER_SEEN_WITHIN", 0),
		TokenDatabase:     r.String("TWITCH_TOKEN_DATABASE", ""),
	}
	if len(s.EgressChannels) == 0 {
		s.EgressChannels = r.List("TWITCH_CHANNELS")
	}
	return s
}
