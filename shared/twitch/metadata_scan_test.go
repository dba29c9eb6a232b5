package twitch

import (
	"encoding/json"
	"testing"
)

func TestParseFrameHeaderBroadcaster(t *testing.T) {
	const md = `"metadata":{"message_id":"m","message_type":"notification","message_timestamp":"2026-11-22T00:00:00Z"}`
	for _, c := range []struct{ name, frame, want string }{
		{"follow", followFrame, "1337"},
		{"revocation", revokeFrame, "12826"},
		{"keepalive", keepaliveFrame, ""},
		{"payload first", `{"payload":{"subscription":{"condition":{"broadcaster_user_id":"5"}}},` + md + `}`, "5"},
		{"case-insensitive keys", `{` + md + `,"Payload":{"SUBSCRIPTION":{"condition":{"Broadcaster_User_ID":"6"}}}}`, "6"},
		{"null condition", `{` + md + `,"payload":{"subscription":{"condition":null}}}`, ""},
		{"number", `{` + md + `,"payload":{"subscription":{"condition":{"broadcaster_user_id":7}}}}`, ""},
		{"subscription is an array", `{` + md + `,"payload":{"subscription":[]}}`, ""},
		{"escaped value", `{` + md + `,"payload":{"subscription":{"condition":{"broadcaster_user_id":"\u0038"}}}}`, "8"},
		{"duplicate, last wins", `{` + md + `,"payload":{"subscription":{"condition":{"broadcaster_user_id":"1","broadcaster_user_id":"2"}}}}`, "2"},
	} {
		t.Run(c.name, func(t *testing.T) {
			h, err := ParseFrameHeader([]byte(c.frame))
			if err != nil {
				t.Fatal(err)
			}
			if h.BroadcasterUserID != c.want {
				t.Errorf("broadcaster %q, want %q", h.BroadcasterUserID, c.want)
			}
			if want := broadcasterSlow([]byte(c.frame)); h.BroadcasterUserID != want {
				t.Errorf("broadcaster %q, encoding/json says %q", h.BroadcasterUserID, want)
			}
		})
	}
}

// FuzzParseFrameHeader holds the scanner to encoding/json's answer on every valid
// JSON frame, and to ParseMetadata's metadata on every frame.
func FuzzParseFrameHeader(f *testing.F) {
	for _, s := range []string{welcomeFrame, keepaliveFrame, followFrame, updateFrame, reconnectFrame, revokeFrame, unknownFrame, `{}`,
		`{"metadata":{"message_id":"m","message_type":"notification"},"payload":{"subscription":{"condition":{"broadcaster_user_id":7}}}}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		h, err := ParseFrameHeader(b)
		md, err2 := ParseMetadata(b)
		if (err == nil) != (err2 == nil) || h.Metadata != md {
			t.Fatalf("ParseFrameHeader %+v, %v; ParseMetadata %+v, %v", h.Metadata, err, md, err2)
		}
		if err != nil || !json.Valid(b) {
			return
		}
		if want := broadcasterSlow(b); h.BroadcasterUserID != want {
			t.Fatalf("broadcaster %q, encoding/json says %q", h.BroadcasterUserID, want)
		}
	})
}
