package twitch

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"testing"

	"github.com/bitbrat/twitch-edge/shared/fault"
)

// cannedTransport answers every request with one status and body, as a Helix server
// that misbehaves might.
type cannedTransport struct {
	status int
	body   []byte
	header http.Header
}

func (c cannedTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	h := c.header.Clone()
	if h == nil {
		h = http.Header{}
	}
	return &http.Response{StatusCode: c.status, Header: h, Body: io.NopCloser(bytes.NewReader(c.body)), Request: r}, nil
}

type fixedToken string

func (f fixedToken) Token(context.Context) (string, error) { return string(f), nil }
func (f fixedToken) Refresh(context.Context, string) (string, error) {
	return "", fault.New(fault.Auth, CodeTokenNotRefreshable, "no refresh in this test")
}

// FuzzHelixResponses feeds arbitrary status codes, bodies and rate-limit headers to
// every decoder of Helix answers: the client must return a classified error or a
// result, never panic, and never hang.
func FuzzHelixResponses(f *testing.F) {
	f.Add(200, []byte(`{"data":[{"message_id":"m","is_sent":false,"drop_reason":{"code":"x","message":"y"}}]}`), "0", "0")
	f.Add(202, []byte(`{"data":[{"id":"s","status":"enabled","type":"channel.follow","version":"2","condition":{},"transport":{"method":"websocket"},"created_at":"2024-01-01T00:00:00Z","cost":0}],"total":1,"total_cost":0,"max_total_cost":10}`), "800", "799")
	f.Add(200, []byte(`{"data":[{"id":"1","login":"a"}],"pagination":{"cursor":"c"}}`), "", "")
	f.Add(429, []byte(`{"error":"Too Many Requests","status":429,"message":"number of websocket transports limit exceeded"}`), "800", "0")
	f.Add(500, []byte(`not json`), "x", "-1")
	f.Add(204, []byte{}, "", "")
	f.Fuzz(func(t *testing.T, status int, body []byte, limit, remaining string) {
		if status < 100 || status > 599 {
			status = 200 + (status%400+400)%400
		}
		h := http.Header{}
		h.Set("Ratelimit-Limit", limit)
		h.Set("Ratelimit-Remaining", remaining)
		h.Set("Ratelimit-Reset", "1")
		c := NewClient(Options{
			APIBaseURL: "http://helix.invalid/helix", ClientID: "c", Tokens: fixedToken("t"),
			HTTPClient:       &http.Client{Transport: cannedTransport{status: status, body: body, header: h}},
			MaxRateLimitWait: 1, // never wait in a fuzz run
		})
		ctx := context.Background()
		check := func(err error) {
			if err != nil && fault.KindOf(err) == fault.Unknown {
				t.Fatalf("unclassified error for status %d: %v", status, err)
			}
		}
		_, err := c.SendChatMessage(ctx, "1", "2", "hi", "")
		check(err)
		check(c.SendWhisper(ctx, "1", "2", "hi"))
		_, err = c.GetUsers(ctx, []string{"a"}, nil)
		check(err)
		_, err = c.CreateEventSubSubscription(ctx, CreateSubscriptionRequest{Type: "channel.follow", Version: "2",
			Condition: map[string]string{"broadcaster_user_id": "1"}, Transport: WebSocketTransport("s")})
		check(err)
		_, err = c.ListEventSubSubscriptions(ctx, ListSubscriptionsFilter{})
		check(err)
		check(c.DeleteEventSubSubscription(ctx, "s"))
	})
}
