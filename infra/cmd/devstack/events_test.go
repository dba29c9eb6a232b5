package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/bitbrat/twitch-edge/infra/faketwitch"
	"github.com/bitbrat/twitch-edge/infra/stack"
	"github.com/bitbrat/twitch-edge/shared/bus"
	"github.com/bitbrat/twitch-edge/shared/emulators"
	"github.com/bitbrat/twitch-edge/shared/event"
	"github.com/bitbrat/twitch-edge/shared/logging/logtest"
	"github.com/bitbrat/twitch-edge/shared/store"
)

// A chat message reaches Twitch before its outcome is published, so make run prints
// its chat line before its finalize line, even when the finalize message arrives
// between two polls of the fake's deliveries (here: no poll runs at all).
func TestChatLineBeforeFinalizeLine(t *testing.T) {
	fake, err := faketwitch.Start(faketwitch.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer fake.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	fs, err := store.NewClient(ctx, emulators.ProjectID(t), "", store.WithEmulator(emulators.Host(emulators.Firestore)))
	if err != nil {
		t.Fatal(err)
	}
	defer fs.Close()

	ch := faketwitch.Channels[1]
	body := fmt.Sprintf(`{"broadcaster_id":%q,"sender_id":%q,"message":"hello chat"}`, ch.ID, faketwitch.BotID)
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, fake.Twitch.APIBaseURL()+"/chat/messages", strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+fake.BotToken().AccessToken)
	req.Header.Set("Client-Id", fake.Twitch.ClientID())
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("send chat through the fake: HTTP %d", resp.StatusCode)
	}

	var out logtest.Buffer
	l := &eventLog{p: newPrinter(&out), st: &stack.Stack{Fake: fake, Firestore: fs}}
	data, err := json.Marshal(event.FinalizeMessage{CorrelationID: "c-1", Destination: "internal.egress.v1",
		DeliveredAt: time.Now().UTC().Format(time.RFC3339), Status: event.StatusSent})
	if err != nil {
		t.Fatal(err)
	}
	fctx, fcancel := context.WithCancel(ctx)
	l.finalize(fctx, bus.Received{ID: "1", Data: data})
	fcancel()

	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	chat, fin := -1, -1
	for i, s := range lines {
		switch {
		case strings.Contains(s, "  chat ") && strings.Contains(s, "hello chat"):
			chat = i
		case strings.Contains(s, "  finalize ") && strings.Contains(s, "c-1"):
			fin = i
		}
	}
	if chat < 0 || fin < 0 || chat > fin {
		t.Errorf("chat line at %d, finalize line at %d, want the chat line first:\n%s", chat, fin, out.String())
	}
	l.flushDeliveries()
	if n := strings.Count(out.String(), "hello chat"); n != 1 {
		t.Errorf("the chat line printed %d times, want once:\n%s", n, out.String())
	}
}
