package twitchtest_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/bitbrat/twitch-edge/shared/twitch"
	"github.com/bitbrat/twitch-edge/shared/twitch/twitchtest"
)

// TestMain fails the package when goroutines outlive the tests: Close must stop
// everything the fake started.
func TestMain(m *testing.M) {
	before := runtime.NumGoroutine()
	code := m.Run()
	if code == 0 {
		deadline := time.Now().Add(patience)
		for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond)
		}
		if n := runtime.NumGoroutine(); n > before {
			buf := make([]byte, 1<<20)
			fmt.Fprintf(os.Stderr, "goroutine leak: %d before, %d after\n%s\n", before, n, buf[:runtime.Stack(buf, true)])
			code = 1
		}
	}
	os.Exit(code)
}

const (
	broadcaster = "1001"
	bot         = "2002"
	access      = "access-1"
)

// patience bounds every wait on the fake: long enough never to expire on a machine
// under load, since each wait ends on a condition, not on the clock.
const patience = 30 * time.Second

func newFake(t *testing.T, o twitchtest.Options) *twitchtest.Server {
	t.Helper()
	if o.KeepaliveUnit == 0 {
		o.KeepaliveUnit = 10 * time.Millisecond
	}
	// A test subscribes (or PATCHes a shard) well within this; the tests of the 4003
	// close set a short window themselves.
	if o.SubscribeTimeout == 0 {
		o.SubscribeTimeout = patience
	}
	f, err := twitchtest.New(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(f.Close)
	f.AddUser(twitchtest.User{ID: broadcaster, Login: "brat"})
	f.AddUser(twitchtest.User{ID: bot, Login: "bratbot"})
	f.AddModerator(broadcaster, bot)
	f.AddToken(twitchtest.Token{AccessToken: access, RefreshToken: "refresh-1", UserID: bot,
		Scopes: []string{"moderator:read:followers", "user:write:chat", "user:manage:whispers"}})
	return f
}

// httpc is a client whose idle connections are closed at the end of the test, so
// the leak check sees only the fake's goroutines.
func httpc(t *testing.T) *http.Client {
	tr := &http.Transport{}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: patience}
}

func helix(t *testing.T, f *twitchtest.Server, method, path, body string) (int, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest(method, f.APIBaseURL()+path, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+access)
	req.Header.Set("Client-Id", f.ClientID())
	resp, err := httpc(t).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&out)
	return resp.StatusCode, out
}

// wsClient is a test client of the fake's EventSub socket.
type wsClient struct {
	t      *testing.T
	c      *websocket.Conn
	frames chan *twitch.Message
	closed chan error
}

func dial(t *testing.T, u string) *wsClient {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), patience)
	defer cancel()
	c, _, err := websocket.Dial(ctx, u, &websocket.DialOptions{HTTPClient: httpc(t)})
	if err != nil {
		t.Fatal(err)
	}
	w := &wsClient{t: t, c: c, frames: make(chan *twitch.Message, 100), closed: make(chan error, 1)}
	go func() {
		for {
			_, b, err := c.Read(context.Background())
			if err != nil {
				w.closed <- err
				close(w.frames)
				return
			}
			m, err := twitch.DecodeMessage(b)
			if err != nil {
				t.Errorf("fake sent an undecodable frame %s: %v", b, err)
				continue
			}
			w.frames <- m
		}
	}()
	t.Cleanup(func() { _ = c.CloseNow() })
	return w
}

func (w *wsClient) next(want string) *twitch.Message {
	w.t.Helper()
	for {
		select {
		case m, ok := <-w.frames:
			if !ok {
				w.t.Fatalf("socket closed while waiting for %s", want)
			}
			if want != twitch.MessageTypeKeepalive && m.Metadata.MessageType == twitch.MessageTypeKeepalive {
				continue
			}
			if m.Metadata.MessageType != want {
				w.t.Fatalf("got %s, want %s", m.Metadata.MessageType, want)
			}
			return m
		case <-time.After(patience):
			w.t.Fatalf("timeout waiting for %s", want)
		}
	}
}

func (w *wsClient) welcome() string {
	w.t.Helper()
	s, err := w.next(twitch.MessageTypeWelcome).Session()
	if err != nil {
		w.t.Fatal(err)
	}
	return s.ID
}

// closeCode waits for the socket to end and returns the close code (-1: no close
// frame, e.g. a dropped TCP connection).
func (w *wsClient) closeCode() websocket.StatusCode {
	w.t.Helper()
	select {
	case err := <-w.closed:
		return websocket.CloseStatus(err)
	case <-time.After(patience):
		w.t.Fatal("socket did not close")
	}
	return 0
}

func subscribe(t *testing.T, f *twitchtest.Server, session string) string {
	t.Helper()
	body := fmt.Sprintf(`{"type":"channel.follow","version":"2","condition":{"broadcaster_user_id":%q,"moderator_user_id":%q},"transport":{"method":"websocket","session_id":%q}}`, broadcaster, bot, session)
	code, out := helix(t, f, "POST", "/eventsub/subscriptions", body)
	if code != http.StatusAccepted {
		t.Fatalf("subscribe: %d %v", code, out)
	}
	return out["data"].([]any)[0].(map[string]any)["id"].(string)
}

func waitFor(t *testing.T, f *twitchtest.Server, what string, cond func() bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), patience)
	defer cancel()
	if err := f.Wait(ctx, cond); err != nil {
		t.Fatalf("waiting for %s: %v", what, err)
	}
}

func subStatus(f *twitchtest.Server, id string) string {
	for _, s := range f.Subscriptions() {
		if s.ID == id {
			return s.Status
		}
	}
	return ""
}

func TestWelcomeAndKeepalive(t *testing.T) {
	f := newFake(t, twitchtest.Options{MinKeepaliveSeconds: 1})
	w := dial(t, f.EventSubWSURL()+"?keepalive_timeout_seconds=3")
	m := w.next(twitch.MessageTypeWelcome)
	s, _ := m.Session()
	if *s.KeepaliveTimeoutSeconds != 3 || s.Status != "connected" || s.ReconnectURL != nil {
		t.Fatalf("session = %+v", s)
	}
	subscribe(t, f, s.ID)
	// 3 "seconds" of 10 ms: keepalives keep coming on a subscribed socket. (Their
	// cadence is not asserted: an upper bound on wall time is a flaky test.)
	for i := 0; i < 3; i++ {
		w.next(twitch.MessageTypeKeepalive)
	}
}

func TestKeepaliveQueryClamped(t *testing.T) {
	f := newFake(t, twitchtest.Options{})
	for q, want := range map[string]int{"": 10, "?keepalive_timeout_seconds=2": 10, "?keepalive_timeout_seconds=9999": 600} {
		w := dial(t, f.EventSubWSURL()+q)
		s, _ := w.next(twitch.MessageTypeWelcome).Session()
		if *s.KeepaliveTimeoutSeconds != want {
			t.Errorf("%q: keepalive %d, want %d", q, *s.KeepaliveTimeoutSeconds, want)
		}
	}
	resp, err := httpc(t).Get(strings.Replace(f.EventSubWSURL(), "ws", "http", 1) + "?keepalive_timeout_seconds=abc")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Errorf("non-numeric keepalive: %d", resp.StatusCode)
	}
}

func TestUnusedConnectionClosed4003(t *testing.T) {
	f := newFake(t, twitchtest.Options{SubscribeTimeout: 50 * time.Millisecond})
	w := dial(t, f.EventSubWSURL())
	w.welcome()
	if code := w.closeCode(); code != 4003 {
		t.Fatalf("close code %d, want 4003", code)
	}
}

func TestInboundTrafficClosed4001(t *testing.T) {
	f := newFake(t, twitchtest.Options{})
	w := dial(t, f.EventSubWSURL())
	id := subscribe(t, f, w.welcome())
	if err := w.c.Write(context.Background(), websocket.MessageText, []byte("hello?")); err != nil {
		t.Fatal(err)
	}
	if code := w.closeCode(); code != 4001 {
		t.Fatalf("close code %d, want 4001", code)
	}
	waitFor(t, f, "subscription disabled", func() bool { return subStatus(f, id) == "websocket_received_inbound_traffic" })
}

func TestNotifyAndRedeliver(t *testing.T) {
	f := newFake(t, twitchtest.Options{})
	w := dial(t, f.EventSubWSURL())
	session := w.welcome()
	subID := subscribe(t, f, session)
	ids, err := f.Notify(twitchtest.Notification{Type: "channel.follow",
		Condition: map[string]string{"broadcaster_user_id": broadcaster}, Event: f.FollowEvent(broadcaster, bot, time.Now())})
	if err != nil || len(ids) != 1 {
		t.Fatalf("notify: %v %v", ids, err)
	}
	m := w.next(twitch.MessageTypeNotification)
	n, err := m.Notification()
	if err != nil {
		t.Fatal(err)
	}
	var ev twitch.ChannelFollowEvent
	if err := json.Unmarshal(n.Event, &ev); err != nil {
		t.Fatal(err)
	}
	if m.Metadata.MessageID != ids[0] || m.Metadata.SubscriptionType != "channel.follow" || m.Metadata.SubscriptionVersion != "2" ||
		n.Subscription.ID != subID || n.Subscription.Transport.SessionID != session || ev.UserLogin != "bratbot" || ev.BroadcasterUserID != broadcaster {
		t.Fatalf("notification = %+v %+v %+v", m.Metadata, n.Subscription, ev)
	}
	if err := f.Redeliver(ids[0]); err != nil {
		t.Fatal(err)
	}
	if again := w.next(twitch.MessageTypeNotification); again.Metadata.MessageID != ids[0] {
		t.Fatalf("redelivery has id %s", again.Metadata.MessageID)
	}
	stale := time.Now().Add(-11 * time.Minute)
	if _, err := f.Notify(twitchtest.Notification{Type: "channel.follow", Event: map[string]any{}, MessageID: "fixed", Timestamp: stale}); err != nil {
		t.Fatal(err)
	}
	if m := w.next(twitch.MessageTypeNotification); m.Metadata.MessageID != "fixed" || !m.Metadata.MessageTimestamp.Equal(stale) {
		t.Fatalf("overridden metadata = %+v", m.Metadata)
	}
	if _, err := f.Notify(twitchtest.Notification{Type: "channel.update"}); err != twitchtest.ErrNoSubscription {
		t.Fatalf("notify without subscription: %v", err)
	}
	if err := f.SendRaw(session, []byte(`{"metadata":{"message_id":"raw","message_type":"notification"},"payload":{"subscription":{"type":"x"}}}`)); err != nil {
		t.Fatal(err)
	}
	if m := w.next(twitch.MessageTypeNotification); m.Metadata.MessageID != "raw" {
		t.Fatalf("raw frame = %+v", m.Metadata)
	}
}

func TestReconnectHandover(t *testing.T) {
	// The grace time is ended by the test, after the handover, never by the clock.
	f := newFake(t, twitchtest.Options{ReconnectGrace: time.Hour})
	old := dial(t, f.EventSubWSURL())
	oldID := old.welcome()
	subID := subscribe(t, f, oldID)
	u, err := f.Reconnect(oldID)
	if err != nil {
		t.Fatal(err)
	}
	rs, err := old.next(twitch.MessageTypeReconnect).Session()
	if err != nil || rs.ReconnectURL == nil || *rs.ReconnectURL != u || rs.Status != "reconnecting" || rs.ID != oldID {
		t.Fatalf("reconnect session = %+v %v", rs, err)
	}
	// Events before the new welcome still arrive on the old socket.
	if _, err := f.Notify(twitchtest.Notification{Type: "channel.follow", Event: map[string]any{"n": 1}}); err != nil {
		t.Fatal(err)
	}
	old.next(twitch.MessageTypeNotification)

	nw := dial(t, *rs.ReconnectURL)
	newID := nw.welcome()
	if newID == oldID {
		t.Fatal("new session should have a new id")
	}
	subs := f.EnabledSubscriptions()
	if len(subs) != 1 || subs[0].ID != subID || subs[0].Transport.SessionID != newID {
		t.Fatalf("subscriptions did not move: %+v", subs)
	}
	if _, err := f.Notify(twitchtest.Notification{Type: "channel.follow", Event: map[string]any{"n": 2}}); err != nil {
		t.Fatal(err)
	}
	nw.next(twitch.MessageTypeNotification)
	// Resubscribing after a reconnect is the classic mistake: 409.
	body := fmt.Sprintf(`{"type":"channel.follow","version":"2","condition":{"broadcaster_user_id":%q,"moderator_user_id":%q},"transport":{"method":"websocket","session_id":%q}}`, broadcaster, bot, newID)
	if code, _ := helix(t, f, "POST", "/eventsub/subscriptions", body); code != http.StatusConflict {
		t.Errorf("resubscribe after reconnect: %d, want 409", code)
	}
	// The client does not close the old socket: Twitch does, after the grace time.
	if err := f.EndReconnectGrace(oldID); err != nil {
		t.Fatal(err)
	}
	if code := old.closeCode(); code != websocket.StatusNormalClosure {
		t.Fatalf("old socket close code %d", code)
	}
	if st := subStatus(f, subID); st != "enabled" {
		t.Fatalf("subscription status after handover = %s", st)
	}
}

func TestReconnectWithoutHandover4004(t *testing.T) {
	f := newFake(t, twitchtest.Options{ReconnectGrace: time.Hour})
	old := dial(t, f.EventSubWSURL())
	oldID := old.welcome()
	subID := subscribe(t, f, oldID)
	u, err := f.Reconnect(oldID)
	if err != nil {
		t.Fatal(err)
	}
	old.next(twitch.MessageTypeReconnect)
	// The client never connects to u; the grace time ends (by the test, not the clock).
	if err := f.EndReconnectGrace(oldID); err != nil {
		t.Fatal(err)
	}
	if err := f.EndReconnectGrace(oldID); err != twitchtest.ErrNoSession {
		t.Errorf("grace ended twice: %v", err)
	}
	if code := old.closeCode(); code != 4004 {
		t.Fatalf("close code %d, want 4004", code)
	}
	waitFor(t, f, "subscription disabled", func() bool { return subStatus(f, subID) == "websocket_failed_to_reconnect" })
	// The reconnect URL is dead now.
	late := dial(t, u)
	if code := late.closeCode(); code != 4007 {
		t.Fatalf("late reconnect close code %d, want 4007", code)
	}
}

func TestRevocation(t *testing.T) {
	f := newFake(t, twitchtest.Options{})
	w := dial(t, f.EventSubWSURL())
	subID := subscribe(t, f, w.welcome())
	if err := f.Revoke(subID, "authorization_revoked"); err != nil {
		t.Fatal(err)
	}
	r, err := w.next(twitch.MessageTypeRevocation).Revocation()
	if err != nil || r.Subscription.ID != subID || r.Subscription.Status != "authorization_revoked" {
		t.Fatalf("revocation = %+v %v", r, err)
	}
	if _, err := f.Notify(twitchtest.Notification{Type: "channel.follow", Event: map[string]any{}}); err != twitchtest.ErrNoSubscription {
		t.Fatalf("revoked subscription still notified: %v", err)
	}
}

func TestCloseCodesDisableSubscriptions(t *testing.T) {
	f := newFake(t, twitchtest.Options{})
	want := map[int]string{
		4000: "websocket_internal_error", 4001: "websocket_received_inbound_traffic", 4002: "websocket_failed_ping_pong",
		4003: "websocket_connection_unused", 4004: "websocket_failed_to_reconnect", 4005: "websocket_network_timeout",
		4006: "websocket_network_error", 4007: "websocket_failed_to_reconnect",
	}
	for code := 4000; code <= 4007; code++ {
		w := dial(t, f.EventSubWSURL())
		session := w.welcome()
		subID := subscribe(t, f, session)
		if err := f.CloseSession(session, code, "test"); err != nil {
			t.Fatal(err)
		}
		if got := w.closeCode(); int(got) != code {
			t.Fatalf("close code %d, want %d", got, code)
		}
		if st := subStatus(f, subID); st != want[code] {
			t.Errorf("code %d: status %s, want %s", code, st, want[code])
		}
	}
}

func TestSilenceStopsKeepalives(t *testing.T) {
	f := newFake(t, twitchtest.Options{MinKeepaliveSeconds: 1})
	w := dial(t, f.EventSubWSURL()+"?keepalive_timeout_seconds=1")
	session := w.welcome()
	subscribe(t, f, session)
	w.next(twitch.MessageTypeKeepalive)
	if err := f.Silence(session); err != nil {
		t.Fatal(err)
	}
	// Drain what was delivered before Silence; at most one more keepalive can have
	// passed the silence check already. Over many intervals no second one may come
	// (a slow machine can only make this pass vacuously, never fail wrongly).
	for len(w.frames) > 0 {
		<-w.frames
	}
	late := 0
	timeout := time.After(100 * time.Millisecond)
	for done := false; !done; {
		select {
		case m := <-w.frames:
			if late++; late > 1 {
				t.Fatalf("silenced socket sent %s", m.Metadata.MessageType)
			}
		case <-timeout:
			done = true
		}
	}
}

func TestDropAndClientCloseDisableSubscriptions(t *testing.T) {
	f := newFake(t, twitchtest.Options{})
	w := dial(t, f.EventSubWSURL())
	session := w.welcome()
	subID := subscribe(t, f, session)
	if err := f.Drop(session); err != nil {
		t.Fatal(err)
	}
	if code := w.closeCode(); code != -1 {
		t.Fatalf("dropped connection should end without a close frame, got %d", code)
	}
	waitFor(t, f, "disconnected", func() bool { return subStatus(f, subID) == "websocket_disconnected" })

	w2 := dial(t, f.EventSubWSURL())
	sub2 := subscribe(t, f, w2.welcome())
	_ = w2.c.Close(websocket.StatusNormalClosure, "bye")
	waitFor(t, f, "disconnected", func() bool { return subStatus(f, sub2) == "websocket_disconnected" })
	// A subscription on a dead session is refused.
	body := fmt.Sprintf(`{"type":"channel.update","version":"2","condition":{"broadcaster_user_id":%q},"transport":{"method":"websocket","session_id":%q}}`, broadcaster, session)
	if code, _ := helix(t, f, "POST", "/eventsub/subscriptions", body); code != http.StatusBadRequest {
		t.Errorf("subscribe on dead session: %d", code)
	}
}

func TestPingPongFailure4002(t *testing.T) {
	f := newFake(t, twitchtest.Options{PingInterval: 30 * time.Millisecond})
	// A client that never reads cannot answer pings.
	ctx, cancel := context.WithTimeout(context.Background(), patience)
	defer cancel()
	c, _, err := websocket.Dial(ctx, f.EventSubWSURL(), &websocket.DialOptions{HTTPClient: httpc(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseNow()
	waitFor(t, f, "session", func() bool { return len(f.Sessions()) == 1 })
	waitFor(t, f, "ping failure closes the session", func() bool { return len(f.Sessions()) == 0 })
}

func TestSubscriptionLimits(t *testing.T) {
	f := newFake(t, twitchtest.Options{})
	var sessions []string
	for i := 0; i < 4; i++ {
		w := dial(t, f.EventSubWSURL())
		sessions = append(sessions, w.welcome())
	}
	for i := 0; i < 3; i++ {
		subscribe(t, f, sessions[i])
	}
	body := fmt.Sprintf(`{"type":"channel.follow","version":"2","condition":{"broadcaster_user_id":%q,"moderator_user_id":%q},"transport":{"method":"websocket","session_id":%q}}`, broadcaster, bot, sessions[3])
	code, out := helix(t, f, "POST", "/eventsub/subscriptions", body)
	if code != http.StatusTooManyRequests || out["message"] != twitchtest.MsgTransportsLimit {
		t.Fatalf("4th connection: %d %v", code, out)
	}
	// App tokens cannot use WebSockets; missing scopes are 403.
	f.AddToken(twitchtest.Token{AccessToken: "noscope", UserID: bot})
	req, _ := http.NewRequest("POST", f.APIBaseURL()+"/eventsub/subscriptions", strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer noscope")
	req.Header.Set("Client-Id", f.ClientID())
	resp, err := httpc(t).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("missing scope: %d", resp.StatusCode)
	}
}

func TestOAuthEndpoints(t *testing.T) {
	f := newFake(t, twitchtest.Options{})
	post := func(form url.Values) (int, map[string]any) {
		resp, err := httpc(t).PostForm(f.AuthBaseURL()+"/token", form)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var out map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&out)
		return resp.StatusCode, out
	}
	base := url.Values{"client_id": {f.ClientID()}, "client_secret": {f.ClientSecret()}}
	refresh := func(tok string) (int, map[string]any) {
		v := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok}}
		for k, x := range base {
			v[k] = x
		}
		return post(v)
	}
	code, out := refresh("refresh-1")
	if code != 200 || out["refresh_token"] == "refresh-1" || out["access_token"] == "" {
		t.Fatalf("refresh: %d %v", code, out)
	}
	// The old refresh token was rotated away.
	if code, out := refresh("refresh-1"); code != 400 || out["message"] != "Invalid refresh token" {
		t.Fatalf("reuse of rotated refresh token: %d %v", code, out)
	}
	if code, _ := post(url.Values{"grant_type": {"refresh_token"}, "client_id": {f.ClientID()}, "client_secret": {"nope"}, "refresh_token": {"x"}}); code != 403 {
		t.Errorf("wrong secret: %d", code)
	}
	if f.RefreshCount() != 1 {
		t.Errorf("refresh count %d", f.RefreshCount())
	}
	v := url.Values{"grant_type": {"client_credentials"}}
	for k, x := range base {
		v[k] = x
	}
	code, app := post(v)
	if code != 200 || app["access_token"] == "" || app["refresh_token"] != nil {
		t.Fatalf("client credentials: %d %v", code, app)
	}
	validate := func(tok string) int {
		req, _ := http.NewRequest("GET", f.AuthBaseURL()+"/validate", nil)
		req.Header.Set("Authorization", "OAuth "+tok)
		resp, err := httpc(t).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if validate(out["access_token"].(string)) != 200 || validate(app["access_token"].(string)) != 200 || validate("bogus") != 401 {
		t.Error("validate answers wrong")
	}
	// Scripted answers pre-empt everything, then normal behaviour resumes.
	f.Script("GET", "/oauth2/validate", twitchtest.ErrorResponse(500, "x"))
	if validate(access) != 500 || validate(access) != 200 {
		t.Error("scripted response not applied exactly once")
	}
	reqs := f.RequestsTo("POST", "/oauth2/token")
	if len(reqs) != 4 || !bytes.Contains(reqs[0].Body, []byte("grant_type=refresh_token")) {
		t.Errorf("recorded token requests = %d", len(reqs))
	}
}

func TestHelixAuthChecks(t *testing.T) {
	f := newFake(t, twitchtest.Options{})
	for name, set := range map[string]func(*http.Request){
		"no token": func(r *http.Request) { r.Header.Set("Client-Id", f.ClientID()) },
		"unknown token": func(r *http.Request) {
			r.Header.Set("Client-Id", f.ClientID())
			r.Header.Set("Authorization", "Bearer nope")
		},
		"client id differs": func(r *http.Request) {
			r.Header.Set("Client-Id", "other")
			r.Header.Set("Authorization", "Bearer "+access)
		},
	} {
		req, _ := http.NewRequest("GET", f.APIBaseURL()+"/users?login=brat", nil)
		set(req)
		resp, err := httpc(t).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 401 {
			t.Errorf("%s: %d", name, resp.StatusCode)
		}
	}
	code, out := helix(t, f, "GET", "/users", "")
	if code != 200 || len(out["data"].([]any)) != 1 {
		t.Errorf("users without params returns the token's user: %d %v", code, out)
	}
}

func TestStandaloneAddrAndCloseTwice(t *testing.T) {
	f, err := twitchtest.New(twitchtest.Options{Addr: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(f.APIBaseURL(), "http://127.0.0.1:") || !strings.HasPrefix(f.EventSubWSURL(), "ws://127.0.0.1:") {
		t.Errorf("urls %s %s", f.APIBaseURL(), f.EventSubWSURL())
	}
	w := dial(t, f.EventSubWSURL())
	w.welcome()
	f.Close()
	f.Close()
	w.closeCode()
}
