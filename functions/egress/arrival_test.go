package egress

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/bitbrat/twitch-edge/shared/event"
	"github.com/bitbrat/twitch-edge/shared/fault"
	"github.com/bitbrat/twitch-edge/shared/store"
	"github.com/bitbrat/twitch-edge/shared/twitch/twitchtest"
)

// lagged makes the first n sends to path reach Twitch late: it holds them until all n
// have come, moves the shared clock on by lag (the time they spend on the way: a slow
// network, a loaded machine), then lets them through together.
type lagged struct {
	base  http.RoundTripper
	path  string
	clock *fakeClock
	lag   time.Duration
	n     int

	mu   sync.Mutex
	seen int
	all  chan struct{}
}

func newLagged(clock *fakeClock, path string, n int, lag time.Duration) *lagged {
	return &lagged{base: &http.Transport{}, path: path, clock: clock, lag: lag, n: n, all: make(chan struct{})}
}

func (l *lagged) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Method == http.MethodPost && r.URL.Path == l.path {
		l.mu.Lock()
		held := l.seen < l.n
		l.seen++
		if l.seen == l.n {
			l.clock.Advance(l.lag)
			close(l.all)
		}
		l.mu.Unlock()
		if held {
			select {
			case <-l.all:
			case <-r.Context().Done():
				return nil, r.Context().Err()
			}
		}
	}
	return l.base.RoundTrip(r)
}

// Three whispers sent in the same instant arrive at Twitch 0.6 s late. A fourth, due
// 1.25 s after the three were reserved, would arrive within Twitch's second of them:
// the budget, which counts a whisper by when its answer came, holds it back until a
// second after that (before, it counted reservations, widened by 250 ms, and the
// fourth drew a 429).
func TestLateArrivingWhispersDrawNo429(t *testing.T) {
	f := newFixture(t)
	const lag = 600 * time.Millisecond
	_, w := f.services(t, newLagged(f.clock, "/helix/whispers", WhispersPerSecond, lag))
	var msgs []*event.InternalEventV2
	for i := range WhispersPerSecond + 1 {
		id := fmt.Sprint(7100 + i)
		f.fake.AddUser(twitchtest.User{ID: id, Login: "late" + id})
		msgs = append(msgs, dmEvent("cid-late-"+id, id, "hi "+id))
	}
	t0 := f.clock.Now()
	var wg sync.WaitGroup
	for _, e := range msgs[:WhispersPerSecond] {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := w.Handle(context.Background(), whisperMessage(t, e)); err != nil {
				t.Errorf("whisper %s: %v", e.CorrelationID, err)
			}
		}()
	}
	wg.Wait()
	f.clock.Advance(WhisperSecond - lag) // t0 + 1.25 s
	err := w.Handle(context.Background(), whisperMessage(t, msgs[WhispersPerSecond]))
	if n := len(f.whisperRequests()); n != WhispersPerSecond {
		t.Fatalf("%d whisper requests reached Twitch (%d accepted), want %d: the 4th arrived %s after three others",
			n, len(f.fake.Whispers()), WhispersPerSecond, WhisperSecond-lag)
	}
	if fault.CodeOf(err, "") != CodeLocalRateLimit {
		t.Fatalf("the 4th whisper: %v, want %s", err, CodeLocalRateLimit)
	}
	if at := fault.RetryAfter(err, t0); at != lag+time.Second {
		t.Errorf("retry %s after the three were reserved, want %s (a second after their answers)", at, lag+time.Second)
	}
	f.clock.Advance(lag + time.Second - WhisperSecond) // Pub/Sub redelivers
	if err := w.Handle(context.Background(), whisperMessage(t, msgs[WhispersPerSecond])); err != nil {
		t.Fatal(err)
	}
	if n, sent := len(f.whisperRequests()), len(f.fake.Whispers()); n != WhispersPerSecond+1 || sent != n {
		t.Fatalf("%d whisper requests, %d accepted; want %d and no 429", n, sent, WhispersPerSecond+1)
	}
}

// The first of 20 chat messages to a channel the bot does not moderate reaches
// Twitch 2 s late, the other 19 at once. The 21st, due 30.5 s after the first was
// reserved, would be Twitch's 21st within 30 s: the first message was slow, so its
// answer's time is recorded in the budget and the 21st waits for it.
func TestSlowChatMessageHoldsTheBudgetUntilItsAnswer(t *testing.T) {
	f := newFixture(t)
	const lag = 2 * time.Second
	c, err := NewChatService(ChatConfig{Helix: f.helixThrough(t, newLagged(f.clock, "/helix/chat/messages", 1, lag)),
		Pub: f.pub, Claims: f.claims, Budgets: store.NewSendBudgets(f.fs),
		Topics:    Topics{Finalize: event.TopicFinalize, Whisper: event.TopicWhisper, Egress: egressTopic},
		BotUserID: botID, Owner: "i1", Now: f.clock.Now, Log: slog.New(slog.DiscardHandler),
		// No waiting: a full budget shows as the RateLimited error Pub/Sub retries.
		MaxWait: time.Nanosecond})
	if err != nil {
		t.Fatal(err)
	}
	t0 := f.clock.Now()
	send := func(i int) error {
		return c.Handle(context.Background(), message(t, chatEvent(fmt.Sprint("cid-slow-chat-", i), fmt.Sprint("slow ", i)), egressTopic))
	}
	for i := range ChatPerWindow {
		if err := send(i); err != nil {
			t.Fatalf("message %d: %v", i, err)
		}
	}
	f.clock.Advance(ChatWindow + 500*time.Millisecond - lag) // t0 + 30.5 s
	err = send(ChatPerWindow)
	if v := f.fake.ChatBudgetViolations(); v != 0 {
		t.Fatalf("%d messages past Twitch's %d per %s (the 21st arrived 28.5 s after the first)", v, ChatPerWindow, ChatWindow)
	}
	if fault.CodeOf(err, "") != CodeChatRateLimit {
		t.Fatalf("the 21st message: %v, want %s", err, CodeChatRateLimit)
	}
	if at := fault.RetryAfter(err, t0); at != ChatWindow+lag {
		t.Errorf("retry %s after the first was reserved, want %s", at, ChatWindow+lag)
	}
	f.clock.Advance(lag - 500*time.Millisecond)
	if err := send(ChatPerWindow); err != nil {
		t.Fatal(err)
	}
	if got, v := f.sentChats(), f.fake.ChatBudgetViolations(); got != ChatPerWindow+1 || v != 0 {
		t.Fatalf("%d sent, %d violations; want %d and 0", got, v, ChatPerWindow+1)
	}
}
