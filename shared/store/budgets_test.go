package store

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/bitbrat/twitch-edge/shared/emulators"
)

// Two instances reserving from the same budget at the same instant share it: no
// more than the window's Max succeed, and each refusal names when a slot frees.
func TestSendBudgetsHoldAcrossInstances(t *testing.T) {
	ctx := context.Background()
	project := emulators.ProjectID(t)
	var instances []*SendBudgets
	for range 2 { // two instances: two clients on the same database
		c, err := NewClient(ctx, project, "", WithEmulator(emulators.Host(emulators.Firestore)))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		instances = append(instances, NewSendBudgets(c))
	}
	windows := []Window{{time.Second, 3}, {time.Minute, 100}}
	now := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)
	var (
		wg        sync.WaitGroup
		mu        sync.Mutex
		ok        int
		retryAtOf []time.Time
	)
	for i := 0; i < 6; i++ {
		wg.Add(1)
		go func(b *SendBudgets) {
			defer wg.Done()
			got, at, err := reserveAt(ctx, b, "whisper:900", now, windows)
			if err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			defer mu.Unlock()
			if got {
				ok++
			} else {
				retryAtOf = append(retryAtOf, at)
			}
		}(instances[i%2])
	}
	wg.Wait()
	if ok != 3 {
		t.Fatalf("%d of 6 concurrent reservations succeeded, want 3", ok)
	}
	for _, at := range retryAtOf {
		if !at.Equal(now.Add(time.Second)) {
			t.Errorf("retry at %v, want %v", at, now.Add(time.Second))
		}
	}
	// The minute window (10 here, to keep the test short): sends spread over the
	// minute, then a refusal until the first leaves it.
	windows = []Window{{time.Second, 3}, {time.Minute, 10}}
	key, at := "whisper:901", now
	for i := 0; i < 10; i++ {
		got, retry, err := reserveAt(ctx, instances[i%2], key, at, windows)
		if err != nil || !got {
			t.Fatalf("send %d at %v refused until %v (%v)", i, at, retry, err)
		}
		at = at.Add(5 * time.Second)
	}
	got, retry, err := reserveAt(ctx, instances[0], key, at, windows)
	if err != nil || got || !retry.Equal(now.Add(time.Minute)) {
		t.Fatalf("11th send: ok=%t retry=%v err=%v, want refused until %v", got, retry, err, now.Add(time.Minute))
	}
	if got, _, _ := reserveAt(ctx, instances[1], key, now.Add(time.Minute), windows); !got {
		t.Fatal("refused once the first send left the window")
	}
	// Independent keys do not share.
	if got, _, _ := reserveAt(ctx, instances[0], "chat:900:1001", now, []Window{{30 * time.Second, 1}}); !got {
		t.Fatal("a fresh key was refused")
	}
}

// reserveAt reserves a slot of key at the fixed time now, counting every send at its
// reservation (no arrival lag).
func reserveAt(ctx context.Context, b *SendBudgets, key string, now time.Time, windows []Window) (bool, time.Time, error) {
	_, ok, retryAt, err := b.Reserve(ctx, Budget{Key: key, Windows: windows}, func() time.Time { return now })
	return ok, retryAt, err
}
