package webhook_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/google/uuid"

	"github.com/bitbrat/twitch-edge/functions/normalize"
	"github.com/bitbrat/twitch-edge/functions/webhook"
	"github.com/bitbrat/twitch-edge/shared/event"
	"github.com/bitbrat/twitch-edge/shared/store"
	"github.com/bitbrat/twitch-edge/shared/twitch"
	"github.com/bitbrat/twitch-edge/shared/twitch/twitchtest"
)

func TestVerificationAnsweredExactly(t *testing.T) {
	h := newHarness(t, "")
	// The fake Twitch enables a webhook shard only when the callback answers its
	// signed webhook_callback_verification with 200 and the challenge as the body.
	f := fake(t, twitchtest.Options{})
	webhookConduit(t, f, h.srv.URL)

	body := []byte(`{"challenge":"pogchamp-kappa-360noscope-vohiyo","subscription":{"id":"x","status":"webhook_callback_verification_pending","type":"channel.update","version":"2"}}`)
	code, hdr, got := do(t, signed(h.srv.URL, secret, webhook.TypeVerification, uuid.NewString(), time.Now(), body))
	if code != http.StatusOK || got != "pogchamp-kappa-360noscope-vohiyo" || hdr.Get("Content-Type") != "text/plain" {
		t.Fatalf("verification answered %d %q (Content-Type %q)", code, got, hdr.Get("Content-Type"))
	}
	// A verification signed with another secret is not answered with the challenge.
	code, _, got = do(t, signed(h.srv.URL, "not-the-secret-at-all", webhook.TypeVerification, uuid.NewString(), time.Now(), body))
	if code != http.StatusForbidden || strings.Contains(got, "pogchamp") {
		t.Fatalf("badly signed verification answered %d %q", code, got)
	}
	if n := h.claimCount(); n != 0 {
		t.Errorf("verification wrote %d claims", n)
	}
}

// wsFrames dials the fake's EventSub WebSocket, subscribes channel.update of the
// broadcaster with the bot's user token, and returns the notification frames that
// arrive, as the connector would forward them.
func wsFrames(t *testing.T, f *twitchtest.Server) <-chan []byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), patience)
	defer cancel()
	c, _, err := websocket.Dial(ctx, f.EventSubWSURL(), nil)
	if err != nil {
		t.Fatal(err)
	}
	c.SetReadLimit(1 << 20)
	t.Cleanup(func() { _ = c.CloseNow() })
	_, b, err := c.Read(ctx)
	if err != nil {
		t.Fatal(err)
	}
	m, err := twitch.DecodeMessage(b)
	if err != nil {
		t.Fatal(err)
	}
	s, err := m.Session()
	if err != nil {
		t.Fatal(err)
	}
	code, out := helixAs(t, f, userToken, "POST", "/eventsub/subscriptions", fmt.Sprintf(
		`{"type":"channel.update","version":"2","condition":{"broadcaster_user_id":%q},"transport":{"method":"websocket","session_id":%q}}`, broadcaster, s.ID))
	if code != http.StatusAccepted {
		t.Fatalf("websocket subscription: %d %v", code, out)
	}
	frames := make(chan []byte, 2000)
	go func() {
		defer close(frames)
		for {
			_, b, err := c.Read(context.Background())
			if err != nil {
				return
			}
			if md, err := twitch.ParseMetadata(b); err == nil && md.MessageType == twitch.MessageTypeNotification {
				frames <- b
			}
		}
	}()
	return frames
}

// The same 1,000 notifications, delivered once through a conduit's webhook shard
// (to the function, then the raw topic) and once on a WebSocket (as the connector
// forwards it), normalize to the same events, field by field.
func TestThousandNotificationsMatchTheWebSocketPath(t *testing.T) {
	const n = 1000
	h := newHarness(t, "")
	f := fake(t, twitchtest.Options{})
	webhookConduit(t, f, h.srv.URL)
	frames := wsFrames(t, f)

	sent := map[string]bool{}
	for i := 0; i < n; i++ {
		id := uuid.NewString()
		ids, err := f.Notify(twitchtest.Notification{Type: "channel.update", MessageID: id, Timestamp: time.Now(),
			Event: f.UpdateEvent(broadcaster, fmt.Sprintf("stream %d", i), "en", "509658", "Just Chatting", nil)})
		if err != nil || len(ids) != 2 {
			t.Fatalf("notify %d: %v %v (want the WebSocket and the conduit subscription)", i, ids, err)
		}
		sent[id] = true
	}
	if lost := f.LostNotifications(); len(lost) != 0 {
		t.Fatalf("%d notifications not taken by the webhook shard, first %+v", len(lost), lost[0])
	}
	raw := h.collectUntilSentinel(n)
	if len(raw) != n {
		t.Fatalf("%d messages on the raw topic, want %d", len(raw), n)
	}
	ws := map[string][]byte{}
	for len(ws) < n {
		select {
		case b, ok := <-frames:
			if !ok {
				t.Fatalf("socket closed after %d frames", len(ws))
			}
			md, _ := twitch.ParseMetadata(b)
			ws[md.MessageID] = b
		case <-time.After(patience):
			t.Fatalf("%d of %d WebSocket frames", len(ws), n)
		}
	}
	b := &normalize.Builder{Normalizers: normalize.Registry()}
	seen := map[string]bool{}
	for _, m := range raw {
		id := m.Attributes[event.AttrEventSubMessageID]
		if !sent[id] || seen[id] {
			t.Fatalf("raw message for %q: sent %v, seen before %v", id, sent[id], seen[id])
		}
		seen[id] = true
		wsFrame := ws[id]
		md, err := twitch.ParseFrameHeader(wsFrame)
		if err != nil {
			t.Fatal(err)
		}
		wantAttrs := map[string]string{
			event.AttrEventSubMessageID: id, event.AttrEventSubMessageType: "notification",
			event.AttrEventSubSubscriptionType: "channel.update", event.AttrEventSubSubscriptionVersion: "2",
			event.AttrEventSubMessageTimestamp: md.MessageTimestamp.UTC().Format(time.RFC3339Nano),
			event.AttrEventSubBroadcasterID:    broadcaster,
		}
		if !reflect.DeepEqual(m.Attributes, wantAttrs) {
			t.Fatalf("attributes %v, want %v", m.Attributes, wantAttrs)
		}
		fromHook, err := b.Build(m.Data)
		if err != nil {
			t.Fatalf("normalize the webhook's frame: %v\n%s", err, m.Data)
		}
		fromWS, err := b.Build(wsFrame)
		if err != nil {
			t.Fatalf("normalize the WebSocket frame: %v", err)
		}
		gh, _ := json.Marshal(fromHook)
		gw, _ := json.Marshal(fromWS)
		var a, c any
		_ = json.Unmarshal(gh, &a)
		_ = json.Unmarshal(gw, &c)
		if !reflect.DeepEqual(a, c) {
			t.Fatalf("events differ for %s\nwebhook:   %s\nwebsocket: %s", id, gh, gw)
		}
	}
	if n := h.claimCount(); n != 1000 {
		t.Errorf("%d claims, want one per message", n)
	}
}

// Every kind of bad request is refused with a 4xx and leaves nothing behind: no
// message on the raw topic, no Firestore document.
func TestBadRequestsRefusedNothingPublished(t *testing.T) {
	h := newHarness(t, "")
	now := time.Now()
	body := notificationBody("hello")
	good := func() *http.Request {
		return signed(h.srv.URL, secret, webhook.TypeNotification, uuid.NewString(), now, body)
	}
	without := func(header string) func() *http.Request {
		return func() *http.Request { r := good(); r.Header.Del(header); return r }
	}
	cases := []struct {
		name string
		req  func() *http.Request
		want int
	}{
		{"wrong secret", func() *http.Request {
			return signed(h.srv.URL, "another-secret-entirely", webhook.TypeNotification, uuid.NewString(), now, body)
		}, http.StatusForbidden},
		{"stale timestamp", func() *http.Request {
			return signed(h.srv.URL, secret, webhook.TypeNotification, uuid.NewString(), now.Add(-11*time.Minute), body)
		}, http.StatusForbidden},
		{"timestamp in the future", func() *http.Request {
			return signed(h.srv.URL, secret, webhook.TypeNotification, uuid.NewString(), now.Add(5*time.Minute), body)
		}, http.StatusForbidden},
		{"body changed after signing", func() *http.Request {
			r := good()
			r.Body, r.ContentLength = ioNop(bytes.Replace(body, []byte("hello"), []byte("HELLO"), 1))
			return r
		}, http.StatusForbidden},
		{"signature not sha256=", func() *http.Request {
			r := good()
			r.Header.Set(webhook.HeaderMessageSignature, strings.TrimPrefix(r.Header.Get(webhook.HeaderMessageSignature), "sha256="))
			return r
		}, http.StatusForbidden},
		{"2 MB body", func() *http.Request {
			big := bytes.Repeat([]byte(" "), 2<<20)
			return signed(h.srv.URL, secret, webhook.TypeNotification, uuid.NewString(), now, append(append([]byte{}, body...), big...))
		}, http.StatusRequestEntityTooLarge},
		{"2 MB body, chunked (no length)", func() *http.Request {
			big := bytes.Repeat([]byte(" "), 2<<20)
			r := signed(h.srv.URL, secret, webhook.TypeNotification, uuid.NewString(), now, append(append([]byte{}, body...), big...))
			r.ContentLength = -1
			r.Body = io.NopCloser(r.Body)
			return r
		}, http.StatusRequestEntityTooLarge},
		{"missing signature", without(webhook.HeaderMessageSignature), http.StatusForbidden},
		{"missing message id", without(webhook.HeaderMessageID), http.StatusForbidden},
		{"missing timestamp", without(webhook.HeaderMessageTimestamp), http.StatusForbidden},
		{"missing message type", without(webhook.HeaderMessageType), http.StatusBadRequest},
		{"missing subscription type", without(webhook.HeaderSubscriptionType), http.StatusBadRequest},
		{"missing subscription version", without(webhook.HeaderSubscriptionVersion), http.StatusBadRequest},
		{"GET", func() *http.Request { r := good(); r.Method = http.MethodGet; return r }, http.StatusMethodNotAllowed},
		{"form content type", func() *http.Request {
			r := good()
			r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			return r
		}, http.StatusUnsupportedMediaType},
		{"signed body that is not JSON", func() *http.Request {
			return signed(h.srv.URL, secret, webhook.TypeNotification, uuid.NewString(), now, []byte("not json"))
		}, http.StatusBadRequest},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			code, _, _ := do(t, tc.req())
			if code != tc.want {
				t.Fatalf("answered %d, want %d", code, tc.want)
			}
		})
	}
	// A truncated body: the request promises more bytes than it sends, then the
	// connection ends.
	t.Run("truncated body", func(t *testing.T) {
		r := good()
		conn, err := net.Dial("tcp", strings.TrimPrefix(h.srv.URL, "http://"))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		var head bytes.Buffer
		fmt.Fprintf(&head, "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n", len(body))
		for k, v := range r.Header {
			fmt.Fprintf(&head, "%s: %s\r\n", k, v[0])
		}
		head.WriteString("\r\n")
		head.Write(body[:len(body)/2])
		if _, err := conn.Write(head.Bytes()); err != nil {
			t.Fatal(err)
		}
		_ = conn.(*net.TCPConn).CloseWrite()
		waitAnswered(t, h, len(cases)+1)
		if st := h.answered(); st[len(st)-1] != http.StatusBadRequest {
			t.Fatalf("truncated body answered %d, want 400", st[len(st)-1])
		}
	})
	if got := h.collectUntilSentinel(0); len(got) != 0 {
		t.Fatalf("%d messages published for refused requests", len(got))
	}
	if n := h.claimCount(); n != 0 {
		t.Fatalf("%d claims written for refused requests", n)
	}
	logs := h.logs.String()
	for _, want := range []string{"signature does not match", "old, limit 10m0s", "body over the limit", "over the limit of 1048576", "no Twitch-Eventsub-Message-Signature header", "content type", "truncated"} {
		if !strings.Contains(logs, want) {
			t.Errorf("no refusal logged with %q", want)
		}
	}
	if strings.Contains(logs, secret) {
		t.Error("the secret appears in the logs")
	}
}

func waitAnswered(t *testing.T, h *harness, n int) {
	t.Helper()
	deadline := time.Now().Add(patience)
	for len(h.answered()) < n {
		if time.Now().After(deadline) {
			t.Fatalf("%d requests answered, want %d", len(h.answered()), n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

type nopCloser struct{ *bytes.Reader }

func (nopCloser) Close() error { return nil }

func ioNop(b []byte) (nopCloser, int64) { return nopCloser{bytes.NewReader(b)}, int64(len(b)) }

// A replayed message id (Twitch's retry of a notification already taken, or an
// attacker's replay within the window) is acknowledged without publishing again.
func TestReplayAcknowledgedNotRepublished(t *testing.T) {
	h := newHarness(t, "")
	id, now, body := uuid.NewString(), time.Now(), notificationBody("once")
	for i := 0; i < 3; i++ {
		if code, _, _ := do(t, signed(h.srv.URL, secret, webhook.TypeNotification, id, now, body)); code != http.StatusNoContent {
			t.Fatalf("delivery %d answered %d", i, code)
		}
	}
	got := h.collectUntilSentinel(1)
	if len(got) != 1 || got[0].Attributes[event.AttrEventSubMessageID] != id {
		t.Fatalf("%d messages on the raw topic for 3 deliveries of one message id", len(got))
	}
	if !strings.Contains(h.logs.String(), "duplicate notification, already published") {
		t.Error("duplicate not logged")
	}
}

// A revocation is recorded as the connector records one read on the WebSocket; a
// conduit subscription revoked for good also in the conduit reconciler's record; and
// every revocation is a connector.status.changed event on internal.ingress.v1.
func TestRevocationRecorded(t *testing.T) {
	h := newHarness(t, "")
	ctx, cancel := context.WithTimeout(context.Background(), patience)
	defer cancel()
	cases := []struct {
		name, id, typ, reason, transport string
		condition                        map[string]string
		conduitRecord                    bool
	}{
		{"conduit, authorization revoked", "sub-1", "channel.follow", "authorization_revoked", `{"method":"conduit","conduit_id":"c-1"}`,
			map[string]string{"broadcaster_user_id": "1001", "moderator_user_id": "2002"}, true},
		{"conduit, user removed", "sub-2", "channel.update", "user_removed", `{"method":"conduit","conduit_id":"c-1"}`,
			map[string]string{"broadcaster_user_id": "1003"}, true},
		{"conduit deleted: not final, the reconciler recreates it", "sub-3", "channel.update", "conduit_deleted",
			`{"method":"conduit","conduit_id":"c-1"}`, map[string]string{"broadcaster_user_id": "1004"}, false},
		{"webhook subscription", "sub-4", "channel.update", "version_removed", `{"method":"webhook","callback":"https://example.test/cb"}`,
			map[string]string{"broadcaster_user_id": "1005"}, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cond, _ := json.Marshal(tc.condition)
			body := []byte(fmt.Sprintf(`{"subscription":{"id":%q,"status":%q,"type":%q,"version":"2","condition":%s,"transport":%s,
				"created_at":"2026-01-01T00:00:00Z","cost":0}}`, tc.id, tc.reason, tc.typ, cond, tc.transport))
			r := signed(h.srv.URL, secret, webhook.TypeRevocation, uuid.NewString(), time.Now(), body)
			r.Header.Set(webhook.HeaderSubscriptionType, tc.typ)
			if code, _, _ := do(t, r); code != http.StatusNoContent {
				t.Fatalf("revocation answered %d", code)
			}
			key := webhook.SubscriptionKey(tc.typ, "2", tc.condition)
			snap, err := h.fs.Collection("connector").Doc("eventsub").Collection("subscriptions").Doc(key).Get(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if d := snap.Data(); d["status"] != tc.reason || d["id"] != tc.id || d["type"] != tc.typ {
				t.Fatalf("revocation record %v", d)
			}
			revs, err := store.NewConduitStore(h.fs, "twitch", nil).Revocations(ctx)
			if err != nil {
				t.Fatal(err)
			}
			rv, ok := revs[key]
			if ok != tc.conduitRecord || (ok && (rv.Reason != tc.reason || rv.Type != tc.typ || rv.RevokedAt.IsZero())) {
				t.Fatalf("conduit revocation record %+v (present %v), want present %v", rv, ok, tc.conduitRecord)
			}
		})
	}
	if got := h.collectUntilSentinel(0); len(got) != 0 {
		t.Fatalf("a revocation published %d messages on the raw topic", len(got))
	}
	got := h.collectOn(event.TopicIngress, h.ingressSub, len(cases))
	if len(got) != len(cases) {
		t.Fatalf("%d status events on internal.ingress.v1, want %d", len(got), len(cases))
	}
	byID := map[string]event.ConnectorStatus{}
	for _, m := range got {
		if !maps.Equal(m.Attributes, event.StatusAttributes()) {
			t.Fatalf("status event attributes %v, want %v", m.Attributes, event.StatusAttributes())
		}
		var st event.ConnectorStatus
		if err := json.Unmarshal(m.Data, &st); err != nil {
			t.Fatal(err)
		}
		byID[st.SubscriptionID] = st
	}
	for _, tc := range cases {
		st := byID[tc.id]
		if st.Type != event.TypeConnectorStatusChanged || st.Connector != "twitch" || st.PreviousState != event.StateConnected ||
			st.CurrentState != event.StateError || st.Subject != "subscription" || st.Reason != tc.reason ||
			st.SubscriptionType != tc.typ || st.BroadcasterID != tc.condition["broadcaster_user_id"] || st.InstanceID != "test" {
			t.Errorf("%s: status event %+v", tc.name, st)
		}
		if _, err := time.Parse(time.RFC3339Nano, st.Timestamp); err != nil {
			t.Errorf("%s: timestamp %q: %v", tc.name, st.Timestamp, err)
		}
	}
	if !strings.Contains(h.logs.String(), "webhook: subscription revoked") {
		t.Error("revocation not logged")
	}
}
