package webhook_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"cloud.google.com/go/firestore"
	"cloud.google.com/go/pubsub/v2"
	"github.com/google/uuid"

	"github.com/bitbrat/twitch-edge/functions/webhook"
	"github.com/bitbrat/twitch-edge/shared/bus"
	"github.com/bitbrat/twitch-edge/shared/config"
	"github.com/bitbrat/twitch-edge/shared/emulators"
	"github.com/bitbrat/twitch-edge/shared/event"
	"github.com/bitbrat/twitch-edge/shared/logging/logtest"
	"github.com/bitbrat/twitch-edge/shared/store"
	"github.com/bitbrat/twitch-edge/shared/twitch/twitchtest"
)

// patience bounds every wait: long enough never to run out on a loaded machine, as
// each wait ends on a condition, not on the clock.
const patience = 60 * time.Second

const (
	secret      = "a-webhook-secret-of-some-length"
	broadcaster = "1001"
	bot         = "2002"
	userToken   = "access-1"
)

// harness is the function served over HTTP against the emulators: a raw topic with a
// pull subscription, the Firestore claims, and the HTTP server Twitch posts to.
type harness struct {
	t       *testing.T
	project string
	ps      *pubsub.Client
	fs      *firestore.Client
	pub     *bus.Publisher
	topic   string
	sub     string
	// ingressSub reads internal.ingress.v1 (status events).
	ingressSub string
	svc        *webhook.Service
	srv        *httptest.Server
	logs       *logtest.Buffer

	mu       sync.Mutex
	statuses []int // of every answered request, in order
}

type asyncPub struct{ p *bus.Publisher }

func (a asyncPub) PublishAsync(ctx context.Context, topic string, data []byte, attrs map[string]string) webhook.Pending {
	return a.p.PublishAsync(ctx, topic, data, attrs)
}

// recorder keeps the status of each answer.
type recorder struct {
	http.ResponseWriter
	status int
}

func (r *recorder) WriteHeader(code int) { r.status = code; r.ResponseWriter.WriteHeader(code) }
func (r *recorder) Write(b []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	return r.ResponseWriter.Write(b)
}

// newHarness serves the function with the Pub/Sub emulator at pubsubHost ("": the
// shared one).
func newHarness(t *testing.T, pubsubHost string) *harness {
	t.Helper()
	if pubsubHost == "" {
		pubsubHost = emulators.Host(emulators.PubSub)
	}
	ctx := context.Background()
	h := &harness{t: t, project: emulators.ProjectID(t), topic: event.TopicEventSubRaw, sub: "raw-check",
		ingressSub: "ingress-check", logs: &logtest.Buffer{}}
	var err error
	if h.ps, err = bus.NewClient(ctx, h.project, bus.WithEmulator(pubsubHost)); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = h.ps.Close() })
	if h.fs, err = store.NewClient(ctx, h.project, "", store.WithEmulator(emulators.Host(emulators.Firestore))); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = h.fs.Close() })
	if err := bus.EnsureTopics(ctx, h.ps, h.topic, event.TopicIngress); err != nil {
		t.Fatal(err)
	}
	if err := bus.EnsureSubscription(ctx, h.ps, bus.SubscriptionSpec{Name: h.sub, Topic: h.topic}); err != nil {
		t.Fatal(err)
	}
	if err := bus.EnsureSubscription(ctx, h.ps, bus.SubscriptionSpec{Name: h.ingressSub, Topic: event.TopicIngress}); err != nil {
		t.Fatal(err)
	}
	h.pub = bus.NewPublisher(h.ps, &bus.FunctionPublishSettings)
	t.Cleanup(h.pub.Close)
	h.svc = &webhook.Service{
		Secret:             config.Secret(secret),
		Pub:                asyncPub{h.pub},
		Claims:             store.NewWebhookMessages(h.fs, time.Hour, nil),
		Revocations:        store.NewConnectorState(h.fs, "eventsub", "test", nil),
		ConduitRevocations: store.NewConduitStore(h.fs, "twitch", nil),
		RawTopic:           h.topic,
		IngressTopic:       event.TopicIngress,
		// The emulator's first write in a new project can take seconds on a busy
		// machine; the production default (1.5 s) is for Firestore itself.
		StoreWait: patience,
		Owner:     "test",
		Now:       time.Now,
		Log:       slog.New(slog.NewJSONHandler(h.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	}
	h.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec := &recorder{ResponseWriter: w}
		h.svc.ServeHTTP(rec, r)
		if rec.status == 0 {
			rec.status = http.StatusOK
		}
		h.mu.Lock()
		h.statuses = append(h.statuses, rec.status)
		h.mu.Unlock()
	}))
	t.Cleanup(h.srv.Close)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("function logs:\n%s", h.logs.String())
		}
	})
	return h
}

func (h *harness) answered() []int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]int(nil), h.statuses...)
}

// signed builds a request as Twitch sends it.
func signed(url, sec, typ, id string, ts time.Time, body []byte) *http.Request {
	req, _ := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	stamp := ts.UTC().Format(time.RFC3339Nano)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(webhook.HeaderMessageID, id)
	req.Header.Set(webhook.HeaderMessageRetry, "0")
	req.Header.Set(webhook.HeaderMessageType, typ)
	req.Header.Set(webhook.HeaderMessageTimestamp, stamp)
	req.Header.Set(webhook.HeaderMessageSignature, twitchtest.WebhookSignature(sec, id, stamp, body))
	req.Header.Set(webhook.HeaderSubscriptionType, "channel.update")
	req.Header.Set(webhook.HeaderSubscriptionVersion, "2")
	return req
}

func notificationBody(title string) []byte {
	b, _ := json.Marshal(map[string]any{
		"subscription": map[string]any{"id": uuid.NewString(), "status": "enabled", "type": "channel.update", "version": "2",
			"condition": map[string]string{"broadcaster_user_id": broadcaster}, "transport": map[string]string{"method": "webhook", "callback": "https://example.test/cb"},
			"created_at": "2026-01-01T00:00:00Z", "cost": 0},
		"event": map[string]any{"broadcaster_user_id": broadcaster, "broadcaster_user_login": "brat", "broadcaster_user_name": "Brat",
			"title": title, "language": "en", "category_id": "1", "category_name": "Cat", "content_classification_labels": []string{}},
	})
	return b
}

func do(t *testing.T, req *http.Request) (int, http.Header, string) {
	t.Helper()
	c := &http.Client{Timeout: patience}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, string(b)
}

// collectUntilSentinel publishes a sentinel after everything the test did and
// returns what arrived before it: the messages the function published (every
// publish of the function is acknowledged before its request is answered).
func (h *harness) collectUntilSentinel(want int) []bus.Received {
	h.t.Helper()
	return h.collectOn(h.topic, h.sub, want)
}

// collectOn is collectUntilSentinel on another topic and its subscription. It stops
// once the sentinel and at least want messages have arrived (the emulator need not
// deliver in publish order), or more than want have.
func (h *harness) collectOn(topic, sub string, want int) []bus.Received {
	h.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), patience)
	defer cancel()
	out, err := bus.CollectUntilSentinel(ctx, h.pub, h.ps, topic, sub, want, patience)
	if err != nil {
		h.t.Fatal(err)
	}
	return out
}

// claimCount is how many message-id claims Firestore holds.
func (h *harness) claimCount() int {
	h.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), patience)
	defer cancel()
	snaps, err := h.fs.Collection(store.CollectionWebhookMessages).Documents(ctx).GetAll()
	if err != nil {
		h.t.Fatal(err)
	}
	return len(snaps)
}

// fake is the fake Twitch with the users the tests need.
func fake(t *testing.T, o twitchtest.Options) *twitchtest.Server {
	t.Helper()
	if o.SubscribeTimeout == 0 {
		o.SubscribeTimeout = patience
	}
	f, err := twitchtest.New(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(f.Close)
	f.AddUser(twitchtest.User{ID: broadcaster, Login: "brat", DisplayName: "Brat"})
	f.AddUser(twitchtest.User{ID: bot, Login: "bratbot"})
	f.AddModerator(broadcaster, bot)
	f.AddToken(twitchtest.Token{AccessToken: userToken, RefreshToken: "refresh-1", UserID: bot,
		Scopes: []string{"moderator:read:followers", "user:write:chat", "user:manage:whispers"}})
	return f
}

func appToken(t *testing.T, f *twitchtest.Server) string {
	t.Helper()
	resp, err := http.PostForm(f.AuthBaseURL()+"/token", url.Values{"grant_type": {"client_credentials"},
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

func helixAs(t *testing.T, f *twitchtest.Server, token, method, path, body string) (int, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest(method, f.APIBaseURL()+path, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Client-Id", f.ClientID())
	resp, err := (&http.Client{Timeout: patience}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&out)
	return resp.StatusCode, out
}

// webhookConduit creates a conduit of one webhook shard whose callback is the
// function, waits for the fake's verification to enable it, and subscribes
// channel.update of the broadcaster on it.
func webhookConduit(t *testing.T, f *twitchtest.Server, callback string) string {
	t.Helper()
	app := appToken(t, f)
	code, out := helixAs(t, f, app, "POST", "/eventsub/conduits", `{"shard_count":1}`)
	if code != http.StatusOK {
		t.Fatalf("create conduit: %d %v", code, out)
	}
	id := out["data"].([]any)[0].(map[string]any)["id"].(string)
	code, out = helixAs(t, f, app, "PATCH", "/eventsub/conduits/shards", fmt.Sprintf(
		`{"conduit_id":%q,"shards":[{"id":"0","transport":{"method":"webhook","callback":%q,"secret":%q}}]}`, id, callback, secret))
	if code != http.StatusAccepted || len(out["errors"].([]any)) != 0 {
		t.Fatalf("patch webhook shard: %d %v", code, out)
	}
	waitFor(t, f, "webhook shard verified", func() bool { return shardStatus(f, id) != twitchtest.ShardVerificationPending })
	if st := shardStatus(f, id); st != "enabled" {
		t.Fatalf("webhook shard status %s after verification, want enabled", st)
	}
	code, out = helixAs(t, f, app, "POST", "/eventsub/subscriptions", fmt.Sprintf(
		`{"type":"channel.update","version":"2","condition":{"broadcaster_user_id":%q},"transport":{"method":"conduit","conduit_id":%q}}`, broadcaster, id))
	if code != http.StatusAccepted {
		t.Fatalf("conduit subscription: %d %v", code, out)
	}
	return id
}

func shardStatus(f *twitchtest.Server, conduit string) string {
	shards, _ := f.Shards(conduit)
	if len(shards) == 0 {
		return ""
	}
	return shards[0].Status
}

func waitFor(t *testing.T, f *twitchtest.Server, what string, cond func() bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), patience)
	defer cancel()
	if err := f.Wait(ctx, cond); err != nil {
		t.Fatalf("waiting for %s: %v", what, err)
	}
}
