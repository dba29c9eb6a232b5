package egress

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/bitbrat/twitch-edge/functions/trigger"
	"github.com/bitbrat/twitch-edge/shared/bus"
	"github.com/bitbrat/twitch-edge/shared/emulators"
	"github.com/bitbrat/twitch-edge/shared/event"
	"github.com/bitbrat/twitch-edge/shared/store"
)

// TestThroughPubSub runs a chat event and a dm event through the real Pub/Sub
// emulator: egress topic → EgressChat → (dm) whisper topic → EgressWhisper, each
// outcome a finalize message on the finalize topic, with a deployment prefix.
func TestThroughPubSub(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	f := newFixture(t)
	ps, err := bus.NewClient(ctx, emulators.ProjectID(t), bus.WithEmulator(emulators.Host(emulators.PubSub)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ps.Close() })
	prefix := event.Prefix("test.")
	topics := Topics{Finalize: prefix.Topic(event.TopicFinalize), Whisper: prefix.Topic(event.TopicWhisper), Egress: prefix.Topic(event.TopicEgress)}
	if err := bus.EnsureTopics(ctx, ps, topics.Egress, topics.Whisper, topics.Finalize); err != nil {
		t.Fatal(err)
	}
	for sub, topic := range map[string]string{"egress-sub": topics.Egress, "whisper-sub": topics.Whisper, "finalize-sub": topics.Finalize} {
		if err := bus.EnsureSubscription(ctx, ps, bus.SubscriptionSpec{Name: sub, Topic: topic}); err != nil {
			t.Fatal(err)
		}
	}
	pub := bus.NewPublisher(ps, &bus.FunctionPublishSettings)
	t.Cleanup(pub.Close)
	chat, err := NewChatService(ChatConfig{Helix: f.helix, Pub: pub, Claims: f.claims, Topics: topics, BotUserID: botID, Now: f.clock.Now,
		Budgets: store.NewSendBudgets(f.fs)})
	if err != nil {
		t.Fatal(err)
	}
	whisper, err := NewWhisperService(WhisperConfig{Helix: f.helix, Pub: pub, Claims: f.claims,
		Recipients: store.NewWhisperRecipients(f.fs), Budgets: store.NewSendBudgets(f.fs), Topics: topics, BotUserID: botID, Now: f.clock.Now})
	if err != nil {
		t.Fatal(err)
	}

	// Upstream publishes both events to the egress topic.
	for _, e := range []*event.InternalEventV2{chatEvent("cid-ps-chat", "hello chat"), dmEvent("cid-ps-dm", viewerID, "hello you")} {
		if _, err := pub.Publish(ctx, topics.Egress, mustJSON(t, e), event.Attributes(e)); err != nil {
			t.Fatal(err)
		}
	}
	deliver := func(sub, topic string, want int, h func(context.Context, trigger.Message) error) {
		t.Helper()
		got, err := bus.Collect(ctx, ps, sub, want, 5*time.Second)
		if err != nil || len(got) != want {
			t.Fatalf("%s: %d messages (%v), want %d", sub, len(got), err, want)
		}
		for _, r := range got {
			if err := h(ctx, trigger.Message{ID: r.ID, Data: r.Data, Attributes: r.Attributes, Topic: topic, PublishTime: time.Now()}); err != nil {
				t.Fatalf("%s: %v", sub, err)
			}
		}
	}
	deliver("egress-sub", topics.Egress, 2, chat.Handle)
	deliver("whisper-sub", topics.Whisper, 1, whisper.Handle)

	got, err := bus.Collect(ctx, ps, "finalize-sub", 2, 5*time.Second)
	if err != nil || len(got) != 2 {
		t.Fatalf("%d finalize messages (%v), want 2", len(got), err)
	}
	byID := map[string]event.FinalizeMessage{}
	for _, r := range got {
		var fin event.FinalizeMessage
		if err := json.Unmarshal(r.Data, &fin); err != nil {
			t.Fatal(err)
		}
		if r.Attributes[event.AttrCorrelationID] != fin.CorrelationID || r.Attributes[event.AttrType] != event.TypeEgressDeliver {
			t.Errorf("finalize attributes %v", r.Attributes)
		}
		byID[fin.CorrelationID] = fin
	}
	sent := f.fake.ChatMessages()
	if c := byID["cid-ps-chat"]; c.Status != event.StatusSent || len(sent) != 1 || c.ProviderMessageID != sent[0].MessageID || c.Destination != topics.Egress {
		t.Errorf("chat finalize %+v (sent %+v)", c, sent)
	}
	if w := byID["cid-ps-dm"]; w.Status != event.StatusSent || w.Destination != topics.Egress || len(f.fake.Whispers()) != 1 {
		t.Errorf("whisper finalize %+v", w)
	}
}
