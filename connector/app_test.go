package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"

	"cloud.google.com/go/firestore"
	"cloud.google.com/go/pubsub/v2"

	"github.com/bitbrat/twitch-edge/connector/conduit"
	"github.com/bitbrat/twitch-edge/shared/bus"
	"github.com/bitbrat/twitch-edge/shared/config"
	"github.com/bitbrat/twitch-edge/shared/emulators"
	"github.com/bitbrat/twitch-edge/shared/logging"
	"github.com/bitbrat/twitch-edge/shared/logging/logtest"
	"github.com/bitbrat/twitch-edge/shared/store"
	"github.com/bitbrat/twitch-edge/shared/telemetry"
	"github.com/bitbrat/twitch-edge/shared/twitch"
	"github.com/bitbrat/twitch-edge/shared/twitch/twitchtest"
)

func TestMain(m *testing.M) {
	code := emulators.RunTests(m, emulators.PubSub, emulators.Firestore)
	if code == 0 {
		if leaked := leakedGoroutines(5 * time.Second); leaked != "" {
			fmt.Fprintf(os.Stderr, "FAIL: goroutines of this project still running after the tests:\n%s\n", leaked)
			code = 1
		}
	}
	os.Exit(code)
}

// leakedGoroutines returns the stacks of goroutines running this project's code
// (connector, eventsub, relay, the fake Twitch), waiting up to d for them to end.
func leakedGoroutines(d time.Duration) string {
	deadline := time.Now().Add(d)
	for {
		buf := make([]byte, 1<<20)
		buf = buf[:runtime.Stack(buf, true)]
		var leaked []string
		for _, g := range strings.Split(string(buf), "\n\n") {
			if strings.Contains(g, "twitch-edge/") && !strings.Contains(g, "leakedGoroutines") &&
				!strings.Contains(g, "testing.(*M)") && !strings.Contains(g, "testing.tRunner") {
				leaked = append(leaked, g)
			}
		}
		if len(leaked) == 0 || time.Now().After(deadline) {
			return strings.Join(leaked, "\n\n")
		}
		time.Sleep(100 * time.Millisecond)
	}
}

const (
	botID    = "900"
	botToken = "bot-access-token-secret"
	aliceID  = "101"
	bobID    = "102"
)

// harness is one connector against the fake Twitch and the emulators.
type harness struct {
	t       *testing.T
	tw      *twitchtest.Server
	ps      *pubsub.Client
	fs      *firestore.Client
	project string
	// pubsubHost is the Pub/Sub emulator the harness's client talks to.
	pubsubHost string
	// firestoreHost is the Firestore emulator the harness's client talks to.
	firestoreHost string
	logs          *logtest.Buffer
	apps          []*runningApp
}

type runningApp struct {
	app    *App
	cancel context.CancelFunc
	done   chan struct{}
	pub    *bus.Publisher
}

func newHarness(t *testing.T, o twitchtest.Options) *harness {
	t.Helper()
	return newHarnessOn(t, o, "", "")
}

// newHarnessOn is newHarness on the Pub/Sub and Firestore emulators at the hosts
// given ("": the package's shared one).
func newHarnessOn(t *testing.T, o twitchtest.Options, pubsubHost, firestoreHost string) *harness {
	t.Helper()
	if pubsubHost == "" {
		pubsubHost = emulators.Host(emulators.PubSub)
	}
	if firestoreHost == "" {
		firestoreHost = emulators.Host(emulators.Firestore)
	}
	if o.ReconnectGrace == 0 {
		o.ReconnectGrace = 3 * time.Second
	}
	tw, err := twitchtest.New(o)
	if err != nil {
		t.Fatal(err)
	}
	tw.AddUser(twitchtest.User{ID: botID, Login: "bitbrat_bot", DisplayName: "BitBrat_Bot"})
	tw.AddUser(twitchtest.User{ID: aliceID, Login: "alice", DisplayName: "Alice"})
	tw.AddUser(twitchtest.User{ID: bobID, Login: "bob", DisplayName: "Bob"})
	tw.AddModerator(aliceID, botID)
	tw.AddModerator(bobID, botID)
	tw.AddToken(twitchtest.Token{AccessToken: botToken, UserID: botID,
		Scopes: []string{"moderator:read:followers", "user:write:chat", "user:manage:whispers"}})
	ctx := context.Background()
	h := &harness{t: t, tw: tw, project: emulators.ProjectID(t), pubsubHost: pubsubHost,
		firestoreHost: firestoreHost, logs: &logtest.Buffer{}}
	if h.ps, err = bus.NewClient(ctx, h.project, bus.WithEmulator(h.pubsubHost)); err != nil {
		t.Fatal(err)
	}
	if h.fs, err = store.NewClient(ctx, h.project, "", store.WithEmulator(h.firestoreHost)); err != nil {
		t.Fatal(err)
	}
	if err := bus.EnsureTopics(ctx, h.ps, "twitch.eventsub.raw.v1"); err != nil {
		t.Fatal(err)
	}
	if err := bus.EnsureSubscription(ctx, h.ps, bus.SubscriptionSpec{Name: "raw-watch", Topic: "twitch.eventsub.raw.v1"}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		for _, a := range h.apps {
			a.stop()
		}
		tw.Close()
		h.ps.Close()
		h.fs.Close()
		if t.Failed() {
			t.Logf("connector logs:\n%s", tail(h.logs.String(), 8000))
		}
		if strings.Contains(h.logs.String(), botToken) {
			t.Errorf("the bot token appears in the logs")
		}
	})
	return h
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

// start runs a connector instance named id.
func (h *harness) start(id string, mutate ...func(*Config)) *runningApp {
	h.t.Helper()
	ctx := context.Background()
	cfg := Config{
		Common: config.Common{Project: h.project, Database: "(default)"},
		Twitch: config.Twitch{
			ClientID: h.tw.ClientID(), Channels: []string{"alice", bobID},
			APIBaseURL: h.tw.APIBaseURL(), AuthBaseURL: h.tw.AuthBaseURL(),
			EventSubWSURL:            h.tw.EventSubWSURL() + "?keepalive_timeout_seconds=10",
			EventSubSubscriptionsURL: h.tw.APIBaseURL() + "/eventsub/subscriptions",
		},
		Topics: config.Topics{Raw: "twitch.eventsub.raw.v1"},
		// LeaseTTL leaves a loaded emulator room: each renewal is bounded by TTL/3.
		InstanceID: id, Buffer: 10_000, LeaseTTL: 6 * time.Second, ShutdownGrace: 5 * time.Second,
		KeepaliveGrace: time.Second, PubSubEmulator: h.pubsubHost, FirestoreEmulator: h.firestoreHost,
	}
	for _, m := range mutate {
		m(&cfg)
	}
	log := logging.New(io.MultiWriter(h.logs), slog.LevelDebug, "connector-"+id)
	oauth := twitch.NewOAuth(twitch.OAuthOptions{BaseURL: h.tw.AuthBaseURL(), ClientID: h.tw.ClientID()})
	tokens, err := twitch.NewStaticTokenSource(ctx, oauth, botToken)
	if err != nil {
		h.t.Fatal(err)
	}
	client := twitch.NewClient(twitch.Options{APIBaseURL: cfg.Twitch.APIBaseURL, AuthBaseURL: cfg.Twitch.AuthBaseURL,
		ClientID: cfg.Twitch.ClientID, Tokens: tokens, Logger: log})
	pub := bus.NewPublisher(h.ps, nil)
	tel, err := telemetry.Setup(ctx, telemetry.Config{Service: "connector", Instance: id, Prometheus: true})
	if err != nil {
		h.t.Fatal(err)
	}
	d := Deps{Helix: client, Users: client, BotUserID: botID, Publisher: pub, Firestore: h.fs, Log: log, Telemetry: tel}
	if cfg.Transport == TransportConduit {
		api := h.appHelix(cfg, log)
		d.AppHelix = api
		d.WebhookShards = func(ctx context.Context, conduitID string, ids []string) ([]string, error) {
			return conduit.KeepWebhookShards(ctx, api, conduitID, conduit.WebhookShards{IDs: ids, Callback: cfg.WebhookCallback, Secret: cfg.WebhookSecret.Reveal()})
		}
	}
	app, err := NewApp(ctx, cfg, d)
	if err != nil {
		h.t.Fatal(err)
	}
	rctx, cancel := context.WithCancel(ctx)
	ra := &runningApp{app: app, cancel: cancel, done: make(chan struct{}), pub: pub}
	go func() { defer close(ra.done); _ = app.Run(rctx) }()
	h.apps = append(h.apps, ra)
	return ra
}

func (a *runningApp) stop() {
	a.cancel()
	<-a.done
	a.pub.Close()
}

// waitFor polls cond until it holds or d passes.
func (h *harness) waitFor(what string, d time.Duration, cond func() bool) {
	h.t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			h.t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (h *harness) waitReady(a *runningApp, d time.Duration) {
	h.t.Helper()
	h.waitFor("connector ready", d, func() bool { ok, _ := a.app.Ready(); return ok })
}

// collect pulls raw notifications until n arrived or nothing came for quiet (the
// first may take up to 20 s on a loaded machine).
func (h *harness) collect(n int, quiet time.Duration) []bus.Received {
	h.t.Helper()
	got, err := bus.CollectFor(context.Background(), h.ps, "raw-watch", n, max(quiet, 20*time.Second), quiet)
	if err != nil {
		h.t.Fatal(err)
	}
	return got
}

func (h *harness) follow(broadcaster, follower string) string {
	h.t.Helper()
	ids, err := h.tw.Notify(twitchtest.Notification{Type: "channel.follow",
		Condition: map[string]string{"broadcaster_user_id": broadcaster},
		Event:     h.tw.FollowEvent(broadcaster, follower, time.Now())})
	if err != nil || len(ids) != 1 {
		h.t.Fatalf("notify: %v %v", ids, err)
	}
	return ids[0]
}

func sessionID(h *harness) string {
	ss := h.tw.Sessions()
	if len(ss) == 0 {
		return ""
	}
	return ss[len(ss)-1].ID
}

func countByID(got []bus.Received) map[string]int {
	m := map[string]int{}
	for _, r := range got {
		m[r.Attributes["eventsub_message_id"]]++
	}
	return m
}
