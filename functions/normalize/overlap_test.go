package normalize

import (
	"testing"

	"github.com/bitbrat/twitch-edge/functions/trigger"
	"github.com/bitbrat/twitch-edge/shared/event"
	"github.com/bitbrat/twitch-edge/shared/fault"
)

func TestContentKey(t *testing.T) {
	frame := func(id, cond, ev string) string {
		return `{"metadata":{"message_id":"` + id + `","message_type":"notification"},"payload":{"subscription":` +
			`{"id":"s-` + id + `","type":"channel.follow","version":"2","condition":` + cond + `},"event":` + ev + `}}`
	}
	const cond = `{"broadcaster_user_id":"1","moderator_user_id":"9"}`
	const ev = `{"user_id":"5","followed_at":"2024-01-01T00:00:00.123Z","n":12345678901234567890}`
	base, err := ContentKey([]byte(frame("a", cond, ev)))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name  string
		frame string
		same  bool
	}{
		{"other message and subscription id", frame("b", cond, ev), true},
		{"keys reordered, spaced", frame("c", `{ "moderator_user_id": "9", "broadcaster_user_id": "1" }`,
			`{"n": 12345678901234567890, "followed_at":"2024-01-01T00:00:00.123Z", "user_id":"5"}`), true},
		{"other condition", frame("d", `{"broadcaster_user_id":"2","moderator_user_id":"9"}`, ev), false},
		{"other event", frame("e", cond, `{"user_id":"6","followed_at":"2024-01-01T00:00:00.123Z","n":12345678901234567890}`), false},
		{"big number differs in the last digit", frame("f", cond, `{"user_id":"5","followed_at":"2024-01-01T00:00:00.123Z","n":12345678901234567891}`), false},
	} {
		t.Run(c.name, func(t *testing.T) {
			k, err := ContentKey([]byte(c.frame))
			if err != nil {
				t.Fatal(err)
			}
			if (k == base) != c.same {
				t.Errorf("same key = %v, want %v", k == base, c.same)
			}
		})
	}
	if _, err := ContentKey([]byte(`{"payload":`)); fault.KindOf(err) != fault.Invalid {
		t.Errorf("truncated frame: %v, want an invalid-input error", err)
	}
}

func TestClaimKeyOnlyForMarkedFrames(t *testing.T) {
	data := []byte(`{"payload":{"subscription":{"type":"channel.follow","version":"2","condition":{}},"event":{"a":1}}}`)
	if k, _ := claimKey(trigger.Message{Data: data}, "m1"); k != "eventsub:m1" {
		t.Errorf("unmarked frame: key %q, want the message id's", k)
	}
	k, err := claimKey(trigger.Message{Data: data, Attributes: map[string]string{event.AttrEventSubOverlap: "1"}}, "m1")
	if err != nil || len(k) != len("eventsub-content:")+64 {
		t.Errorf("marked frame: key %q, %v; want a content key", k, err)
	}
}
