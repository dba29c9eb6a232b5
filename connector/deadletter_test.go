package main

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/bitbrat/twitch-edge/shared/bus"
	"github.com/bitbrat/twitch-edge/shared/twitch/twitchtest"
)

// TestRefusedByPubSubIsDeadLettered: a notification Pub/Sub refuses for good (here an
// attribute over 1,024 bytes, from an absurd subscription_type) is not retried
// forever: it goes to the dead-letter topic with the reason, and the stream goes on.
func TestRefusedByPubSubIsDeadLettered(t *testing.T) {
	h := newHarness(t, twitchtest.Options{})
	ctx := context.Background()
	if err := bus.EnsureTopics(ctx, h.ps, "internal.deadletter.v1"); err != nil {
		t.Fatal(err)
	}
	if err := bus.EnsureSubscription(ctx, h.ps, bus.SubscriptionSpec{Name: "dl-watch", Topic: "internal.deadletter.v1"}); err != nil {
		t.Fatal(err)
	}
	a := h.start("a", func(c *Config) { c.Topics.DeadLetter = "internal.deadletter.v1" })
	h.waitReady(a, 20*time.Second)

	long := "channel.follow" + strings.Repeat("x", 1100)
	id := uuid.NewString()
	frame := fmt.Sprintf(`{"metadata":{"message_id":%q,"message_type":"notification","message_timestamp":%q,`+
		`"subscription_type":%q,"subscription_version":"2"},"payload":{"subscription":{"id":"s","type":%q,"version":"2",`+
		`"condition":{"broadcaster_user_id":%q}},"event":{"user_id":"5"}}}`,
		id, time.Now().UTC().Format(time.RFC3339Nano), long, long, aliceID)
	if err := h.tw.SendRaw(sessionID(h), []byte(frame)); err != nil {
		t.Fatal(err)
	}
	got, err := bus.CollectFor(ctx, h.ps, "dl-watch", 1, 30*time.Second, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 {
		t.Fatalf("%d dead letters, want 1", len(got))
	}
	var dl struct {
		Type    string `json:"type"`
		Source  string `json:"source"`
		Payload struct {
			Reason string `json:"reason"`
			Error  struct {
				Code string `json:"code"`
			} `json:"error"`
		} `json:"payload"`
		Original json.RawMessage `json:"original"`
	}
	if err := json.Unmarshal(got[0].Data, &dl); err != nil {
		t.Fatal(err)
	}
	if dl.Payload.Error.Code != bus.CodeAttributeTooLarge || !strings.Contains(dl.Payload.Reason, bus.CodeAttributeTooLarge) ||
		dl.Source != "twitch-edge.connector" || string(dl.Original) != frame {
		t.Fatalf("dead letter %s", got[0].Data)
	}
	// The relay is not stuck on it: the next notification is forwarded.
	next := h.follow(aliceID, "77")
	if counts := countByID(h.collect(1, 5*time.Second)); counts[next] != 1 {
		t.Fatalf("next notification forwarded %d times", counts[next])
	}
}
