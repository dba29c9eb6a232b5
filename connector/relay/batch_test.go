package relay

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/bitbrat/twitch-edge/connector/metrics"
	"github.com/bitbrat/twitch-edge/shared/bus"
	"github.com/bitbrat/twitch-edge/shared/emulators"
	"github.com/bitbrat/twitch-edge/shared/event"
)

func TestMain(m *testing.M) { os.Exit(emulators.RunTests(m, emulators.PubSub)) }

// With the real publisher, and wrapped by the connector's ingress counter as in
// production, the relay publishes batches itself; every frame arrives once, none is
// left over (the counter used to hide the batching method, so
// the connector ran 256 goroutines each waiting for one publish).
func TestRelayBatchesPublishesEachFrameOnce(t *testing.T) {
	ctx := context.Background()
	ps, err := bus.NewClient(ctx, emulators.ProjectID(t), bus.WithEmulator(emulators.Host(emulators.PubSub)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ps.Close() })
	if err := bus.EnsureTopics(ctx, ps, "raw"); err != nil {
		t.Fatal(err)
	}
	if err := bus.EnsureSubscription(ctx, ps, bus.SubscriptionSpec{Name: "raw-watch", Topic: "raw"}); err != nil {
		t.Fatal(err)
	}
	bp := bus.NewPublisher(ps, nil)
	t.Cleanup(bp.Close)
	reg := metrics.New()
	pub := metrics.CountIngress(bp, reg)
	if _, ok := pub.(BatchPublisher); !ok {
		t.Fatalf("CountIngress(*bus.Publisher) is a %T, not a BatchPublisher: the relay would not batch", pub)
	}
	r := New(pub, Options{Topic: "raw", Workers: 2, BatchCount: 50, Registry: reg})
	const n = 1000
	for i := range n {
		if err := r.Forward(ctx, frame(i)); err != nil {
			t.Fatal(err)
		}
	}
	cctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if err := r.Close(cctx); err != nil {
		t.Fatal(err)
	}
	if r.Published() != n {
		t.Fatalf("published %d, want %d", r.Published(), n)
	}
	got, err := bus.CollectFor(ctx, ps, "raw-watch", n+1, time.Minute, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]int{}
	for _, m := range got {
		seen[m.Attributes[event.AttrEventSubMessageID]]++
	}
	if len(got) != n || len(seen) != n {
		t.Fatalf("received %d messages, %d distinct; want %d once each", len(got), len(seen), n)
	}
}
