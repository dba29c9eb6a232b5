package webhook

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/bitbrat/twitch-edge/shared/twitch"
)

const testSecret = "a-webhook-secret-of-some-length"

var testNow = time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)

func sign(id, ts string, body []byte) string {
	// Independent of signatureOK: Twitch's documented recipe, spelled out.
	return "sha256=" + hexHMAC(testSecret, id+ts+string(body))
}

func headers(typ, id, ts string, body []byte) http.Header {
	h := http.Header{}
	h.Set("Content-Type", "application/json")
	h.Set(HeaderMessageID, id)
	h.Set(HeaderMessageType, typ)
	h.Set(HeaderMessageTimestamp, ts)
	h.Set(HeaderMessageSignature, sign(id, ts, body))
	h.Set(HeaderSubscriptionType, "channel.follow")
	h.Set(HeaderSubscriptionVersion, "2")
	return h
}

func TestVerify(t *testing.T) {
	body := []byte(`{"subscription":{"type":"channel.follow","version":"2","condition":{"broadcaster_user_id":"1"}},"event":{"user_id":"2"}}`)
	ts := testNow.Add(-time.Minute).Format(time.RFC3339Nano)
	cases := []struct {
		name   string
		edit   func(h http.Header, b []byte) []byte
		status int // 0: accepted
	}{
		{"valid", nil, 0},
		{"fractional timestamp", func(h http.Header, b []byte) []byte {
			s := testNow.Add(-time.Second + 123456789).Format(time.RFC3339Nano)
			h.Set(HeaderMessageTimestamp, s)
			h.Set(HeaderMessageSignature, sign("m1", s, b))
			return b
		}, 0},
		{"9m59s old", func(h http.Header, b []byte) []byte {
			s := testNow.Add(-MaxAge + time.Second).Format(time.RFC3339Nano)
			h.Set(HeaderMessageTimestamp, s)
			h.Set(HeaderMessageSignature, sign("m1", s, b))
			return b
		}, 0},
		{"10m01s old", func(h http.Header, b []byte) []byte {
			s := testNow.Add(-MaxAge - time.Second).Format(time.RFC3339Nano)
			h.Set(HeaderMessageTimestamp, s)
			h.Set(HeaderMessageSignature, sign("m1", s, b))
			return b
		}, http.StatusForbidden},
		{"2 minutes ahead", func(h http.Header, b []byte) []byte {
			s := testNow.Add(2 * time.Minute).Format(time.RFC3339Nano)
			h.Set(HeaderMessageTimestamp, s)
			h.Set(HeaderMessageSignature, sign("m1", s, b))
			return b
		}, http.StatusForbidden},
		{"unparsable timestamp, signed", func(h http.Header, b []byte) []byte {
			h.Set(HeaderMessageTimestamp, "yesterday")
			h.Set(HeaderMessageSignature, sign("m1", "yesterday", b))
			return b
		}, http.StatusBadRequest},
		{"signature of another id", func(h http.Header, b []byte) []byte { h.Set(HeaderMessageID, "m2"); return b }, http.StatusForbidden},
		{"signature upper-case hex", func(h http.Header, b []byte) []byte {
			h.Set(HeaderMessageSignature, "sha256="+strings.ToUpper(strings.TrimPrefix(h.Get(HeaderMessageSignature), "sha256=")))
			return b
		}, 0},
		{"signature truncated", func(h http.Header, b []byte) []byte {
			s := h.Get(HeaderMessageSignature)
			h.Set(HeaderMessageSignature, s[:len(s)-2])
			return b
		}, http.StatusForbidden},
		{"sha1 signature", func(h http.Header, b []byte) []byte {
			h.Set(HeaderMessageSignature, "sha1="+strings.TrimPrefix(h.Get(HeaderMessageSignature), "sha256="))
			return b
		}, http.StatusForbidden},
		{"body one byte shorter", func(h http.Header, b []byte) []byte { return b[:len(b)-1] }, http.StatusForbidden},
		{"no signature", func(h http.Header, b []byte) []byte { h.Del(HeaderMessageSignature); return b }, http.StatusForbidden},
		{"no id", func(h http.Header, b []byte) []byte { h.Del(HeaderMessageID); return b }, http.StatusForbidden},
		{"no type", func(h http.Header, b []byte) []byte { h.Del(HeaderMessageType); return b }, http.StatusBadRequest},
		{"notification without subscription version", func(h http.Header, b []byte) []byte { h.Del(HeaderSubscriptionVersion); return b }, http.StatusBadRequest},
		{"JSON array body", func(h http.Header, _ []byte) []byte {
			b := []byte(`[1,2]`)
			h.Set(HeaderMessageSignature, sign("m1", ts, b))
			return b
		}, http.StatusBadRequest},
		{"null body", func(h http.Header, _ []byte) []byte {
			b := []byte(`null`)
			h.Set(HeaderMessageSignature, sign("m1", ts, b))
			return b
		}, http.StatusBadRequest},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := headers(TypeNotification, "m1", ts, body)
			b := append([]byte(nil), body...)
			if tc.edit != nil {
				b = tc.edit(h, b)
			}
			m, err := Verify(h, b, []byte(testSecret), testNow)
			if tc.status == 0 {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				if m.ID != "m1" || m.Type != TypeNotification || !bytes.Equal(m.Body, b) {
					t.Fatalf("message %+v", m)
				}
				return
			}
			rf, ok := err.(*Refusal)
			if !ok || rf.Status != tc.status {
				t.Fatalf("got %v, want a %d refusal", err, tc.status)
			}
			if strings.Contains(rf.Reason, testSecret) || strings.Contains(rf.Reason, `"event"`) {
				t.Errorf("reason leaks the secret or the body: %s", rf.Reason)
			}
		})
	}
}

func TestReadChecksMethodTypeAndSize(t *testing.T) {
	body := []byte(`{"challenge":"c"}`)
	ts := testNow.Format(time.RFC3339Nano)
	for _, tc := range []struct {
		name   string
		method string
		ctype  string
		body   []byte
		status int
	}{
		{"json with charset", http.MethodPost, "application/json; charset=utf-8", body, 0},
		{"PUT", http.MethodPut, "application/json", body, http.StatusMethodNotAllowed},
		{"no content type", http.MethodPost, "", body, http.StatusUnsupportedMediaType},
		{"text", http.MethodPost, "text/plain", body, http.StatusUnsupportedMediaType},
		{"one byte over", http.MethodPost, "application/json", append(bytes.Repeat([]byte(" "), MaxBody), body...), http.StatusRequestEntityTooLarge},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest(tc.method, "/", bytes.NewReader(tc.body))
			for k, v := range headers(TypeVerification, "v1", ts, tc.body) {
				r.Header[k] = v
			}
			r.Header.Set("Content-Type", tc.ctype)
			_, err := Read(r, httptest.NewRecorder(), []byte(testSecret), testNow)
			if tc.status == 0 {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if rf, ok := err.(*Refusal); !ok || rf.Status != tc.status {
				t.Fatalf("got %v, want %d", err, tc.status)
			}
		})
	}
}

func TestFrameIsTheWebSocketShape(t *testing.T) {
	body := []byte(`{"subscription":{"id":"s","type":"channel.follow","version":"2","condition":{"broadcaster_user_id":"1001","moderator_user_id":"9"}},"event":{"user_id":"2"}}`)
	ts := "2026-12-01T11:59:00.123456789Z"
	m, err := Verify(headers(TypeNotification, "m1", ts, body), body, []byte(testSecret), testNow)
	if err != nil {
		t.Fatal(err)
	}
	frame, err := Frame(m)
	if err != nil {
		t.Fatal(err)
	}
	msg, err := twitch.DecodeMessage(frame)
	if err != nil {
		t.Fatal(err)
	}
	if msg.Metadata.MessageID != "m1" || msg.Metadata.MessageType != "notification" || msg.Metadata.SubscriptionType != "channel.follow" ||
		msg.Metadata.SubscriptionVersion != "2" || msg.Metadata.MessageTimestamp.Format(time.RFC3339Nano) != ts || !bytes.Equal(msg.Payload, body) {
		t.Fatalf("frame %s", frame)
	}
	a, err := Attributes(frame)
	if err != nil {
		t.Fatal(err)
	}
	if a["broadcaster_user_id"] != "1001" || a["eventsub_message_id"] != "m1" || a["eventsub_message_timestamp"] != ts || len(a) != 6 {
		t.Fatalf("attributes %v", a)
	}
}

// FuzzVerify: whatever the headers and the body, Verify never panics; what it
// accepts is signed with the secret, fresh, and becomes a frame that decodes with the
// same message id and the body as payload.
func FuzzVerify(f *testing.F) {
	ts := testNow.Format(time.RFC3339Nano)
	for _, b := range []string{`{"event":{}}`, `{"challenge":"x"}`, `{`, ``, `null`, `{"subscription":{"condition":{"broadcaster_user_id":"\u0031"}}}`, "{\"a\":\"\xff\"}"} {
		f.Add("m1", TypeNotification, ts, sign("m1", ts, []byte(b)), "channel.follow", "2", []byte(b))
		f.Add("m1", TypeRevocation, ts, "sha256=00", "", "", []byte(b))
	}
	f.Fuzz(func(t *testing.T, id, typ, stamp, sig, subType, subVersion string, body []byte) {
		h := http.Header{}
		h.Set(HeaderMessageID, id)
		h.Set(HeaderMessageType, typ)
		h.Set(HeaderMessageTimestamp, stamp)
		h.Set(HeaderMessageSignature, sig)
		h.Set(HeaderSubscriptionType, subType)
		h.Set(HeaderSubscriptionVersion, subVersion)
		// Half the inputs are correctly signed, so the fuzzer gets past the check.
		if len(body)%2 == 0 {
			h.Set(HeaderMessageSignature, sign(h.Get(HeaderMessageID), h.Get(HeaderMessageTimestamp), body))
		}
		m, err := Verify(h, body, []byte(testSecret), testNow)
		if err != nil {
			if _, ok := err.(*Refusal); !ok {
				t.Fatalf("error not a refusal: %v", err)
			}
			return
		}
		if !signatureOK([]byte(testSecret), m.ID, m.RawTimestamp, body, h.Get(HeaderMessageSignature)) {
			t.Fatal("accepted a bad signature")
		}
		if age := testNow.Sub(m.Timestamp); age > MaxAge || -age > MaxSkew {
			t.Fatalf("accepted a timestamp %s old", age)
		}
		if m.Type != TypeNotification {
			return
		}
		frame, err := Frame(m)
		if err != nil {
			return
		}
		var got struct {
			Metadata twitch.Metadata `json:"metadata"`
			Payload  json.RawMessage `json:"payload"`
		}
		if err := json.Unmarshal(frame, &got); err != nil {
			if utf8.Valid(body) {
				t.Fatalf("frame does not decode: %v\n%s", err, frame)
			}
			return
		}
		if got.Metadata.MessageID != m.ID && utf8.ValidString(m.ID) {
			t.Fatalf("frame message id %q, want %q", got.Metadata.MessageID, m.ID)
		}
	})
}
