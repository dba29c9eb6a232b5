package faketwitch

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
)

func startServer(t *testing.T) (*Server, *Client) {
	t.Helper()
	s, err := Start(Options{ReconnectGrace: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s, &Client{BaseURL: s.ControlURL()}
}

func TestControlRejectsBadInput(t *testing.T) {
	s, _ := startServer(t)
	for _, tc := range []struct {
		method, path, body string
		status             int
		says               string
	}{
		{"POST", "/trigger", ``, 400, "type is required"},
		{"POST", "/trigger", `{"type":"channel.raid"}`, 400, "not one of"},
		{"POST", "/trigger", `{"type":"channel.follow","broadcaster":"nobody"}`, 400, "not a seeded channel"},
		{"POST", "/trigger", `{"type":"channel.follow","user":"nobody"}`, 400, "not a seeded user"},
		{"POST", "/trigger", `{"type":"channel.follow","broadcaster":"bitbrat_demo","user":"bitbrat_demo"}`, 400, "cannot follow itself"},
		{"POST", "/trigger", `{"type":"channel.update","user":"pixel_pioneer"}`, 400, "channel.follow only"},
		{"POST", "/trigger", `{"type":"channel.follow","title":"x"}`, 400, "channel.update only"},
		{"POST", "/trigger", `{"type":"channel.update","title":"` + strings.Repeat("x", 141) + `"}`, 400, "140"},
		{"POST", "/trigger", `{"type":"channel.follow","colour":"red"}`, 400, "unknown field"},
		{"POST", "/trigger", `{"type":`, 400, "not the expected JSON"},
		{"POST", "/trigger", `{"type":"channel.follow"} {}`, 400, "after the JSON object"},
		{"POST", "/trigger", `[1,2]`, 400, "not the expected JSON"},
		{"POST", "/trigger", `{"type":"channel.follow","padding":"` + strings.Repeat("x", maxBody) + `"}`, 400, "larger than"},
		{"POST", "/close", `{"code":42}`, 400, "4000-4999"},
		{"POST", "/close", `{"code":"4000"}`, 400, "not the expected JSON"},
		{"POST", "/revoke", `{}`, 400, "not one of"},
		{"POST", "/revoke", `{"type":"channel.follow","reason":"because"}`, 400, "not one of"},
		{"POST", "/revoke", `{"type":"channel.follow","broadcaster":"nobody"}`, 400, "not a seeded channel"},
		// Well-formed, but nothing to act on: no connector is connected.
		{"POST", "/trigger", `{"type":"channel.follow"}`, 409, "is the connector running"},
		{"POST", "/reconnect", ``, 409, "no live EventSub session"},
		{"POST", "/drop", `{"session":"abc"}`, 409, "no live EventSub session"},
		{"POST", "/silence", ``, 409, "no live EventSub session"},
		{"POST", "/close", `{"code":4000}`, 409, "no live EventSub session"},
		{"POST", "/revoke", `{"type":"channel.update"}`, 409, "no enabled"},
		{"GET", "/trigger", ``, 404, "no such control endpoint: GET /trigger"},
		{"GET", "/nope", ``, 404, "no such control endpoint"},
	} {
		t.Run(tc.method+tc.path+" "+short(tc.body), func(t *testing.T) {
			req, _ := http.NewRequest(tc.method, s.ControlURL()+tc.path, strings.NewReader(tc.body))
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d, want %d", resp.StatusCode, tc.status)
			}
			if tc.says == "" {
				return
			}
			var eb ErrorBody
			if err := json.NewDecoder(resp.Body).Decode(&eb); err != nil {
				t.Fatalf("error body is not JSON: %v", err)
			}
			if !strings.Contains(eb.Error, tc.says) {
				t.Errorf("error %q does not say %q", eb.Error, tc.says)
			}
		})
	}
}

func short(s string) string {
	if len(s) > 40 {
		return s[:40]
	}
	return s
}

// eventSubClient is a minimal EventSub WebSocket client: it connects, subscribes
// to channel.follow for both channels with the bot's token, and reads frames.
type eventSubClient struct {
	t       *testing.T
	conn    *websocket.Conn
	session string
}

type frame struct {
	Metadata struct {
		MessageID   string `json:"message_id"`
		MessageType string `json:"message_type"`
	} `json:"metadata"`
	Payload struct {
		Session *struct {
			ID string `json:"id"`
		} `json:"session"`
		Event map[string]any `json:"event"`
	} `json:"payload"`
}

func connect(ctx context.Context, t *testing.T, s *Server) *eventSubClient {
	t.Helper()
	conn, _, err := websocket.Dial(ctx, s.Twitch.EventSubWSURL(), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.CloseNow() })
	c := &eventSubClient{t: t, conn: conn}
	welcome := c.read(ctx)
	if welcome.Metadata.MessageType != "session_welcome" {
		t.Fatalf("first frame %q, want session_welcome", welcome.Metadata.MessageType)
	}
	c.session = welcome.Payload.Session.ID
	for _, ch := range Channels {
		body := fmt.Sprintf(`{"type":"channel.follow","version":"2","condition":{"broadcaster_user_id":%q,"moderator_user_id":%q},"transport":{"method":"websocket","session_id":%q}}`,
			ch.ID, BotID, c.session)
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, s.Twitch.APIBaseURL()+"/eventsub/subscriptions", strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+s.BotToken().AccessToken)
		req.Header.Set("Client-Id", s.Twitch.ClientID())
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusAccepted {
			t.Fatalf("subscribe with the seeded bot token: HTTP %d", resp.StatusCode)
		}
	}
	return c
}

func (c *eventSubClient) read(ctx context.Context) frame {
	c.t.Helper()
	for {
		_, b, err := c.conn.Read(ctx)
		if err != nil {
			c.t.Fatalf("read frame: %v", err)
		}
		var f frame
		if err := json.Unmarshal(b, &f); err != nil {
			c.t.Fatalf("frame: %v", err)
		}
		if f.Metadata.MessageType != "session_keepalive" {
			return f
		}
	}
}

func TestControlDrivesTheSocket(t *testing.T) {
	s, ctl := startServer(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c := connect(ctx, t, s)

	res, err := ctl.Trigger(ctx, TriggerRequest{Type: TypeFollow, Broadcaster: "cooler_user", User: "chat_champ"})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.MessageIDs) != 1 || res.Broadcaster != "cooler_user" || res.User != "chat_champ" {
		t.Fatalf("trigger result %+v", res)
	}
	f := c.read(ctx)
	if f.Metadata.MessageType != "notification" || f.Metadata.MessageID != res.MessageIDs[0] {
		t.Fatalf("got %s %s, want the notification %s", f.Metadata.MessageType, f.Metadata.MessageID, res.MessageIDs[0])
	}
	if f.Payload.Event["user_login"] != "chat_champ" || f.Payload.Event["broadcaster_user_login"] != "cooler_user" {
		t.Errorf("event %v", f.Payload.Event)
	}

	// Without a user, followers take turns.
	a, _ := ctl.Trigger(ctx, TriggerRequest{Type: TypeFollow})
	b, _ := ctl.Trigger(ctx, TriggerRequest{Type: TypeFollow})
	if a.User == "" || a.User == b.User || a.Broadcaster != Channels[0].Login {
		t.Errorf("default followers %q, %q on %q", a.User, b.User, a.Broadcaster)
	}
	c.read(ctx)
	c.read(ctx)

	ss, err := ctl.Sessions(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(ss.Sessions) != 1 || ss.Sessions[0].ID != c.session || ss.Sessions[0].Subscriptions != 2 {
		t.Fatalf("sessions %+v", ss.Sessions)
	}

	rv, err := ctl.Revoke(ctx, RevokeRequest{Type: TypeFollow, Broadcaster: "bitbrat_demo"})
	if err != nil || len(rv.Revoked) != 1 {
		t.Fatalf("revoke: %+v, %v", rv, err)
	}
	if f := c.read(ctx); f.Metadata.MessageType != "revocation" {
		t.Errorf("after revoke got %s, want revocation", f.Metadata.MessageType)
	}
	// A trigger on the revoked subscription says so (not "is the connector running").
	var revokedErr *APIError
	if _, err := ctl.Trigger(ctx, TriggerRequest{Type: TypeFollow, Broadcaster: "bitbrat_demo"}); !errors.As(err, &revokedErr) ||
		revokedErr.Status != http.StatusConflict || !strings.Contains(revokedErr.Message, "was revoked (authorization_revoked") {
		t.Errorf("trigger after revoke: %v, want a 409 naming the revocation", err)
	}

	rc, err := ctl.Reconnect(ctx, SessionRequest{})
	if err != nil || rc.Session != c.session || rc.ReconnectURL == "" {
		t.Fatalf("reconnect: %+v, %v", rc, err)
	}
	if f := c.read(ctx); f.Metadata.MessageType != "session_reconnect" {
		t.Errorf("after reconnect got %s, want session_reconnect", f.Metadata.MessageType)
	}
	// The socket is reconnecting: a second reconnect has nothing to act on.
	var apiErr *APIError
	if _, err := ctl.Reconnect(ctx, SessionRequest{}); !errors.As(err, &apiErr) || apiErr.Status != http.StatusConflict {
		t.Errorf("second reconnect: %v, want 409", err)
	}
}

func TestDeliveriesNameUsers(t *testing.T) {
	s, ctl := startServer(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	helix := func(path, body string) {
		t.Helper()
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, s.Twitch.APIBaseURL()+path, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+s.BotToken().AccessToken)
		req.Header.Set("Client-Id", s.Twitch.ClientID())
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode/100 != 2 {
			t.Fatalf("%s: HTTP %d", path, resp.StatusCode)
		}
	}
	helix("/chat/messages", `{"broadcaster_id":"1001","sender_id":"900","message":"hi chat"}`)
	helix("/whispers?from_user_id=900&to_user_id=2002", `{"message":"psst"}`)
	d, err := ctl.Deliveries(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(d.Chat) != 1 || d.Chat[0].Channel != "bitbrat_demo" || d.Chat[0].Sender != BotLogin || !d.Chat[0].Sent || d.Chat[0].MessageID == "" {
		t.Errorf("chat %+v", d.Chat)
	}
	if len(d.Whispers) != 1 || d.Whispers[0].To != "lurker_larry" || d.Whispers[0].ToID != "2002" || d.Whispers[0].Message != "psst" {
		t.Errorf("whispers %+v", d.Whispers)
	}
	us, err := ctl.Users(ctx)
	if err != nil || len(us) != 1+len(Channels)+len(Viewers) {
		t.Errorf("users %d, %v", len(us), err)
	}
}

func TestCloseStopsEverything(t *testing.T) {
	s, err := Start(Options{})
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	s.Close() // idempotent
	client := &http.Client{Timeout: time.Second}
	for _, u := range []string{s.ControlURL() + "/healthz", s.URL() + "/helix/users"} {
		if resp, err := client.Get(u); err == nil {
			resp.Body.Close()
			t.Errorf("%s still answers after Close", u)
		}
	}
}
