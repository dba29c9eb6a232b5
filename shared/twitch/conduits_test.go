package twitch

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/bitbrat/twitch-edge/shared/fault"
	"github.com/bitbrat/twitch-edge/shared/twitch/twitchtest"
)

// appFixture adds an app token provider to the fixture's client, which then holds
// both tokens as in production.
func appFixture(t *testing.T, fo twitchtest.Options) (*fixture, *Client, *AppTokenProvider) {
	t.Helper()
	f := newFixture(t, fo)
	p := newAppProvider(t, f, &memAppStore{}, "app-test", nil)
	c := NewClient(Options{APIBaseURL: f.fake.APIBaseURL(), AuthBaseURL: f.fake.AuthBaseURL(), ClientID: f.fake.ClientID(),
		Tokens: f.provider, AppTokens: p, Logger: f.logger})
	c.app.sleep = func(ctx context.Context, d time.Duration) error {
		f.sleepMu.Lock()
		f.sleeps = append(f.sleeps, d)
		f.sleepMu.Unlock()
		return ctx.Err()
	}
	return f, c, p
}

// welcomeSession opens an EventSub socket on the fake and returns its session id.
func welcomeSession(t *testing.T, f *fixture) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, _, err := websocket.Dial(ctx, f.fake.EventSubWSURL(), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.CloseNow() })
	_, b, err := conn.Read(ctx)
	if err != nil {
		t.Fatal(err)
	}
	m, err := DecodeMessage(b)
	if err != nil {
		t.Fatal(err)
	}
	s, err := m.Session()
	if err != nil {
		t.Fatal(err)
	}
	return s.ID
}

func TestConduitLifecycle(t *testing.T) {
	f, c, _ := appFixture(t, twitchtest.Options{PageSize: 2})
	ctx := context.Background()
	cd, err := c.CreateConduit(ctx, 3)
	if err != nil || cd.ID == "" || cd.ShardCount != 3 {
		t.Fatalf("create: %+v %v", cd, err)
	}
	list, err := c.GetConduits(ctx)
	if err != nil || len(list) != 1 || list[0] != *cd {
		t.Fatalf("get: %+v %v", list, err)
	}
	if up, err := c.UpdateConduit(ctx, cd.ID, 5); err != nil || up.ShardCount != 5 {
		t.Fatalf("update: %+v %v", up, err)
	}
	shards, err := c.GetConduitShards(ctx, cd.ID, "")
	if err != nil || len(shards) != 5 || shards[0].ID != "0" || shards[4].ID != "4" {
		t.Fatalf("shards (paged by 2): %+v %v", shards, err)
	}
	if got := len(f.fake.RequestsTo("GET", "/helix/eventsub/conduits/shards")); got != 3 {
		t.Errorf("%d shard pages fetched, want 3", got)
	}
	if enabled, err := c.GetConduitShards(ctx, cd.ID, "enabled"); err != nil || len(enabled) != 0 {
		t.Errorf("enabled shards: %+v %v", enabled, err)
	}
	// Every conduit call carried the app token, never the bot's.
	for _, r := range f.fake.Requests() {
		if strings.HasPrefix(r.Path, "/helix/eventsub/conduits") && r.Header.Get("Authorization") == "Bearer "+botAccess {
			t.Fatalf("%s %s sent the user token", r.Method, r.Path)
		}
	}
	if err := c.DeleteConduit(ctx, cd.ID); err != nil {
		t.Fatal(err)
	}
	checkErr(t, c.DeleteConduit(ctx, cd.ID), fault.Permanent, CodeNotFound)
}

func TestConduitCallErrors(t *testing.T) {
	ctx := context.Background()
	cases := []struct {
		name   string
		script []twitchtest.Response
		call   func(c *Client) error
		kind   fault.Kind
		code   string
		// sent is how many requests reached the endpoint.
		sent int
	}{
		{"shard count 0 refused before sending", nil, func(c *Client) error { _, err := c.CreateConduit(ctx, 0); return err }, fault.Invalid, CodeInvalidInput, 0},
		{"shard count 20001 refused before sending", nil, func(c *Client) error { _, err := c.CreateConduit(ctx, 20001); return err }, fault.Invalid, CodeInvalidInput, 0},
		{"update without id", nil, func(c *Client) error { _, err := c.UpdateConduit(ctx, "", 2); return err }, fault.Invalid, CodeInvalidInput, 0},
		{"update unknown conduit", nil, func(c *Client) error { _, err := c.UpdateConduit(ctx, "nope", 2); return err }, fault.Permanent, CodeNotFound, 1},
		{"shards of unknown conduit", nil, func(c *Client) error { _, err := c.GetConduitShards(ctx, "nope", ""); return err }, fault.Permanent, CodeNotFound, 1},
		{"400", []twitchtest.Response{twitchtest.ErrorResponse(400, "bad")}, func(c *Client) error { _, err := c.CreateConduit(ctx, 1); return err }, fault.Permanent, CodeBadRequest, 1},
		{"500", []twitchtest.Response{twitchtest.ErrorResponse(500, "oops")}, func(c *Client) error { _, err := c.GetConduits(ctx); return err }, fault.Transient, CodeUnavailable, 1},
		{"503 retried once", []twitchtest.Response{twitchtest.ErrorResponse(503, "busy")}, func(c *Client) error { _, err := c.CreateConduit(ctx, 1); return err }, 0, "", 2},
		{"401 reissues the app token and retries", []twitchtest.Response{twitchtest.ErrorResponse(401, "Invalid OAuth token")},
			func(c *Client) error { _, err := c.CreateConduit(ctx, 1); return err }, 0, "", 2},
		{"bucket 429 waits for the reset and retries", []twitchtest.Response{twitchtest.RateLimitedResponse(800, time.Now().Add(2*time.Second), "")},
			func(c *Client) error { _, err := c.CreateConduit(ctx, 1); return err }, 0, "", 2},
		{"conduit limit 429 is not retried", []twitchtest.Response{twitchtest.ErrorResponse(429, twitchtest.MsgConduitLimit)},
			func(c *Client) error { _, err := c.CreateConduit(ctx, 1); return err }, fault.RateLimited, CodeConduitLimit, 1},
		{"garbage body", []twitchtest.Response{{Status: 200, Body: "<html>"}}, func(c *Client) error { _, err := c.CreateConduit(ctx, 1); return err }, fault.Transient, CodeMalformedResponse, 1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f, c, _ := appFixture(t, twitchtest.Options{})
			for _, path := range []string{"/helix/eventsub/conduits", "/helix/eventsub/conduits/shards"} {
				for _, m := range []string{"GET", "POST", "PATCH"} {
					f.fake.Script(m, path, tc.script...)
				}
			}
			checkErr(t, tc.call(c), tc.kind, tc.code)
			sent := 0
			for _, r := range f.fake.Requests() {
				if strings.HasPrefix(r.Path, "/helix/eventsub/conduits") {
					sent++
				}
			}
			if sent != tc.sent {
				t.Errorf("%d requests sent, want %d", sent, tc.sent)
			}
		})
	}
	// Five conduits at most: the sixth is CONDUIT_LIMIT, straight from the fake.
	_, c, _ := appFixture(t, twitchtest.Options{})
	for i := 0; i < 5; i++ {
		if _, err := c.CreateConduit(ctx, 1); err != nil {
			t.Fatal(err)
		}
	}
	_, err := c.CreateConduit(ctx, 1)
	checkErr(t, err, fault.RateLimited, CodeConduitLimit)
	// No app token source at all.
	bare := NewClient(Options{APIBaseURL: "http://127.0.0.1:1", ClientID: "x"})
	_, err = bare.GetConduits(ctx)
	checkErr(t, err, fault.Auth, CodeNoToken)
}

func TestUpdateConduitShards(t *testing.T) {
	f, c, _ := appFixture(t, twitchtest.Options{})
	ctx := context.Background()
	cd, err := c.CreateConduit(ctx, 2)
	if err != nil {
		t.Fatal(err)
	}
	s0, s1 := welcomeSession(t, f), welcomeSession(t, f)
	shards, err := c.UpdateConduitShards(ctx, cd.ID, []ShardAssignment{{ID: "0", Transport: WebSocketShard(s0)}})
	if err != nil || len(shards) != 1 || shards[0].Status != "enabled" || shards[0].Transport.SessionID != s0 || shards[0].Transport.ConnectedAt == nil {
		t.Fatalf("update: %+v %v", shards, err)
	}
	// A 202 that refuses some shards is an error listing each, with what did update.
	shards, err = c.UpdateConduitShards(ctx, cd.ID, []ShardAssignment{
		{ID: "1", Transport: WebSocketShard(s1)}, {ID: "9", Transport: WebSocketShard(s1)}, {ID: "0", Transport: WebSocketShard("gone")}})
	checkErr(t, err, fault.Permanent, CodeShardUpdateFailed)
	var sue *ShardUpdateError
	if !errors.As(err, &sue) || len(sue.Failed) != 2 || sue.Failed[0].ShardID != "9" || sue.Failed[1].ShardID != "0" ||
		sue.Failed[0].Message == "" || sue.Failed[0].Code == "" || len(sue.Updated) != 1 || sue.Updated[0].ID != "1" {
		t.Fatalf("shard errors = %+v", sue)
	}
	if len(shards) != 1 || shards[0].ID != "1" {
		t.Errorf("updated shards = %+v", shards)
	}
	if !strings.Contains(err.Error(), "shard 9 refused") {
		t.Errorf("error text: %v", err)
	}
	// Input the client refuses before asking.
	for _, bad := range [][]ShardAssignment{
		nil,
		{{ID: "x", Transport: WebSocketShard(s1)}},
		{{ID: "0", Transport: ShardTransport{Method: "websocket"}}},
		{{ID: "0", Transport: WebhookShard("https://example.test/cb", "short")}},
		{{ID: "0", Transport: WebhookShard("ftp://example.test/cb", "long-enough-secret")}},
		{{ID: "0", Transport: ShardTransport{Method: "pigeon"}}},
	} {
		_, err := c.UpdateConduitShards(ctx, cd.ID, bad)
		checkErr(t, err, fault.Invalid, CodeInvalidInput)
	}
	// A webhook secret never shows when a transport is printed.
	if s := WebhookShard("https://example.test/cb", "very-secret-value").String(); strings.Contains(s, "very-secret") {
		t.Errorf("transport prints its secret: %s", s)
	}
	_, err = c.UpdateConduitShards(ctx, "nope", []ShardAssignment{{ID: "0", Transport: WebSocketShard(s1)}})
	checkErr(t, err, fault.Permanent, CodeNotFound)
}

func TestConduitSubscriptionsWithAppToken(t *testing.T) {
	f, c, p := appFixture(t, twitchtest.Options{})
	ctx := context.Background()
	a, err := c.CreateConduit(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	b, err := c.CreateConduit(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	for _, cd := range []*Conduit{a, b} {
		sub, err := c.CreateEventSubSubscription(ctx, CreateSubscriptionRequest{Type: TypeChannelUpdate, Version: VersionChannelUpdate,
			Condition: map[string]string{"broadcaster_user_id": broadcasterID}, Transport: ConduitTransport(cd.ID)})
		if err != nil || sub.Transport.ConduitID != cd.ID || sub.MaxTotalCost != 10000 {
			t.Fatalf("create on %s: %+v %v", cd.ID, sub, err)
		}
	}
	app, _ := p.Token(ctx)
	for _, r := range f.fake.RequestsTo("POST", "/helix/eventsub/subscriptions") {
		if r.Header.Get("Authorization") != "Bearer "+app {
			t.Fatal("conduit subscription not created with the app token")
		}
	}
	list, err := c.ListConduitSubscriptions(ctx, a.ID, ListSubscriptionsFilter{Type: TypeChannelUpdate})
	if err != nil || len(list.Subscriptions) != 1 || list.Subscriptions[0].Transport.ConduitID != a.ID || list.Total != 2 {
		t.Fatalf("list for conduit a: %+v %v", list, err)
	}
	if err := c.DeleteConduitSubscription(ctx, list.Subscriptions[0].ID); err != nil {
		t.Fatal(err)
	}
	list, err = c.ListConduitSubscriptions(ctx, a.ID, ListSubscriptionsFilter{})
	if err != nil || len(list.Subscriptions) != 0 {
		t.Fatalf("after delete: %+v %v", list, err)
	}
	checkErr(t, c.DeleteConduitSubscription(ctx, "nope"), fault.Permanent, CodeNotFound)
	_, err = c.ListConduitSubscriptions(ctx, "", ListSubscriptionsFilter{})
	checkErr(t, err, fault.Invalid, CodeInvalidInput)
	// The user's own (WebSocket) view does not see the app's subscriptions.
	mine, err := c.ListEventSubSubscriptions(ctx, ListSubscriptionsFilter{})
	if err != nil || len(mine.Subscriptions) != 0 {
		t.Errorf("user view: %+v %v", mine, err)
	}
	// A client with the user token only refuses before asking: Twitch would answer
	// 401 and the client would spend a refresh of the bot's token on it.
	userOnly := NewClient(Options{APIBaseURL: f.fake.APIBaseURL(), ClientID: f.fake.ClientID(), Tokens: f.provider})
	before := f.fake.RefreshCount()
	_, err = userOnly.CreateEventSubSubscription(ctx, CreateSubscriptionRequest{Type: TypeChannelUpdate, Version: VersionChannelUpdate,
		Condition: map[string]string{"broadcaster_user_id": botID}, Transport: ConduitTransport(b.ID)})
	checkErr(t, err, fault.Auth, CodeNoToken)
	if f.fake.RefreshCount() != before {
		t.Error("a conduit call refreshed the user token")
	}
	// Twitch itself refuses a user token on the conduit transport (the fake, asked
	// directly with the bot's token).
	req, _ := http.NewRequest("POST", f.fake.APIBaseURL()+"/eventsub/subscriptions", strings.NewReader(
		`{"type":"channel.update","version":"2","condition":{"broadcaster_user_id":"`+botID+`"},"transport":{"method":"conduit","conduit_id":"`+b.ID+`"}}`))
	req.Header.Set("Authorization", "Bearer "+botAccess)
	req.Header.Set("Client-Id", f.fake.ClientID())
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("conduit subscription with a user token: %d, want 401", resp.StatusCode)
	}
}
