package egress

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/bitbrat/twitch-edge/shared/event"
	"github.com/bitbrat/twitch-edge/shared/fault"
	"github.com/bitbrat/twitch-edge/shared/store"
	"github.com/bitbrat/twitch-edge/shared/twitch/twitchtest"
)

// The bot posts only in the allowed channels (logins or broadcaster ids); an event
// for another channel is FAILED CHANNEL_NOT_ALLOWED and dead-lettered, and nothing
// reaches Twitch's chat.
func TestChatOutsideTheAllowlistIsRefused(t *testing.T) {
	for _, allow := range [][]string{{"brat"}, {"#Brat"}, {broadcasterID}} {
		t.Run(allow[0], func(t *testing.T) {
			f := newFixture(t)
			f.fake.AddUser(twitchtest.User{ID: "4004", Login: "elsewhere"})
			chat, err := NewChatService(ChatConfig{Helix: f.helix, Pub: f.pub, Claims: f.claims, Budgets: store.NewSendBudgets(f.fs),
				Topics:    Topics{Finalize: event.TopicFinalize, Whisper: event.TopicWhisper, Egress: egressTopic},
				BotUserID: botID, Now: f.clock.Now, Log: slog.New(slog.DiscardHandler), Channels: allow})
			if err != nil {
				t.Fatal(err)
			}
			other := chatEvent("cid-elsewhere", "hi there")
			other.Channel = "#elsewhere"
			wantErr(t, chat.Handle(context.Background(), message(t, other, egressTopic)), fault.Permanent, CodeChannelNotAllowed)
			if err := chat.Handle(context.Background(), message(t, chatEvent("cid-allowed", "hi brat"), egressTopic)); err != nil {
				t.Fatal(err)
			}
			msgs := f.fake.ChatMessages()
			if len(msgs) != 1 || msgs[0].BroadcasterID != broadcasterID {
				t.Fatalf("chat messages %+v, want one in #brat", msgs)
			}
			fins := f.pub.finalizes(t)
			if len(fins) != 2 {
				t.Fatalf("%d finalizes", len(fins))
			}
			wantFailed(t, fins[0], CodeChannelNotAllowed, "#elsewhere")
		})
	}
}

// With SeenWithin set, a whisper goes only to a user seen on the ingress topic within
// it.
func TestWhisperOnlyToUsersSeenRecently(t *testing.T) {
	f := newFixture(t)
	seen := store.NewSeenUsers(f.fs, time.Hour)
	w, err := NewWhisperService(WhisperConfig{Helix: f.helix, Pub: f.pub, Claims: f.claims,
		Recipients: store.NewWhisperRecipients(f.fs), Budgets: store.NewSendBudgets(f.fs),
		Topics:    Topics{Finalize: event.TopicFinalize, Whisper: event.TopicWhisper, Egress: egressTopic},
		BotUserID: botID, Now: f.clock.Now, Log: slog.New(slog.DiscardHandler), SeenWithin: time.Hour, Seen: seen})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	wantErr(t, w.Handle(ctx, whisperMessage(t, dmEvent("cid-stranger", viewerID, "hi"))), fault.Permanent, CodeRecipientNotSeen)
	if err := seen.Mark(ctx, viewerID, f.clock.Now().Add(-2*time.Hour)); err != nil {
		t.Fatal(err)
	}
	wantErr(t, w.Handle(ctx, whisperMessage(t, dmEvent("cid-long-ago", viewerID, "hi"))), fault.Permanent, CodeRecipientNotSeen)
	if err := seen.Mark(ctx, viewerID, f.clock.Now().Add(-time.Minute)); err != nil {
		t.Fatal(err)
	}
	if err := w.Handle(ctx, whisperMessage(t, dmEvent("cid-regular", viewerID, "hi"))); err != nil {
		t.Fatal(err)
	}
	if n := len(f.fake.Whispers()); n != 1 {
		t.Fatalf("%d whispers, want 1", n)
	}
	fins := f.pub.finalizes(t)
	if len(fins) != 3 || fins[2].Status != event.StatusSent {
		t.Fatalf("finalizes %+v", fins)
	}
	wantFailed(t, fins[0], CodeRecipientNotSeen, viewerID)
}
