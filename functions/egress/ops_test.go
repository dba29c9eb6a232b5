package egress

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/bitbrat/twitch-edge/infra/load/opcount"
	"github.com/bitbrat/twitch-edge/shared/emulators"
	"github.com/bitbrat/twitch-edge/shared/event"
	"github.com/bitbrat/twitch-edge/shared/store"
)

// The egress functions' Firestore bill per delivered message, counted at the
// emulator (the bot token is read once per instance and cached: not counted). With
// Finalize's one write (functions/finalize TestFinalizeFirestoreOpsPerMessage) this is
// the per-message figure in the README's cost table.
func TestEgressFirestoreOpsPerMessage(t *testing.T) {
	f := newFixture(t)
	px, err := opcount.Start(emulators.Host(emulators.Firestore))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(px.Close)
	fs, err := store.NewClient(context.Background(), f.project, "", store.WithEmulator(px.Addr))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { fs.Close() })
	claims := store.NewClaims(fs, store.CollectionDeliveries, 7*24*time.Hour, f.clock.Now)
	quiet := slog.New(slog.NewJSONHandler(io.Discard, nil))
	topics := Topics{Finalize: event.TopicFinalize, Whisper: event.TopicWhisper, Egress: egressTopic}
	chat, err := NewChatService(ChatConfig{Helix: f.helix, Pub: f.pub, Claims: claims, Topics: topics,
		Budgets: store.NewSendBudgets(fs), BotUserID: botID, Owner: "ops", Now: f.clock.Now, Log: quiet, Sleep: f.sleep})
	if err != nil {
		t.Fatal(err)
	}
	whisper, err := NewWhisperService(WhisperConfig{Helix: f.helix, Pub: f.pub, Claims: claims,
		Recipients: store.NewWhisperRecipients(fs), Budgets: store.NewSendBudgets(fs), Topics: topics, BotUserID: botID,
		Owner: "ops", Now: f.clock.Now, Log: quiet, Sleep: f.sleep})
	if err != nil {
		t.Fatal(err)
	}
	// Warm the token cache outside the count.
	if err := chat.Handle(context.Background(), message(t, chatEvent("cid-ops-warm", "hi"), egressTopic)); err != nil {
		t.Fatal(err)
	}
	const n = 5
	before := px.Counts()
	for i := range n {
		if err := chat.Handle(context.Background(), message(t, chatEvent(fmt.Sprint("cid-ops-chat-", i), "hello"), egressTopic)); err != nil {
			t.Fatal(err)
		}
	}
	c := px.Counts().Sub(before)
	t.Logf("EgressChat, %d messages: %s", n, c)
	// One transaction that reads the channel's send budget and writes it and the part's
	// claim (a create, marked in flight), then the claim's finish (outcome and
	// "finalize published", one write): 3 writes, 1 read.
	chatWant, err := opcount.BudgetFor("egressChat")
	if err != nil {
		t.Fatal(err)
	}
	if c.Writes != chatWant.Writes*n || c.Reads != chatWant.Reads*n {
		t.Errorf("EgressChat per message: %s; want %d writes and %d reads (docs/perf/ops.json)", c, chatWant.Writes, chatWant.Reads)
	}
	before = px.Counts()
	for i := range n {
		w := f.handoff(t, message(t, dmEvent(fmt.Sprint("cid-ops-dm-", i), viewerID, "psst"), egressTopic))
		if err := whisper.Handle(context.Background(), w); err != nil {
			t.Fatal(err)
		}
	}
	c = px.Counts().Sub(before)
	t.Logf("EgressWhisper, %d whispers: %s", n, c)
	// As chat, the recipient's daily whisper budget (a transaction: a read, and a
	// write for the first whisper to a recipient), and the whisper's settle in its send
	// budget (one write, no read: the answer's time, store.Budget). The fifth whisper in the same
	// instant waits once for the 3-per-second budget: two reads more (the budget, and
	// the claim, looked at because the budget is full).
	dmWant, err := opcount.BudgetFor("egressWhisper")
	if err != nil {
		t.Fatal(err)
	}
	if w, r := dmWant.Writes*n, dmWant.Reads*n; c.Writes < w || c.Writes > w+1 || c.Reads < r || c.Reads > r+2 {
		t.Errorf("EgressWhisper per whisper: %s; want %d writes and %d reads (docs/perf/ops.json), one more write for a new recipient, two more reads for the wait", c, dmWant.Writes, dmWant.Reads)
	}
}
