package faketwitch

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/bitbrat/twitch-edge/shared/twitch"
	"github.com/bitbrat/twitch-edge/shared/twitch/twitchtest"
)

func controlCall(t *testing.T, s *Server, method, path, body string) (int, []byte) {
	t.Helper()
	req, _ := http.NewRequest(method, s.ControlURL()+path, strings.NewReader(body))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var raw json.RawMessage
	_ = json.NewDecoder(resp.Body).Decode(&raw)
	return resp.StatusCode, raw
}

func TestConduitControl(t *testing.T) {
	s, _ := startServer(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	tw := s.Twitch
	p, err := twitch.NewAppTokenProvider(twitch.AppTokenProviderOptions{Store: &memAppStore{},
		OAuth: twitch.NewOAuth(twitch.OAuthOptions{BaseURL: tw.AuthBaseURL(), ClientID: tw.ClientID(), ClientSecret: tw.ClientSecret()})})
	if err != nil {
		t.Fatal(err)
	}
	c := twitch.NewClient(twitch.Options{APIBaseURL: tw.APIBaseURL(), ClientID: tw.ClientID(), AppTokens: p})
	cd, err := c.CreateConduit(ctx, 2)
	if err != nil {
		t.Fatal(err)
	}
	conn, _, err := websocket.Dial(ctx, tw.EventSubWSURL(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.CloseNow()
	_, b, err := conn.Read(ctx)
	if err != nil {
		t.Fatal(err)
	}
	m, _ := twitch.DecodeMessage(b)
	sess, _ := m.Session()
	if _, err := c.UpdateConduitShards(ctx, cd.ID, []twitch.ShardAssignment{{ID: "0", Transport: twitch.WebSocketShard(sess.ID)}}); err != nil {
		t.Fatal(err)
	}

	code, body := controlCall(t, s, "GET", "/conduits", "")
	var list []twitchtest.ConduitInfo
	if err := json.Unmarshal(body, &list); code != 200 || err != nil || len(list) != 1 || list[0].Shards[0].Status != "enabled" || list[0].Shards[0].SessionID != sess.ID {
		t.Fatalf("GET /conduits: %d %s", code, body)
	}
	for _, tc := range []struct {
		path, body string
		status     int
		says       string
	}{
		{"/conduits/kill", `{}`, 400, "required"},
		{"/conduits/kill", `{"conduit":"` + cd.ID + `","shard":"0","code":42}`, 400, "4000-4999"},
		{"/conduits/kill", `{"conduit":"nope","shard":"0"}`, 404, "no shard"},
		{"/conduits/kill", `{"conduit":"` + cd.ID + `","shard":"1"}`, 409, "no live socket"},
		{"/conduits/kill", `{"conduit":"` + cd.ID + `","shard":"0","code":4006}`, 200, `"websocket_network_error"`},
		{"/conduits/disable", `{"conduit":"` + cd.ID + `","shard":"9"}`, 404, "no shard"},
		{"/conduits/disable", `{"conduit":"` + cd.ID + `","shard":"1","status":"notification_failures_exceeded"}`, 200, `"notification_failures_exceeded"`},
	} {
		code, body := controlCall(t, s, "POST", tc.path, tc.body)
		if code != tc.status || !strings.Contains(string(body), tc.says) {
			t.Errorf("POST %s %s: %d %s, want %d saying %s", tc.path, tc.body, code, body, tc.status, tc.says)
		}
	}
	if code, body := controlCall(t, s, "GET", "/conduits/lost", ""); code != 200 || string(body) != "[]" {
		t.Errorf("GET /conduits/lost: %d %s", code, body)
	}
}

// memAppStore is a one-process app token store.
type memAppStore struct {
	tok twitch.AppToken
	has bool
}

func (m *memAppStore) LoadAppToken(context.Context) (twitch.AppToken, error) {
	if !m.has {
		return twitch.AppToken{}, twitch.ErrTokenNotFound
	}
	return m.tok, nil
}

func (m *memAppStore) AcquireAppTokenLease(context.Context, string, time.Duration) (bool, error) {
	return true, nil
}

func (m *memAppStore) SaveAppToken(_ context.Context, _ string, tok twitch.AppToken) error {
	m.tok, m.has = tok, true
	return nil
}

func (m *memAppStore) ReleaseAppTokenLease(context.Context, string) error { return nil }
