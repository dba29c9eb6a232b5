package egress

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/bitbrat/twitch-edge/shared/emulators"
	"github.com/bitbrat/twitch-edge/shared/event"
	"github.com/bitbrat/twitch-edge/shared/fault"
	"github.com/bitbrat/twitch-edge/shared/store"
)

// secondChatInstance is another EgressChat instance on the same Firestore database.
func (f *fixture) secondChatInstance(t *testing.T, maxWait time.Duration) *ChatService {
	t.Helper()
	fs, err := store.NewClient(context.Background(), f.project, "", store.WithEmulator(emulators.Host(emulators.Firestore)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { fs.Close() })
	c, err := NewChatService(ChatConfig{Helix: f.helix, Pub: f.pub,
		Claims:  store.NewClaims(fs, store.CollectionDeliveries, 7*24*time.Hour, f.clock.Now),
		Budgets: store.NewSendBudgets(fs), Topics: Topics{Finalize: event.TopicFinalize, Whisper: event.TopicWhisper, Egress: egressTopic},
		BotUserID: botID, Owner: "instance-2", Now: f.clock.Now, Log: slog.New(slog.DiscardHandler), Sleep: f.sleep, MaxWait: maxWait})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func (f *fixture) sentChats() int {
	n := 0
	for _, c := range f.fake.ChatMessages() {
		if c.IsSent {
			n++
		}
	}
	return n
}

// A burst of 25 replies to a channel the bot does not moderate, spread over two
// instances, stays within Twitch's 20 per 30 s: the sends beyond wait for the budget
// (never dropped, never FAILED) and every one is SENT.
func TestChatBudgetIsSharedAndWaitedFor(t *testing.T) {
	f := newFixture(t)
	instances := []*ChatService{f.chat, f.secondChatInstance(t, 0)}
	const n = 25
	for i := 0; i < n; i++ {
		m := message(t, chatEvent(fmt.Sprint("cid-burst-chat-", i), fmt.Sprint("reply number ", i)), egressTopic)
		if err := instances[i%2].Handle(context.Background(), m); err != nil {
			t.Fatalf("reply %d: %v", i, err)
		}
	}
	if got := f.sentChats(); got != n {
		t.Fatalf("%d messages sent, want %d", got, n)
	}
	if v := f.fake.ChatBudgetViolations(); v != 0 {
		t.Fatalf("%d messages over Twitch's chat budget", v)
	}
	if len(f.sleeps) == 0 {
		t.Fatal("25 messages in one instant without waiting")
	}
	for _, d := range f.sleeps {
		if d <= 0 || d > DefaultChatMaxWait {
			t.Fatalf("waited %s", d)
		}
	}
	for _, fin := range f.pub.finalizes(t) {
		if fin.Status != event.StatusSent {
			t.Fatalf("finalize %+v", fin)
		}
	}
}

// Where the bot moderates, its budget is 100 per 30 s (the tier comes from Helix Get
// Moderated Channels, asked once): 30 messages go out at once.
func TestChatBudgetOfAModeratorIsHigher(t *testing.T) {
	f := newFixture(t)
	f.fake.AddModerator(broadcasterID, botID)
	for i := 0; i < 30; i++ {
		m := message(t, chatEvent(fmt.Sprint("cid-mod-", i), fmt.Sprint("moderator reply ", i)), egressTopic)
		if err := f.chat.Handle(context.Background(), m); err != nil {
			t.Fatalf("reply %d: %v", i, err)
		}
	}
	if f.sentChats() != 30 || len(f.sleeps) != 0 || f.fake.ChatBudgetViolations() != 0 {
		t.Fatalf("%d sent, %d waits, %d violations; want 30, 0, 0", f.sentChats(), len(f.sleeps), f.fake.ChatBudgetViolations())
	}
	if n := len(f.fake.RequestsTo(http.MethodGet, "/helix/moderation/channels")); n != 1 {
		t.Fatalf("%d moderated-channel lookups, want 1 (cached)", n)
	}
}

// A budget that frees later than the handler may wait is retried by Pub/Sub, not
// failed.
func TestChatBudgetBeyondTheWaitIsRetriedLater(t *testing.T) {
	f := newFixture(t)
	chat := f.secondChatInstance(t, time.Nanosecond)
	for i := 0; i < ChatPerWindow; i++ {
		if err := chat.Handle(context.Background(), message(t, chatEvent(fmt.Sprint("cid-fill-", i), fmt.Sprint("fill ", i)), egressTopic)); err != nil {
			t.Fatal(err)
		}
	}
	m := message(t, chatEvent("cid-later", "the 21st"), egressTopic)
	err := chat.Handle(context.Background(), m)
	wantErr(t, err, fault.RateLimited, CodeChatRateLimit)
	// The 20 answered at once (not settled): they count until the margin past the window.
	if d := fault.RetryAfter(err, f.clock.Now()); d != ChatWindow+chatArrivalMargin {
		t.Fatalf("retry after %s, want %s", d, ChatWindow+chatArrivalMargin)
	}
	if len(f.pub.finalizes(t)) != ChatPerWindow {
		t.Fatal("the waiting message was finalized")
	}
	f.clock.Advance(ChatWindow + chatArrivalMargin)
	if err := chat.Handle(context.Background(), m); err != nil {
		t.Fatal(err)
	}
	if f.sentChats() != ChatPerWindow+1 || f.fake.ChatBudgetViolations() != 0 {
		t.Fatalf("%d sent, %d violations", f.sentChats(), f.fake.ChatBudgetViolations())
	}
}

// Text that Twitch would read as a command is escaped.
func TestChatCommandsAreEscaped(t *testing.T) {
	f := newFixture(t)
	for i, text := range []string{"/ban viewer", ".timeout viewer 600", "hello /ban"} {
		if err := f.chat.Handle(context.Background(), message(t, chatEvent(fmt.Sprint("cid-cmd-", i), text), egressTopic)); err != nil {
			t.Fatal(err)
		}
	}
	var got []string
	for _, c := range f.fake.ChatMessages() {
		got = append(got, c.Message)
	}
	want := []string{"\u200b/ban viewer", "\u200b.timeout viewer 600", "hello /ban"}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Fatalf("sent %q, want %q", got, want)
	}
}

func TestChatParts(t *testing.T) {
	long := "/" + strings.Repeat("a", 498) + " " + strings.Repeat("b", 10) // first part would be 499+escape
	exact := "/" + strings.Repeat("x", 499) + " tail"                      // first part exactly 500 before escaping
	for _, tc := range []struct {
		name, text string
		want       []string
	}{
		{"plain", "hello", []string{"hello"}},
		{"slash", "/me dances", []string{"\u200b/me dances"}},
		{"dot", ".mods", []string{"\u200b.mods"}},
		{"fits with the escape", long, []string{"\u200b/" + strings.Repeat("a", 498), strings.Repeat("b", 10)}},
		{"full part is re-split", exact, []string{"\u200b/" + strings.Repeat("x", 498), "x tail"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, _ := chatParts(tc.text, DefaultMaxParts)
			if strings.Join(got, "|") != strings.Join(tc.want, "|") {
				t.Fatalf("parts %q, want %q", got, tc.want)
			}
			for _, p := range got {
				if CharCount(p) > ChatMaxChars {
					t.Fatalf("part of %d characters", CharCount(p))
				}
			}
		})
	}
}
