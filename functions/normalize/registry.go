package normalize

import (
	"encoding/json"
	"strings"

	"github.com/bitbrat/twitch-edge/shared/fault"
	"github.com/bitbrat/twitch-edge/shared/twitch"
)

// Notification is what a normalizer reads: one decoded EventSub notification.
type Notification struct {
	Metadata twitch.Metadata
	// Subscription carries the type and version only.
	Subscription twitch.Subscription
	// Event is Twitch's `event` object, unchanged.
	Event json.RawMessage
}

// Normalized is what a normalizer says about a notification; Normalize builds the
// envelope around it.
type Normalized struct {
	// ChannelLogin is the broadcaster's login; the event's channel is "#"+login.
	ChannelLogin string
	// UserID is the platform user the event is about.
	UserID string
	// CreatedAt is when the thing happened, ISO 8601.
	CreatedAt string
	// Payload is the normalized, camelCase payload.
	Payload any
}

// Normalizer turns one subscription type's notification into its normalized form.
// Missing required fields are fault.Invalid errors.
type Normalizer func(n Notification) (Normalized, error)

// Registry maps a subscription type to its normalizer. A type without one still
// becomes an event, through Generic. Adding a type: one file with its normalizer and
// test, and one line here.
func Registry() map[string]Normalizer {
	return map[string]Normalizer{
		twitch.TypeChannelFollow: ChannelFollow,
		twitch.TypeChannelUpdate: ChannelUpdate,
	}
}

// Generic normalizes a notification of a type without its own normalizer: the payload
// is Twitch's event with its keys in camelCase, the channel and user come from the
// usual broadcaster_user_login / user_id / broadcaster_user_id fields when present,
// and createdAt is the notification's timestamp.
func Generic(n Notification) (Normalized, error) {
	payload, top, err := camelObject(n.Event)
	if err != nil {
		return Normalized{}, fault.Wrap(fault.Invalid, "EVENTSUB_BAD_EVENT", err, "%s event is not a JSON object", n.Subscription.Type)
	}
	user := top.userID
	if user == "" {
		user = top.broadcasterUserID
	}
	return Normalized{
		ChannelLogin: top.broadcasterUserLogin,
		UserID:       user,
		CreatedAt:    timestamp(n.Metadata.MessageTimestamp),
		Payload:      payload,
	}, nil
}

// camelCase turns "broadcaster_user_id" into "broadcasterUserId". Keys without an
// underscore are kept.
func camelCase(s string) string {
	if !strings.Contains(s, "_") {
		return s
	}
	return string(appendCamel(make([]byte, 0, len(s)), []byte(s)))
}

// require returns a fault.Invalid error naming the first empty required field.
func require(typ string, fields ...[2]string) error {
	for _, f := range fields {
		if f[1] == "" {
			return fault.New(fault.Invalid, "EVENTSUB_MISSING_FIELD", "%s event has no %s", typ, f[0])
		}
	}
	return nil
}
