package twitchtest_test

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"testing"

	"github.com/coder/websocket"

	"github.com/bitbrat/twitch-edge/shared/twitch"
	"github.com/bitbrat/twitch-edge/shared/twitch/twitchtest"
)

// collector is a shard's client that keeps every notification's message id, however
// many arrive (wsClient's buffer is for a handful).
type collector struct {
	mu  sync.Mutex
	ids []string
}

func collect(t *testing.T, f *twitchtest.Server, app, conduit, shard string) *collector {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), patience)
	defer cancel()
	c, _, err := websocket.Dial(ctx, f.EventSubWSURL(), &websocket.DialOptions{HTTPClient: httpc(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.CloseNow() })
	_, b, err := c.Read(ctx)
	if err != nil {
		t.Fatal(err)
	}
	m, err := twitch.DecodeMessage(b)
	if err != nil {
		t.Fatal(err)
	}
	s, _ := m.Session()
	if code, out := patchShard(t, f, app, conduit, shard, fmt.Sprintf(`{"method":"websocket","session_id":%q}`, s.ID)); code != http.StatusAccepted || len(out["errors"].([]any)) != 0 {
		t.Fatalf("patch shard %s: %d %v", shard, code, out)
	}
	col := &collector{}
	go func() {
		for {
			_, b, err := c.Read(context.Background())
			if err != nil {
				return
			}
			m, err := twitch.DecodeMessage(b)
			if err != nil {
				t.Errorf("undecodable frame: %v", err)
				return
			}
			if m.Metadata.MessageType == twitch.MessageTypeNotification {
				col.mu.Lock()
				col.ids = append(col.ids, m.Metadata.MessageID)
				col.mu.Unlock()
			}
		}
	}()
	return col
}

func (c *collector) received() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.ids...)
}

// TestConduitRoutingUnderShardLoss sends 10,000 notifications (40 broadcasters) over
// a conduit of 4 WebSocket shards and kills shard sockets half-way. The fake must do
// what Twitch documents: with one shard down every notification still arrives exactly
// once (the retry on another shard); with two down it loses exactly those whose target
// and retry shard were both down; with all down it loses everything.
func TestConduitRoutingUnderShardLoss(t *testing.T) {
	const total, killAt, broadcasters = 10000, 5000, 40
	cases := []struct {
		name   string
		killAt int
		kill   []string
		// concurrent kills from another goroutine while notifications are being
		// written, instead of between two of them.
		concurrent bool
	}{
		{"one shard killed mid-stream", killAt, []string{"2"}, true},
		{"two shards killed mid-stream", killAt, []string{"1", "2"}, false},
		{"every shard down", 0, []string{"0", "1", "2", "3"}, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := newFake(t, twitchtest.Options{})
			app := appToken(t, f)
			id := createConduit(t, f, app, 4)
			cols := map[string]*collector{}
			for i := 0; i < 4; i++ {
				cols[strconv.Itoa(i)] = collect(t, f, app, id, strconv.Itoa(i))
			}
			for b := 0; b < broadcasters; b++ {
				f.AddUser(twitchtest.User{ID: strconv.Itoa(6000 + b), Login: "caster" + strconv.Itoa(b)})
				conduitSub(t, f, app, id, strconv.Itoa(6000+b))
			}
			dead := map[string]bool{}
			killed := make(chan error, 1)
			if tc.concurrent {
				dead[tc.kill[0]] = true
				go func() {
					ctx, cancel := context.WithTimeout(context.Background(), patience)
					defer cancel()
					err := f.Wait(ctx, func() bool { return f.ConduitDeliveryCount() >= tc.killAt })
					if err == nil {
						err = f.KillShardSocket(id, tc.kill[0], 0)
					}
					killed <- err
				}()
			}
			for i := 0; i < total; i++ {
				// The kill lands somewhere in the next thousand notifications, while
				// they are written; the rest go out after it, whatever the scheduler.
				if i == tc.killAt+1000 && tc.concurrent {
					if err := <-killed; err != nil {
						t.Fatal(err)
					}
				}
				if i == tc.killAt && !tc.concurrent {
					for _, sh := range tc.kill {
						if err := f.KillShardSocket(id, sh, 0); err != nil {
							t.Fatal(err)
						}
						dead[sh] = true
					}
				}
				b := strconv.Itoa(6000 + i%broadcasters)
				if _, err := f.Notify(twitchtest.Notification{Type: "channel.update",
					Condition: map[string]string{"broadcaster_user_id": b}, Event: map[string]any{"n": i}}); err != nil {
					t.Fatal(err)
				}
			}

			recs := f.ConduitDeliveries()
			if len(recs) != total {
				t.Fatalf("%d routing records, want %d", len(recs), total)
			}
			delivered := map[string]string{} // message id → shard
			target := map[string]string{}    // subscription → shard
			lost, retried, predicted := 0, 0, 0
			for i, r := range recs {
				if prev, ok := target[r.SubscriptionID]; ok && prev != r.Target {
					t.Fatalf("subscription %s targeted shards %s and %s: not stable per broadcaster", r.SubscriptionID, prev, r.Target)
				}
				target[r.SubscriptionID] = r.Target
				bothDown := i >= tc.killAt && dead[r.Target] && dead[r.Retry] && !tc.concurrent
				if bothDown {
					predicted++
				}
				if r.Lost != bothDown {
					t.Fatalf("record %d %+v: lost=%v, but target and retry both down=%v", i, r, r.Lost, bothDown)
				}
				if r.Lost {
					lost++
					continue
				}
				if r.DeliveredTo == r.Retry {
					retried++
				}
				delivered[r.MessageID] = r.DeliveredTo
			}
			// Every notification the fake counts as delivered reached that shard's
			// client, exactly once overall.
			waitFor(t, f, "clients to read every delivered notification", func() bool {
				n := 0
				for _, c := range cols {
					n += len(c.received())
				}
				return n >= len(delivered)
			})
			seen := map[string]bool{}
			for sh, c := range cols {
				for _, mid := range c.received() {
					if seen[mid] {
						t.Fatalf("message %s delivered twice", mid)
					}
					seen[mid] = true
					if delivered[mid] != sh {
						t.Fatalf("message %s arrived on shard %s, recorded on %q", mid, sh, delivered[mid])
					}
				}
			}
			if len(seen) != len(delivered) {
				t.Fatalf("clients got %d, fake delivered %d", len(seen), len(delivered))
			}
			switch len(tc.kill) {
			case 1:
				if lost != 0 || retried == 0 {
					t.Errorf("one shard down: lost %d, retried %d; want 0 lost and some retried", lost, retried)
				}
			case 2:
				if lost == 0 || lost != predicted {
					t.Errorf("two shards down: lost %d, predicted %d", lost, predicted)
				}
			case 4:
				if lost != total {
					t.Errorf("every shard down: lost %d of %d", lost, total)
				}
			}
			t.Logf("%s: %d delivered (%d on the retry shard), %d lost", tc.name, len(delivered), retried, lost)
		})
	}
}
