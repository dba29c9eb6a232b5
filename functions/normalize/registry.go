package normalize

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"strings"

	"github.com/go-json-experiment/json/jsontext"

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

// topMembers are the top-level string members Generic reads from an event.
type topMembers struct{ userID, broadcasterUserID, broadcasterUserLogin string }

// camelObject copies the JSON object raw token by token with every object key, at any
// depth, rewritten from snake_case to camelCase: Twitch's member order, and values as
// sent (numbers keep their exact digits). One pass, no map of the whole event.
func camelObject(raw []byte) (jsontext.Value, topMembers, error) {
	var top topMembers
	lenient := []jsontext.Options{jsontext.AllowDuplicateNames(true), jsontext.AllowInvalidUTF8(true)}
	dec := jsontext.NewDecoder(bytes.NewReader(raw), lenient...)
	if k := dec.PeekKind(); k != '{' {
		return nil, top, fmt.Errorf("event is a JSON %v", k)
	}
	var out bytes.Buffer
	out.Grow(len(raw))
	enc := jsontext.NewEncoder(&out, lenient...)
	var member string // the top-level member whose value is read next
	for {
		tok, err := dec.ReadToken()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, top, err
		}
		depth := dec.StackDepth()
		kind, length := dec.StackIndex(depth)
		switch {
		case kind == '{' && length%2 == 1: // an object member's name
			name := tok.String()
			if depth == 1 {
				member = name
			}
			tok = jsontext.String(camelCase(name))
		case depth == 1 && tok.Kind() == '"':
			switch member {
			case "user_id":
				top.userID = tok.String()
			case "broadcaster_user_id":
				top.broadcasterUserID = tok.String()
			case "broadcaster_user_login":
				top.broadcasterUserLogin = tok.String()
			}
		}
		if err := enc.WriteToken(tok); err != nil {
			return nil, top, err
		}
	}
	return jsontext.Value(bytes.TrimRight(out.Bytes(), "\n")), top, nil
}

// camelCase turns "broadcaster_user_id" into "broadcasterUserId". Keys without an
// underscore are kept.
func camelCase(s string) string {
	if !strings.Contains(s, "_") {
		return s
	}
	var b strings.Builder
	b.Grow(len(s))
	up := false
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '_':
			up = b.Len() > 0
		case up && 'a' <= c && c <= 'z':
			b.WriteByte(c - 'a' + 'A')
			up = false
		default:
			b.WriteByte(c)
			up = false
		}
	}
	return b.String()
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
