package webhook

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"
	"time"
)

// Twitch's webhook headers (dev.twitch.tv: eventsub/handling-webhook-events).
const (
	HeaderMessageID           = "Twitch-Eventsub-Message-Id"
	HeaderMessageRetry        = "Twitch-Eventsub-Message-Retry"
	HeaderMessageType         = "Twitch-Eventsub-Message-Type"
	HeaderMessageSignature    = "Twitch-Eventsub-Message-Signature"
	HeaderMessageTimestamp    = "Twitch-Eventsub-Message-Timestamp"
	HeaderSubscriptionType    = "Twitch-Eventsub-Subscription-Type"
	HeaderSubscriptionVersion = "Twitch-Eventsub-Subscription-Version"
)

// Message types of the webhook transport.
const (
	TypeNotification = "notification"
	TypeVerification = "webhook_callback_verification"
	TypeRevocation   = "revocation"
)

// Limits of what the function accepts.
const (
	// MaxBody bounds a request body: Twitch's notifications are a few KiB.
	MaxBody = 1 << 20
	// MaxAge is Twitch's replay window: an older message is refused.
	MaxAge = 10 * time.Minute
	// MaxSkew is how far in the future a timestamp may be (clocks differ a little).
	MaxSkew = time.Minute
)

// Message is one verified webhook request.
type Message struct {
	ID                  string
	Type                string
	Timestamp           time.Time
	RawTimestamp        string // as Twitch sent it; part of what is signed
	SubscriptionType    string
	SubscriptionVersion string
	Retry               string
	Body                []byte
}

// Refusal is why a request was refused: the status to answer and a reason to log
// (never the secret, never the body).
type Refusal struct {
	Status int
	Reason string
}

func (r *Refusal) Error() string { return fmt.Sprintf("%d %s", r.Status, r.Reason) }

func refuse(status int, format string, args ...any) *Refusal {
	return &Refusal{Status: status, Reason: fmt.Sprintf(format, args...)}
}

// Read checks one request and returns its message, or a *Refusal. The order is
// Twitch's advice: nothing of the body is interpreted before the signature over its
// raw bytes has been checked (in constant time); then the timestamp (replays); only
// then the headers that are not signed and the body's shape.
func Read(r *http.Request, w http.ResponseWriter, secret []byte, now time.Time) (*Message, error) {
	if r.Method != http.MethodPost {
		return nil, refuse(http.StatusMethodNotAllowed, "method %s, want POST", r.Method)
	}
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/json" {
		return nil, refuse(http.StatusUnsupportedMediaType, "content type %q, want application/json", r.Header.Get("Content-Type"))
	}
	if r.ContentLength > MaxBody {
		return nil, refuse(http.StatusRequestEntityTooLarge, "body of %d bytes, over the limit of %d", r.ContentLength, MaxBody)
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBody))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return nil, refuse(http.StatusRequestEntityTooLarge, "body over the limit of %d bytes", MaxBody)
		}
		return nil, refuse(http.StatusBadRequest, "body unreadable (truncated?): %v", err)
	}
	return Verify(r.Header, body, secret, now)
}

// Verify checks the headers and the body of a request already read.
func Verify(h http.Header, body []byte, secret []byte, now time.Time) (*Message, error) {
	m := &Message{
		ID: h.Get(HeaderMessageID), Type: h.Get(HeaderMessageType), RawTimestamp: h.Get(HeaderMessageTimestamp),
		SubscriptionType: h.Get(HeaderSubscriptionType), SubscriptionVersion: h.Get(HeaderSubscriptionVersion),
		Retry: h.Get(HeaderMessageRetry), Body: body,
	}
	sig := h.Get(HeaderMessageSignature)
	switch {
	case sig == "":
		return nil, refuse(http.StatusForbidden, "no %s header", HeaderMessageSignature)
	case m.ID == "":
		return nil, refuse(http.StatusForbidden, "no %s header", HeaderMessageID)
	case m.RawTimestamp == "":
		return nil, refuse(http.StatusForbidden, "no %s header", HeaderMessageTimestamp)
	}
	if !signatureOK(secret, m.ID, m.RawTimestamp, body, sig) {
		return nil, refuse(http.StatusForbidden, "signature does not match (message %s)", m.ID)
	}
	ts, err := time.Parse(time.RFC3339Nano, m.RawTimestamp)
	if err != nil {
		return nil, refuse(http.StatusBadRequest, "timestamp %q is not RFC 3339 (message %s)", m.RawTimestamp, m.ID)
	}
	m.Timestamp = ts
	if age := now.Sub(ts); age > MaxAge {
		return nil, refuse(http.StatusForbidden, "timestamp %s is %s old, limit %s (message %s)", m.RawTimestamp, age.Round(time.Second), MaxAge, m.ID)
	} else if -age > MaxSkew {
		return nil, refuse(http.StatusForbidden, "timestamp %s is %s in the future, limit %s (message %s)", m.RawTimestamp, (-age).Round(time.Second), MaxSkew, m.ID)
	}
	switch m.Type {
	case "":
		return nil, refuse(http.StatusBadRequest, "no %s header (message %s)", HeaderMessageType, m.ID)
	case TypeNotification, TypeRevocation:
		if m.SubscriptionType == "" || m.SubscriptionVersion == "" {
			return nil, refuse(http.StatusBadRequest, "%s without %s or %s (message %s)", m.Type, HeaderSubscriptionType, HeaderSubscriptionVersion, m.ID)
		}
	}
	if !isObject(body) {
		return nil, refuse(http.StatusBadRequest, "body is not a JSON object (message %s)", m.ID)
	}
	return m, nil
}

// signatureOK compares "sha256=<hex HMAC-SHA256(secret, id + timestamp + body)>" with
// the header in constant time.
func signatureOK(secret []byte, id, ts string, body []byte, header string) bool {
	hexSig, ok := strings.CutPrefix(header, "sha256=")
	if !ok {
		return false
	}
	got, err := hex.DecodeString(hexSig)
	if err != nil {
		return false
	}
	mac := hmac.New(sha256.New, secret)
	mac.Write([]byte(id))
	mac.Write([]byte(ts))
	mac.Write(body)
	return hmac.Equal(mac.Sum(nil), got)
}

func isObject(b []byte) bool {
	var v map[string]json.RawMessage
	return json.Unmarshal(b, &v) == nil && v != nil
}

// Challenge is the challenge of a webhook_callback_verification body.
func (m *Message) Challenge() (string, error) {
	var v struct {
		Challenge string `json:"challenge"`
	}
	if err := json.Unmarshal(m.Body, &v); err != nil || v.Challenge == "" {
		return "", refuse(http.StatusBadRequest, "verification without a challenge (message %s)", m.ID)
	}
	return v.Challenge, nil
}
