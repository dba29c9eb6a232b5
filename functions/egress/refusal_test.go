package egress

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/bitbrat/twitch-edge/shared/event"
	"github.com/bitbrat/twitch-edge/shared/store"
	"github.com/bitbrat/twitch-edge/shared/twitch/twitchtest"
)

// A refusal decided before sending is final: a redelivery after its reason has gone
// (the channel now exists; the recipient cap has room again) sends nothing and
// reports nothing more, and the whisper's redelivery gives back the recipient slot it
// was handed, so the next recipient is not refused for it.
func TestRefusalBeforeSendingIsFinal(t *testing.T) {
	t.Run("chat: unknown channel", func(t *testing.T) {
		f := newFixture(t)
		e := chatEvent("cid-refused-chat", "hello")
		e.Channel = "#latecomer"
		m := message(t, e, egressTopic)
		if err := f.chat.Handle(context.Background(), m); err != nil {
			t.Fatal(err)
		}
		wantFailed(t, f.pub.oneFinalize(t), CodeChannelNotFound, "latecomer")
		f.fake.AddUser(twitchtest.User{ID: "4004", Login: "latecomer"})
		f.clock.Advance(10 * time.Minute)
		if err := f.chat.Handle(context.Background(), m); err != nil {
			t.Fatal(err)
		}
		if n := len(f.chatRequests()); n != 0 {
			t.Fatalf("%d chat messages after the refusal", n)
		}
		f.pub.oneFinalize(t)
	})
	t.Run("whisper: recipient cap", func(t *testing.T) {
		f := newFixture(t)
		for _, id := range []string{"8001", "8002"} {
			f.fake.AddUser(twitchtest.User{ID: id, Login: "cap" + id})
		}
		w, err := NewWhisperService(WhisperConfig{Helix: f.helix, Pub: f.pub, Claims: f.claims,
			Recipients: store.NewWhisperRecipients(f.fs), Budgets: store.NewSendBudgets(f.fs),
			Topics:    Topics{Finalize: event.TopicFinalize, Whisper: event.TopicWhisper, Egress: egressTopic},
			BotUserID: botID, Owner: "cap", RecipientCap: 1, MaxAge: 48 * time.Hour, Now: f.clock.Now,
			Log: slog.New(slog.DiscardHandler), Sleep: f.sleep})
		if err != nil {
			t.Fatal(err)
		}
		ctx := context.Background()
		if err := w.Handle(ctx, whisperMessage(t, dmEvent("cid-cap-a", viewerID, "first"))); err != nil {
			t.Fatal(err)
		}
		refused := whisperMessage(t, dmEvent("cid-cap-b", "8001", "second"))
		if err := w.Handle(ctx, refused); err != nil {
			t.Fatal(err)
		}
		f.clock.Advance(store.WhisperWindow + time.Second) // the viewer leaves the window
		if err := w.Handle(ctx, refused); err != nil {
			t.Fatal(err)
		}
		if err := w.Handle(ctx, whisperMessage(t, dmEvent("cid-cap-c", "8002", "third"))); err != nil {
			t.Fatal(err)
		}
		if n := len(f.fake.Whispers()); n != 2 {
			t.Fatalf("%d whispers, want 2 (the first and the third)", n)
		}
		fins := f.pub.finalizes(t)
		if len(fins) != 3 {
			t.Fatalf("%d finalizes, want 3", len(fins))
		}
		wantFailed(t, fins[1], CodeRecipientCap, "different users")
		if fins[2].CorrelationID != "cid-cap-c" || fins[2].Status != event.StatusSent {
			t.Fatalf("third whisper: %+v, want SENT", fins[2])
		}
	})
}
