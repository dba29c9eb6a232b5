package twitchtest_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/bitbrat/twitch-edge/shared/twitch"
	"github.com/bitbrat/twitch-edge/shared/twitch/twitchtest"
)

// appToken gets an app access token from the fake's client-credentials grant.
func appToken(t *testing.T, f *twitchtest.Server) string {
	t.Helper()
	resp, err := httpc(t).PostForm(f.AuthBaseURL()+"/token", url.Values{"grant_type": {"client_credentials"},
		"client_id": {f.ClientID()}, "client_secret": {f.ClientSecret()}})
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out struct {
		AccessToken string `json:"access_token"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || out.AccessToken == "" {
		t.Fatalf("app token: %d %v", resp.StatusCode, err)
	}
	return out.AccessToken
}

// helixAs calls Helix with a given token.
func helixAs(t *testing.T, f *twitchtest.Server, token, method, path, body string) (int, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest(method, f.APIBaseURL()+path, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+token)
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

func createConduit(t *testing.T, f *twitchtest.Server, app string, shards int) string {
	t.Helper()
	code, out := helixAs(t, f, app, "POST", "/eventsub/conduits", fmt.Sprintf(`{"shard_count":%d}`, shards))
	if code != http.StatusOK {
		t.Fatalf("create conduit: %d %v", code, out)
	}
	return out["data"].([]any)[0].(map[string]any)["id"].(string)
}

func patchShard(t *testing.T, f *twitchtest.Server, app, conduit, shard, transport string) (int, map[string]any) {
	t.Helper()
	return helixAs(t, f, app, "PATCH", "/eventsub/conduits/shards",
		fmt.Sprintf(`{"conduit_id":%q,"shards":[{"id":%q,"transport":%s}]}`, conduit, shard, transport))
}

func wsShard(t *testing.T, f *twitchtest.Server, app, conduit, shard string) (*wsClient, string) {
	t.Helper()
	w := dial(t, f.EventSubWSURL())
	id := w.welcome()
	code, out := patchShard(t, f, app, conduit, shard, fmt.Sprintf(`{"method":"websocket","session_id":%q}`, id))
	if code != http.StatusAccepted || len(out["errors"].([]any)) != 0 {
		t.Fatalf("patch shard %s: %d %v", shard, code, out)
	}
	return w, id
}

func conduitSub(t *testing.T, f *twitchtest.Server, app, conduit, broadcaster string) string {
	t.Helper()
	code, out := helixAs(t, f, app, "POST", "/eventsub/subscriptions", fmt.Sprintf(
		`{"type":"channel.update","version":"2","condition":{"broadcaster_user_id":%q},"transport":{"method":"conduit","conduit_id":%q}}`, broadcaster, conduit))
	if code != http.StatusAccepted {
		t.Fatalf("conduit subscription: %d %v", code, out)
	}
	return out["data"].([]any)[0].(map[string]any)["id"].(string)
}

func shardStatus(f *twitchtest.Server, conduit, shard string) string {
	shards, _ := f.Shards(conduit)
	for _, s := range shards {
		if s.ID == shard {
			return s.Status
		}
	}
	return ""
}

func TestConduitEndpointsAndLimits(t *testing.T) {
	f := newFake(t, twitchtest.Options{PageSize: 2})
	app := appToken(t, f)
	for _, ep := range []struct{ method, path, body string }{
		{"GET", "/eventsub/conduits", ""}, {"POST", "/eventsub/conduits", `{"shard_count":1}`},
		{"PATCH", "/eventsub/conduits", `{"id":"x","shard_count":1}`}, {"DELETE", "/eventsub/conduits?id=x", ""},
		{"GET", "/eventsub/conduits/shards?conduit_id=x", ""}, {"PATCH", "/eventsub/conduits/shards", `{"conduit_id":"x","shards":[]}`},
	} {
		if code, _ := helixAs(t, f, access, ep.method, ep.path, ep.body); code != http.StatusUnauthorized {
			t.Errorf("%s %s with a user token: %d, want 401", ep.method, ep.path, code)
		}
	}
	for _, n := range []string{"0", "20001", "-1", `"3"`} {
		if code, _ := helixAs(t, f, app, "POST", "/eventsub/conduits", `{"shard_count":`+n+`}`); code != http.StatusBadRequest {
			t.Errorf("shard_count %s: %d, want 400", n, code)
		}
	}
	id := createConduit(t, f, app, 5)
	for i := 1; i < twitchtest.MaxConduitsPerClient; i++ {
		createConduit(t, f, app, 20000)
	}
	if code, out := helixAs(t, f, app, "POST", "/eventsub/conduits", `{"shard_count":1}`); code != http.StatusTooManyRequests {
		t.Errorf("6th conduit: %d %v", code, out)
	}
	if code, out := helixAs(t, f, app, "GET", "/eventsub/conduits", ""); code != 200 || len(out["data"].([]any)) != 5 {
		t.Errorf("get conduits: %d %v", code, out)
	}
	// Shard ids 0..4, paginated two at a time.
	var ids []string
	cursor := ""
	for page := 0; page < 10; page++ {
		q := "/eventsub/conduits/shards?conduit_id=" + id
		if cursor != "" {
			q += "&after=" + cursor
		}
		code, out := helixAs(t, f, app, "GET", q, "")
		if code != 200 {
			t.Fatalf("get shards: %d %v", code, out)
		}
		for _, s := range out["data"].([]any) {
			ids = append(ids, s.(map[string]any)["id"].(string))
		}
		cursor, _ = out["pagination"].(map[string]any)["cursor"].(string)
		if cursor == "" {
			break
		}
	}
	if fmt.Sprint(ids) != "[0 1 2 3 4]" {
		t.Errorf("shard ids = %v", ids)
	}
	// Lowering the count takes the shards above it away; the enabled-status filter
	// finds the one PATCHed shard.
	wsShard(t, f, app, id, "1")
	if code, out := helixAs(t, f, app, "PATCH", "/eventsub/conduits", fmt.Sprintf(`{"id":%q,"shard_count":2}`, id)); code != 200 ||
		out["data"].([]any)[0].(map[string]any)["shard_count"].(float64) != 2 {
		t.Errorf("update conduit: %d %v", code, out)
	}
	if shards, _ := f.Shards(id); len(shards) != 2 {
		t.Errorf("shards after lowering = %v", shards)
	}
	code, out := helixAs(t, f, app, "GET", "/eventsub/conduits/shards?status=enabled&conduit_id="+id, "")
	if data := out["data"].([]any); code != 200 || len(data) != 1 || data[0].(map[string]any)["id"] != "1" {
		t.Errorf("enabled shards: %d %v", code, out)
	}
	if code, _ := helixAs(t, f, app, "PATCH", "/eventsub/conduits", `{"id":"nope","shard_count":2}`); code != http.StatusNotFound {
		t.Errorf("update unknown conduit: %d", code)
	}
	// Delete takes the conduit's subscriptions with it.
	sub := conduitSub(t, f, app, id, broadcaster)
	if code, _ := helixAs(t, f, app, "DELETE", "/eventsub/conduits?id="+id, ""); code != http.StatusNoContent {
		t.Errorf("delete conduit: %d", code)
	}
	if subStatus(f, sub) != "" {
		t.Error("conduit subscription survived its conduit")
	}
	if code, _ := helixAs(t, f, app, "DELETE", "/eventsub/conduits?id="+id, ""); code != http.StatusNotFound {
		t.Errorf("delete twice: %d", code)
	}
}

func TestShardPatchPerShardErrors(t *testing.T) {
	f := newFake(t, twitchtest.Options{})
	app := appToken(t, f)
	id := createConduit(t, f, app, 2)
	w := dial(t, f.EventSubWSURL())
	session := w.welcome()
	body := fmt.Sprintf(`{"conduit_id":%q,"shards":[
		{"id":"0","transport":{"method":"websocket","session_id":%q}},
		{"id":"7","transport":{"method":"websocket","session_id":%q}},
		{"id":"1","transport":{"method":"websocket","session_id":"gone"}},
		{"id":"1","transport":{"method":"webhook","callback":"http://127.0.0.1:1/cb","secret":"short"}},
		{"id":"1","transport":{"method":"carrier-pigeon"}}]}`, id, session, session)
	code, out := helixAs(t, f, app, "PATCH", "/eventsub/conduits/shards", body)
	if code != http.StatusAccepted {
		t.Fatalf("patch: %d %v", code, out)
	}
	data, errs := out["data"].([]any), out["errors"].([]any)
	if len(data) != 1 || data[0].(map[string]any)["id"] != "0" || len(errs) != 4 {
		t.Fatalf("data %v errors %v", data, errs)
	}
	for i, want := range []string{"7", "1", "1", "1"} {
		e := errs[i].(map[string]any)
		if e["id"] != want || e["message"] == "" || e["code"] == "" {
			t.Errorf("error %d = %v", i, e)
		}
	}
	if code, _ := patchShard(t, f, app, "nope", "0", `{"method":"websocket","session_id":"x"}`); code != http.StatusNotFound {
		t.Errorf("unknown conduit: %d", code)
	}
}

func TestShardSocketNotPatchedCloses4003(t *testing.T) {
	f := newFake(t, twitchtest.Options{SubscribeTimeout: 50 * time.Millisecond})
	app := appToken(t, f)
	id := createConduit(t, f, app, 1)
	idle := dial(t, f.EventSubWSURL())
	session := idle.welcome()
	if code := idle.closeCode(); code != 4003 {
		t.Fatalf("unpatched socket close code %d, want 4003", code)
	}
	// Too late now: the session is gone.
	code, out := patchShard(t, f, app, id, "0", fmt.Sprintf(`{"method":"websocket","session_id":%q}`, session))
	if errs := out["errors"].([]any); code != http.StatusAccepted || len(errs) != 1 {
		t.Fatalf("late patch: %d %v", code, out)
	}

	// A PATCHed session counts as used (the window is long here, so only the
	// assignment can be what keeps it).
	g := newFake(t, twitchtest.Options{})
	app = appToken(t, g)
	id = createConduit(t, g, app, 1)
	patched, sid := wsShard(t, g, app, id, "0")
	if ss := g.Sessions(); len(ss) != 1 || ss[0].ID != sid || ss[0].Shard != id+"/0" {
		t.Fatalf("sessions = %+v", ss)
	}
	conduitSub(t, g, app, id, broadcaster)
	if _, err := g.Notify(twitchtest.Notification{Type: "channel.update", Event: map[string]any{"title": "x"}}); err != nil {
		t.Fatal(err)
	}
	patched.next(twitch.MessageTypeNotification)
}

func TestShardStatusFollowsSocketAndShardDisabledNotification(t *testing.T) {
	f := newFake(t, twitchtest.Options{})
	app := appToken(t, f)
	id := createConduit(t, f, app, 2)
	w0, _ := wsShard(t, f, app, id, "0")
	w1, _ := wsShard(t, f, app, id, "1")
	code, out := helixAs(t, f, app, "POST", "/eventsub/subscriptions", fmt.Sprintf(
		`{"type":"conduit.shard.disabled","version":"1","condition":{"client_id":%q,"conduit_id":%q},"transport":{"method":"conduit","conduit_id":%q}}`,
		f.ClientID(), id, id))
	if code != http.StatusAccepted {
		t.Fatalf("conduit.shard.disabled subscription: %d %v", code, out)
	}
	sessions := f.Sessions()
	var s0 string
	for _, sh := range f.Conduits()[0].Shards {
		if sh.ID == "0" {
			s0 = sh.SessionID
		}
	}
	if len(sessions) != 2 || s0 == "" {
		t.Fatalf("sessions %v", sessions)
	}
	if err := f.CloseSession(s0, 4002, "failed ping pong"); err != nil {
		t.Fatal(err)
	}
	if code := w0.closeCode(); code != 4002 {
		t.Fatalf("close code %d", code)
	}
	if st := shardStatus(f, id, "0"); st != "websocket_failed_ping_pong" {
		t.Errorf("shard 0 status %s", st)
	}
	// The notification lands on the shard that is still up.
	m := w1.next(twitch.MessageTypeNotification)
	var p struct {
		Event map[string]any `json:"event"`
	}
	if err := json.Unmarshal(m.Payload, &p); err != nil || m.Metadata.SubscriptionType != "conduit.shard.disabled" ||
		p.Event["shard_id"] != "0" || p.Event["status"] != "websocket_failed_ping_pong" || p.Event["conduit_id"] != id {
		t.Fatalf("shard disabled notification %s %v", m.Payload, err)
	}
	// A user token cannot subscribe to it, nor to anything on a conduit.
	if code, _ := helixAs(t, f, access, "POST", "/eventsub/subscriptions", fmt.Sprintf(
		`{"type":"conduit.shard.disabled","version":"1","condition":{"client_id":%q},"transport":{"method":"websocket","session_id":"x"}}`, f.ClientID())); code != http.StatusUnauthorized {
		t.Errorf("conduit.shard.disabled with a user token: %d, want 401", code)
	}
	if code, _ := helixAs(t, f, access, "POST", "/eventsub/subscriptions", fmt.Sprintf(
		`{"type":"channel.update","version":"2","condition":{"broadcaster_user_id":%q},"transport":{"method":"conduit","conduit_id":%q}}`, broadcaster, id)); code != http.StatusUnauthorized {
		t.Errorf("conduit subscription with a user token: %d, want 401", code)
	}
}

func TestShardKeptAcrossSessionReconnect(t *testing.T) {
	f := newFake(t, twitchtest.Options{ReconnectGrace: time.Hour})
	app := appToken(t, f)
	id := createConduit(t, f, app, 1)
	old, oldID := wsShard(t, f, app, id, "0")
	conduitSub(t, f, app, id, broadcaster)
	u, err := f.Reconnect(oldID)
	if err != nil {
		t.Fatal(err)
	}
	old.next(twitch.MessageTypeReconnect)
	nw := dial(t, u)
	newID := nw.welcome()
	if err := f.EndReconnectGrace(oldID); err != nil {
		t.Fatal(err)
	}
	if code := old.closeCode(); code != websocket.StatusNormalClosure {
		t.Fatalf("old socket close %d", code)
	}
	shards, _ := f.Shards(id)
	if shards[0].Status != "enabled" || shards[0].SessionID != newID {
		t.Fatalf("shard after reconnect = %+v", shards[0])
	}
	if _, err := f.Notify(twitchtest.Notification{Type: "channel.update", Event: map[string]any{}}); err != nil {
		t.Fatal(err)
	}
	nw.next(twitch.MessageTypeNotification)
}

// receiver is a webhook callback that checks Twitch's signature, answers the
// challenge, and fails notifications while failing is set.
type receiver struct {
	t       *testing.T
	secret  string
	mu      sync.Mutex
	failing bool
	badEcho bool
	got     []http.Header
	srv     *httptest.Server
}

func newReceiver(t *testing.T, secret string) *receiver {
	r := &receiver{t: t, secret: secret}
	r.srv = httptest.NewServer(http.HandlerFunc(r.serve))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *receiver) serve(w http.ResponseWriter, req *http.Request) {
	body, _ := io.ReadAll(req.Body)
	h := req.Header
	if want := twitchtest.WebhookSignature(r.secret, h.Get(twitchtest.HeaderMessageID), h.Get(twitchtest.HeaderMessageTimestamp), body); h.Get(twitchtest.HeaderMessageSignature) != want {
		r.t.Errorf("bad signature on %s", h.Get(twitchtest.HeaderMessageType))
		w.WriteHeader(http.StatusForbidden)
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.got = append(r.got, h.Clone())
	switch h.Get(twitchtest.HeaderMessageType) {
	case "webhook_callback_verification":
		var v struct {
			Challenge string `json:"challenge"`
		}
		_ = json.Unmarshal(body, &v)
		w.Header().Set("Content-Type", "text/plain")
		if r.badEcho {
			v.Challenge = "not-it"
		}
		_, _ = io.WriteString(w, v.Challenge)
	case "notification":
		if r.failing {
			w.WriteHeader(http.StatusInternalServerError)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}
}

func (r *receiver) headers() []http.Header {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]http.Header(nil), r.got...)
}

func TestWebhookShardVerificationSignatureAndFailures(t *testing.T) {
	f := newFake(t, twitchtest.Options{WebhookRetries: 2, WebhookFailureLimit: 2})
	app := appToken(t, f)
	id := createConduit(t, f, app, 2)
	const secret = "s3cret-of-twenty-chars"
	good, bad := newReceiver(t, secret), newReceiver(t, secret)
	bad.badEcho = true
	patch := func(shard, cb string) {
		t.Helper()
		code, out := patchShard(t, f, app, id, shard, fmt.Sprintf(`{"method":"webhook","callback":%q,"secret":%q}`, cb, secret))
		if code != http.StatusAccepted || len(out["errors"].([]any)) != 0 {
			t.Fatalf("patch webhook: %d %v", code, out)
		}
	}
	patch("0", good.srv.URL)
	patch("1", bad.srv.URL)
	waitFor(t, f, "shard 0 verified", func() bool { return shardStatus(f, id, "0") == "enabled" })
	waitFor(t, f, "shard 1 verification failed", func() bool { return shardStatus(f, id, "1") == "webhook_callback_verification_failed" })

	// Every broadcaster's notifications go to shard 0 (shard 1 is disabled and a
	// disabled target is retried on the other shard).
	conduitSub(t, f, app, id, broadcaster)
	ids, err := f.Notify(twitchtest.Notification{Type: "channel.update", Event: map[string]any{}})
	if err != nil {
		t.Fatal(err)
	}
	h := good.headers()
	last := h[len(h)-1]
	if last.Get(twitchtest.HeaderMessageType) != "notification" || last.Get(twitchtest.HeaderMessageID) != ids[0] ||
		last.Get(twitchtest.HeaderSubscriptionType) != "channel.update" || last.Get(twitchtest.HeaderSubscriptionVersion) != "2" ||
		last.Get(twitchtest.HeaderMessageRetry) != "0" {
		t.Errorf("notification headers %v", last)
	}
	// A failing callback is retried on itself (same message id, Retry counting up),
	// then the notification is lost; two lost in a row disable the shard.
	good.mu.Lock()
	good.failing = true
	good.mu.Unlock()
	before := len(good.headers())
	for i := 0; i < 2; i++ {
		if _, err := f.Notify(twitchtest.Notification{Type: "channel.update", Event: map[string]any{}}); err != nil {
			t.Fatal(err)
		}
	}
	h = good.headers()[before:]
	if len(h) != 6 || h[0].Get(twitchtest.HeaderMessageID) != h[2].Get(twitchtest.HeaderMessageID) || h[2].Get(twitchtest.HeaderMessageRetry) != "2" {
		t.Errorf("retries on the same callback: %d attempts", len(h))
	}
	if st := shardStatus(f, id, "0"); st != "notification_failures_exceeded" {
		t.Errorf("shard 0 status %s", st)
	}
	if lost := f.LostNotifications(); len(lost) != 2 || lost[0].DeliveredTo != "" {
		t.Errorf("lost = %+v", lost)
	}
}

func TestConduitSubscriptionCost(t *testing.T) {
	f := newFake(t, twitchtest.Options{MaxConduitCost: 2})
	app := appToken(t, f)
	id := createConduit(t, f, app, 1)
	for _, u := range []string{"5001", "5002", "5003"} {
		f.AddUser(twitchtest.User{ID: u, Login: "user" + u})
	}
	// 2002 (the bot) holds a user token: it authorized the app, so costs nothing.
	cost := func(b string) (int, any) {
		code, out := helixAs(t, f, app, "POST", "/eventsub/subscriptions", fmt.Sprintf(
			`{"type":"channel.update","version":"2","condition":{"broadcaster_user_id":%q},"transport":{"method":"conduit","conduit_id":%q}}`, b, id))
		if code != http.StatusAccepted {
			return code, out["message"]
		}
		return code, out["data"].([]any)[0].(map[string]any)["cost"]
	}
	for _, c := range []struct {
		b    string
		code int
		cost any
	}{{bot, 202, 0.0}, {"5001", 202, 1.0}, {"5002", 202, 1.0}, {"5003", 429, twitchtest.MsgTotalCost}} {
		if code, got := cost(c.b); code != c.code || got != c.cost {
			t.Errorf("broadcaster %s: %d %v, want %d %v", c.b, code, got, c.code, c.cost)
		}
	}
}

func TestConduitWithEveryShardDisabledIsDeleted(t *testing.T) {
	f := newFake(t, twitchtest.Options{ConduitDeleteAfter: 20 * time.Millisecond})
	app := appToken(t, f)
	// AddConduit starts no deletion clock, so the shard is enabled before any could
	// run out; the created conduit's shards are never assigned.
	const live = "live-conduit"
	f.AddConduit(live)
	wsShard(t, f, app, live, "0")
	doomed := createConduit(t, f, app, 2)
	sub := conduitSub(t, f, app, doomed, broadcaster)
	waitFor(t, f, "doomed conduit deleted", func() bool { _, err := f.Shards(doomed); return err != nil })
	if subStatus(f, sub) != "" {
		t.Error("subscription of the deleted conduit survived")
	}
	if _, err := f.Shards(live); err != nil {
		t.Error("conduit with an enabled shard was deleted")
	}
}
