package load

import (
	"context"
	"fmt"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/bitbrat/twitch-edge/connector/eventsub"
	"github.com/bitbrat/twitch-edge/connector/relay"
	"github.com/bitbrat/twitch-edge/shared/bus"
)

// BenchmarkRelayToEmulator is the connector's publishing side alone: frames forwarded
// into the relay as fast as it takes them, published to the Pub/Sub emulator (a topic
// without subscriptions: the emulator acknowledges and discards), by number of
// publishing mode. cpu-ns/op is the process's CPU time per message (the relay and
// the Pub/Sub client, not the emulator), which moves far less with the machine's
// load than ns/op. It needs PUBSUB_EMULATOR_HOST (make bench sets it).
func BenchmarkRelayToEmulator(b *testing.B) {
	if os.Getenv("PUBSUB_EMULATOR_HOST") == "" {
		b.Skip("needs PUBSUB_EMULATOR_HOST: run under go run ./infra/cmd/withemulators (make bench does)")
	}
	now := time.Now()
	frames := make([]eventsub.Frame, 1024)
	for i := range frames {
		raw := []byte(fmt.Sprintf(`{"metadata":{"message_id":"%08d-d79d-478f-86b9-120f112b044e","message_type":"notification","message_timestamp":"%s","subscription_type":"channel.follow","subscription_version":"2"},"payload":{"subscription":{"id":"f1c2a387-161a-49f9-a165-0f21d7a4e1c4","status":"enabled","type":"channel.follow","version":"2","cost":0,"condition":{"broadcaster_user_id":"1337","moderator_user_id":"1337"},"transport":{"method":"websocket","session_id":"AQoQexAWVYKSTIu4ec_2VAxyuhAB"},"created_at":"2026-11-22T00:00:00.464757833Z"},"event":{"user_id":"1234","user_login":"cool_user","user_name":"Cool_User","broadcaster_user_id":"1337","broadcaster_user_login":"cooler_user","broadcaster_user_name":"Cooler_User","followed_at":"2026-11-22T00:00:00.17106713Z"}}}`,
			i, now.UTC().Format(time.RFC3339Nano)))
		f, err := eventsub.ParseFrame(raw, now)
		if err != nil {
			b.Fatal(err)
		}
		frames[i] = f
	}
	modes := []struct {
		name  string
		batch bool
		n     int
	}{
		// The relay's default with *bus.Publisher: 8 workers, one collecting a
		// batch (10 ms) while the others publish theirs, one request each.
		{"batch", true, 0},
		// One publish per goroutine, waiting for its acknowledgement, the client
		// batching them (what the connector ran before, its ingress counter hiding
		// the batching method).
		{"sync-workers=256", false, 256},
	}
	for _, mode := range modes {
		b.Run(mode.name, func(b *testing.B) {
			ctx := context.Background()
			ps, err := bus.NewClient(ctx, fmt.Sprintf("bench-relay-%d", time.Now().UnixNano()), bus.WithEmulator(os.Getenv("PUBSUB_EMULATOR_HOST")))
			if err != nil {
				b.Fatal(err)
			}
			defer ps.Close()
			const topic = "bench.raw"
			if err := bus.EnsureTopics(ctx, ps, topic); err != nil {
				b.Fatal(err)
			}
			bp := bus.NewPublisher(ps, nil)
			defer bp.Close()
			var pub relay.Publisher = bp
			if !mode.batch {
				pub = syncOnly{bp}
			}
			r := relay.New(pub, relay.Options{Topic: topic, Buffer: 10_000, Workers: mode.n})
			// Warm up the connection and the emulator.
			for i := 0; i < 2000; i++ {
				_ = r.Forward(ctx, frames[i%len(frames)])
			}
			for r.Published() < 2000 {
				time.Sleep(10 * time.Millisecond)
			}
			b.ResetTimer()
			begin, cpu0 := time.Now(), cpuTime()
			for i := 0; i < b.N; i++ {
				if err := r.Forward(ctx, frames[i%len(frames)]); err != nil {
					b.Fatal(err)
				}
			}
			cctx, cancel := context.WithTimeout(ctx, time.Minute)
			defer cancel()
			if err := r.Close(cctx); err != nil {
				b.Fatal(err)
			}
			b.StopTimer()
			b.ReportMetric(float64(b.N)/time.Since(begin).Seconds(), "msgs/s")
			b.ReportMetric(float64(cpuTime()-cpu0)/float64(b.N), "cpu-ns/op")
		})
	}
}

// syncOnly hides PublishBatch: the relay then runs one publish per worker.
type syncOnly struct{ p *bus.Publisher }

func (s syncOnly) Publish(ctx context.Context, topic string, data []byte, attrs map[string]string) (string, error) {
	return s.p.Publish(ctx, topic, data, attrs)
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
