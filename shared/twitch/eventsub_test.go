package twitch

import (
	"encoding/json"
	"testing"

	"github.com/bitbrat/twitch-edge/shared/fault"
)

// Frames shaped like the examples in Twitch's WebSocket reference, with extra fields
// Twitch may add at any time.
const (
	welcomeFrame   = `{"metadata":{"message_id":"96a3f3b5-5dec-4eed-908e-e11ee657416c","message_type":"session_welcome","message_timestamp":"2023-07-19T14:56:51.634234626Z"},"payload":{"session":{"id":"AQoQILE98gtqShGmLD7AM6yJThAB","status":"connected","connected_at":"2023-07-19T14:56:51.616329898Z","keepalive_timeout_seconds":10,"reconnect_url":null,"recovery_url":null}}}`
	keepaliveFrame = `{"metadata":{"message_id":"84c1e79a-2a4b-4c13-ba0b-4312293e9308","message_type":"session_keepalive","message_timestamp":"2023-07-19T10:11:12.634234626Z"},"payload":{}}`
	followFrame    = `{"metadata":{"message_id":"befa7b53-d79d-478f-86b9-120f112b044e","message_type":"notification","message_timestamp":"2023-07-19T10:11:12.464757833Z","subscription_type":"channel.follow","subscription_version":"2","new_field":1},"payload":{"subscription":{"id":"f1c2a387-161a-49f9-a165-0f21d7a4e1c4","status":"enabled","type":"channel.follow","version":"2","cost":0,"condition":{"broadcaster_user_id":"1337","moderator_user_id":"1337"},"transport":{"method":"websocket","session_id":"AQoQexAWVYKSTIu4ec_2VAxyuhAB"},"created_at":"2023-07-19T14:56:51.634234626Z"},"event":{"user_id":"1234","user_login":"cool_user","user_name":"Cool_User","broadcaster_user_id":"1337","broadcaster_user_login":"cooler_user","broadcaster_user_name":"Cooler_User","followed_at":"2020-07-15T18:16:11.17106713Z","surprise":{"x":[1,2]}}}}`
	updateFrame    = `{"metadata":{"message_id":"c1","message_type":"notification","message_timestamp":"2023-07-19T10:11:12.464757833Z","subscription_type":"channel.update","subscription_version":"2"},"payload":{"subscription":{"id":"s2","status":"enabled","type":"channel.update","version":"2","cost":1,"condition":{"broadcaster_user_id":"1337"},"transport":{"method":"websocket","session_id":"x"},"created_at":"2023-07-19T14:56:51.634234626Z"},"event":{"broadcaster_user_id":"1337","broadcaster_user_login":"cool_user","broadcaster_user_name":"Cool_User","title":"Best Stream Ever","language":"en","category_id":"12453","category_name":"Grand Theft Auto","content_classification_labels":["MatureGame"]}}}`
	reconnectFrame = `{"metadata":{"message_id":"84c1e79a-2a4b-4c13-ba0b-4312293e9308","message_type":"session_reconnect","message_timestamp":"2022-11-18T09:10:11.634234626Z"},"payload":{"session":{"id":"AQoQexAWVYKSTIu4ec_2VAxyuhAB","status":"reconnecting","keepalive_timeout_seconds":null,"reconnect_url":"wss://eventsub.wss.twitch.tv?...","connected_at":"2022-11-16T10:11:12.634234626Z"}}}`
	revokeFrame    = `{"metadata":{"message_id":"84c1e79a-2a4b-4c13-ba0b-4312293e9308","message_type":"revocation","message_timestamp":"2022-11-16T10:11:12.464757833Z","subscription_type":"channel.follow","subscription_version":"2"},"payload":{"subscription":{"id":"f1c2a387-161a-49f9-a165-0f21d7a4e1c4","status":"authorization_revoked","type":"channel.follow","version":"2","cost":0,"condition":{"broadcaster_user_id":"12826"},"transport":{"method":"websocket","session_id":"AQoQexAWVYKSTIu4ec_2VAxyuhAB"},"created_at":"2022-11-16T10:11:12.464757833Z"}}}`
	unknownFrame   = `{"metadata":{"message_id":"u1","message_type":"notification","message_timestamp":"2023-07-19T10:11:12.464757833Z","subscription_type":"channel.brand_new","subscription_version":"beta"},"payload":{"subscription":{"id":"s3","status":"enabled","type":"channel.brand_new","version":"beta","cost":0,"condition":{"anything":"goes"},"transport":{"method":"websocket","session_id":"x"},"created_at":"2023-07-19T14:56:51.634234626Z"},"event":{"whatever":[true,null]}}}`
)

func TestDecodeMessage(t *testing.T) {
	tests := []struct {
		name  string
		frame string
		typ   string
		check func(t *testing.T, m *Message)
	}{
		{"welcome", welcomeFrame, MessageTypeWelcome, func(t *testing.T, m *Message) {
			s, err := m.Session()
			if err != nil || s.ID != "AQoQILE98gtqShGmLD7AM6yJThAB" || *s.KeepaliveTimeoutSeconds != 10 || s.ReconnectURL != nil {
				t.Fatalf("session = %+v, %v", s, err)
			}
		}},
		{"keepalive", keepaliveFrame, MessageTypeKeepalive, nil},
		{"follow", followFrame, MessageTypeNotification, func(t *testing.T, m *Message) {
			n, err := m.Notification()
			if err != nil {
				t.Fatal(err)
			}
			var ev ChannelFollowEvent
			if err := json.Unmarshal(n.Event, &ev); err != nil {
				t.Fatal(err)
			}
			if ev.UserID != "1234" || ev.BroadcasterUserLogin != "cooler_user" || ev.FollowedAt.IsZero() || n.Subscription.Condition["moderator_user_id"] != "1337" {
				t.Fatalf("event = %+v", ev)
			}
			if m.Metadata.SubscriptionType != TypeChannelFollow || m.Metadata.SubscriptionVersion != "2" {
				t.Fatalf("metadata = %+v", m.Metadata)
			}
		}},
		{"update", updateFrame, MessageTypeNotification, func(t *testing.T, m *Message) {
			n, err := m.Notification()
			if err != nil {
				t.Fatal(err)
			}
			var ev ChannelUpdateEvent
			if err := json.Unmarshal(n.Event, &ev); err != nil {
				t.Fatal(err)
			}
			if ev.Title != "Best Stream Ever" || len(ev.ContentClassificationLabels) != 1 || n.Subscription.Cost != 1 {
				t.Fatalf("event = %+v", ev)
			}
		}},
		{"reconnect", reconnectFrame, MessageTypeReconnect, func(t *testing.T, m *Message) {
			s, err := m.Session()
			if err != nil || s.Status != "reconnecting" || s.ReconnectURL == nil || *s.ReconnectURL != "wss://eventsub.wss.twitch.tv?..." || s.KeepaliveTimeoutSeconds != nil {
				t.Fatalf("session = %+v, %v", s, err)
			}
		}},
		{"revocation", revokeFrame, MessageTypeRevocation, func(t *testing.T, m *Message) {
			r, err := m.Revocation()
			if err != nil || r.Subscription.Status != StatusAuthorizationRevoked {
				t.Fatalf("revocation = %+v, %v", r, err)
			}
		}},
		{"unknown subscription type", unknownFrame, MessageTypeNotification, func(t *testing.T, m *Message) {
			n, err := m.Notification()
			if err != nil || n.Subscription.Type != "channel.brand_new" || string(n.Event) != `{"whatever":[true,null]}` {
				t.Fatalf("notification = %+v, %v", n, err)
			}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m, err := DecodeMessage([]byte(tc.frame))
			if err != nil {
				t.Fatal(err)
			}
			if m.Metadata.MessageType != tc.typ || m.Metadata.MessageTimestamp.IsZero() {
				t.Fatalf("metadata = %+v", m.Metadata)
			}
			md, err := ParseMetadata([]byte(tc.frame))
			if err != nil || md != m.Metadata {
				t.Fatalf("ParseMetadata = %+v, %v; want %+v", md, err, m.Metadata)
			}
			if tc.check != nil {
				tc.check(t, m)
			}
		})
	}
}

func TestDecodeMessageRejects(t *testing.T) {
	for _, frame := range []string{``, `null`, `[]`, `{}`, `{"metadata":{}}`, `{"metadata":{"message_type":"notification"}}`,
		`{"metadata":{"message_id":"x","message_type":"notification","message_timestamp":"yesterday"}}`, `{"metadata":`} {
		if _, err := DecodeMessage([]byte(frame)); fault.KindOf(err) != fault.Invalid {
			t.Errorf("DecodeMessage(%q) = %v, want Invalid", frame, err)
		}
		if _, err := ParseMetadata([]byte(frame)); fault.KindOf(err) != fault.Invalid {
			t.Errorf("ParseMetadata(%q) = %v, want Invalid", frame, err)
		}
	}
	// Accessors on the wrong payload fail cleanly.
	m, _ := DecodeMessage([]byte(keepaliveFrame))
	if _, err := m.Session(); err == nil {
		t.Error("keepalive has no session")
	}
	if _, err := m.Notification(); err == nil {
		t.Error("keepalive has no notification")
	}
	m = &Message{Metadata: Metadata{MessageType: MessageTypeNotification}}
	if _, err := m.Notification(); err == nil {
		t.Error("missing payload should fail")
	}
}

func FuzzDecodeMessage(f *testing.F) {
	for _, s := range []string{welcomeFrame, keepaliveFrame, followFrame, updateFrame, reconnectFrame, revokeFrame, unknownFrame, `{}`, `{"metadata":null}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := DecodeMessage(b)
		md, err2 := ParseMetadata(b)
		// ParseMetadata does not validate the frame beyond its metadata, so it may
		// accept a frame DecodeMessage rejects; never the other way round.
		if err == nil && err2 != nil {
			t.Fatalf("DecodeMessage accepted, ParseMetadata err %v", err2)
		}
		if err2 != nil && fault.KindOf(err2) != fault.Invalid {
			t.Fatalf("ParseMetadata error not invalid: %v", err2)
		}
		if err != nil {
			return
		}
		if md != m.Metadata {
			t.Fatalf("metadata differs: %+v vs %+v", md, m.Metadata)
		}
		// None of the accessors may panic, whatever the payload.
		_, _ = m.Session()
		if n, err := m.Notification(); err == nil {
			var f ChannelFollowEvent
			var u ChannelUpdateEvent
			_ = json.Unmarshal(n.Event, &f)
			_ = json.Unmarshal(n.Event, &u)
		}
		_, _ = m.Revocation()
	})
}

func BenchmarkParseMetadata(b *testing.B) {
	frame := []byte(followFrame)
	b.ReportAllocs()
	b.SetBytes(int64(len(frame)))
	for b.Loop() {
		md, err := ParseMetadata(frame)
		if err != nil || md.MessageID == "" {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecodeMessage(b *testing.B) {
	frame := []byte(followFrame)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := DecodeMessage(frame); err != nil {
			b.Fatal(err)
		}
	}
}

func TestRevocationIsFinal(t *testing.T) {
	for status, want := range map[string]bool{
		StatusAuthorizationRevoked: true, StatusUserRemoved: true, StatusModeratorRemoved: true, StatusVersionRemoved: true,
		StatusConduitDeleted: false, StatusWebSocketDisconnected: false, StatusNotificationFailuresExceeded: false, "": false,
	} {
		if got := RevocationIsFinal(status); got != want {
			t.Errorf("RevocationIsFinal(%q) = %v, want %v", status, got, want)
		}
	}
}
