package main

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/bitbrat/twitch-edge/shared/config"
	"github.com/bitbrat/twitch-edge/shared/emulators"
	"github.com/bitbrat/twitch-edge/shared/logging"
	"github.com/bitbrat/twitch-edge/shared/twitch/twitchtest"
)

// freeAddr returns a loopback address nothing listens on.
func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// get returns the status and body of GET url, or 0 when nothing answers.
func get(url string) (int, string) {
	c := &http.Client{Timeout: 2 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// mainConfig is the whole process's configuration against the harness, reading the
// bot's token from Firestore as in production.
func (h *harness) mainConfig(id string) Config {
	return Config{
		Common: config.Common{Project: h.project, Database: "(default)"},
		Twitch: config.Twitch{
			ClientID: h.tw.ClientID(), Channels: []string{"alice", bobID}, BotUserID: botID,
			APIBaseURL: h.tw.APIBaseURL(), AuthBaseURL: h.tw.AuthBaseURL(),
			EventSubWSURL:            h.tw.EventSubWSURL() + "?keepalive_timeout_seconds=10",
			EventSubSubscriptionsURL: h.tw.APIBaseURL() + "/eventsub/subscriptions",
		},
		Topics:     config.Topics{Raw: "twitch.eventsub.raw.v1"},
		InstanceID: id, Buffer: 10_000, LeaseTTL: 6 * time.Second, ShutdownGrace: 5 * time.Second,
		KeepaliveGrace: time.Second, Addr: freeAddr(h.t),
		PubSubEmulator: h.pubsubHost, FirestoreEmulator: h.firestoreHost,
	}
}

func (h *harness) seedToken() {
	h.t.Helper()
	_, err := h.fs.Collection("oauth").Doc("twitch").Collection("bot").Doc("token").Set(context.Background(), map[string]any{
		"accessToken": botToken, "scope": []any{"moderator:read:followers", "user:write:chat", "user:manage:whispers"},
		"expiresIn": 14400, "obtainmentTimestamp": time.Now().UnixMilli(), "userId": botID,
	})
	if err != nil {
		h.t.Fatal(err)
	}
}

// TestStartupWithFirestoreFrozenIsVisible: with Firestore hanging at start, the
// process serves /healthz at once, /readyz says what it waits for, the log names the
// step and the host, and once Firestore is back the connector gets ready by itself.
func TestStartupWithFirestoreFrozenIsVisible(t *testing.T) {
	e, err := emulators.Start(context.Background(), emulators.Firestore)
	if err != nil {
		t.Fatal(err)
	}
	defer e.Stop()
	h := newHarnessOn(t, twitchtest.Options{}, "", e.Host)
	h.seedToken()
	cfg := h.mainConfig("main")
	if err := e.Pause(); err != nil {
		t.Fatal(err)
	}
	paused := true
	defer func() {
		if paused {
			_ = e.Resume()
		}
	}()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	log := logging.New(h.logs, slog.LevelDebug, "connector-main")
	go func() { done <- Main(ctx, cfg, log) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Main: %v", err)
		}
	}()

	base := "http://" + cfg.Addr
	h.waitFor("/healthz to answer while Firestore is frozen", 20*time.Second, func() bool {
		code, _ := get(base + "/healthz")
		return code == http.StatusOK
	})
	h.waitFor("/readyz to say start-up waits for the token", 20*time.Second, func() bool {
		code, body := get(base + "/readyz")
		return code == http.StatusServiceUnavailable && strings.Contains(body, "bot's token") && strings.Contains(body, e.Host)
	})
	// Each attempt has a deadline: a second attempt shows the first one ended.
	h.waitFor("a retry after the first attempt's deadline", 60*time.Second, func() bool {
		return strings.Contains(h.logs.String(), `"attempt":2`)
	})
	if logs := h.logs.String(); !strings.Contains(logs, "waiting for the bot's token") || !strings.Contains(logs, e.Host) {
		t.Fatalf("the log does not say what start-up waits for:\n%s", tail(logs, 3000))
	}
	if err := e.Resume(); err != nil {
		t.Fatal(err)
	}
	paused = false
	h.waitFor("ready after Firestore is back", 90*time.Second, func() bool {
		code, _ := get(base + "/readyz")
		return code == http.StatusOK
	})
}
