package egress

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/bitbrat/twitch-edge/functions/trigger"
	"github.com/bitbrat/twitch-edge/shared/emulators"
	"github.com/bitbrat/twitch-edge/shared/event"
	"github.com/bitbrat/twitch-edge/shared/fault"
	"github.com/bitbrat/twitch-edge/shared/store"
	"github.com/bitbrat/twitch-edge/shared/twitch/twitchtest"
)

// secondWhisperInstance is another EgressWhisper instance: its own Firestore client
// on the same database, its own claims, budgets and recipient record.
func (f *fixture) secondWhisperInstance(t *testing.T) *WhisperService {
	t.Helper()
	fs, err := store.NewClient(context.Background(), f.project, "", store.WithEmulator(emulators.Host(emulators.Firestore)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { fs.Close() })
	w, err := NewWhisperService(WhisperConfig{Helix: f.helix, Pub: f.pub,
		Claims:     store.NewClaims(fs, store.CollectionDeliveries, 7*24*time.Hour, f.clock.Now),
		Recipients: store.NewWhisperRecipients(fs), Budgets: store.NewSendBudgets(fs),
		Topics:    Topics{Finalize: event.TopicFinalize, Whisper: event.TopicWhisper, Egress: egressTopic},
		BotUserID: botID, Owner: "instance-2", Now: f.clock.Now, Log: slog.New(slog.DiscardHandler),
		// No waiting: a full budget shows as the RateLimited error Pub/Sub retries.
		MaxWait: time.Nanosecond})
	if err != nil {
		t.Fatal(err)
	}
	return w
}

// Two instances (a deploy overlap) whispering six users in the same instant share
// Twitch's 3 per second: three go out, three are retried a second later, Twitch
// answers no 429.
func TestWhisperBudgetHoldsAcrossInstances(t *testing.T) {
	f := newFixture(t)
	instances := []*WhisperService{f.secondWhisperInstance(t), f.secondWhisperInstance(t)}
	msgs := make([]trigger.Message, 6)
	for i := range msgs {
		id := fmt.Sprint(7000 + i)
		f.fake.AddUser(twitchtest.User{ID: id, Login: "burst" + id})
		msgs[i] = whisperMessage(t, dmEvent("cid-overlap-"+id, id, "hi "+id))
	}
	start := f.clock.Now()
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		retried []int
	)
	for i, m := range msgs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := instances[i%2].Handle(context.Background(), m)
			if err == nil {
				return
			}
			if fault.CodeOf(err, "") != CodeLocalRateLimit || !fault.Retryable(err) {
				t.Errorf("whisper %d: %v", i, err)
				return
			}
			// A second after the three sent answered (at once on this clock), or, if
			// they were still on the way, the margin later.
			if at := fault.RetryAfter(err, start); at != time.Second && at != WhisperSecond {
				t.Errorf("whisper %d: retry after %s, want 1s or %s", i, at, WhisperSecond)
			}
			mu.Lock()
			retried = append(retried, i)
			mu.Unlock()
		}()
	}
	wg.Wait()
	if n := len(f.fake.Whispers()); n != WhispersPerSecond || len(retried) != 6-WhispersPerSecond {
		t.Fatalf("%d whispers in one second, %d retried; want %d and %d", n, len(retried), WhispersPerSecond, 6-WhispersPerSecond)
	}
	if n := len(f.whisperRequests()); n != WhispersPerSecond {
		t.Fatalf("%d whisper requests reached Twitch, want %d (no 429)", n, WhispersPerSecond)
	}
	f.clock.Advance(WhisperSecond) // Pub/Sub redelivers
	for _, i := range retried {
		if err := instances[(i+1)%2].Handle(context.Background(), msgs[i]); err != nil {
			t.Fatalf("redelivery of %d: %v", i, err)
		}
	}
	if n := len(f.fake.Whispers()); n != 6 || len(f.whisperRequests()) != 6 {
		t.Fatalf("%d whispers from %d requests, want 6 and 6", n, len(f.whisperRequests()))
	}
	if fins := f.pub.finalizes(t); len(fins) != 6 {
		t.Fatalf("%d finalizes, want 6", len(fins))
	}
}
