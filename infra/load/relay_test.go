package load

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/bitbrat/twitch-edge/connector/eventsub"
	"github.com/bitbrat/twitch-edge/connector/relay"
	"github.com/bitbrat/twitch-edge/shared/bus"
)

// BenchmarkRelayToEmulator is the connector's publishing side alone: frames forwarded
// into the relay as fast as it takes them, published to the Pub/Sub emulator (a topic
// without subscriptions: the emulator acknowledges and discards), by number of
// publishing workers. Each worker waits for its message's acknowledgement, so the
// relay's throughput is at most workers / acknowledgement latency (Little's law):
// with the connector's 64 workers and the client's 10 ms batching delay, about
// 5,000/s, whatever the CPU. It needs PUBSUB_EMULATOR_HOST (make bench sets it).
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
	for _, workers := range []int{64, 256} {
		b.Run(fmt.Sprintf("workers=%d", workers), func(b *testing.B) {
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
			pub := bus.NewPublisher(ps, nil)
			defer pub.Close()
			r := relay.New(pub, relay.Options{Topic: topic, Buffer: 10_000, Workers: workers})
			// Warm up the connection and the emulator.
			for i := 0; i < 2000; i++ {
				_ = r.Forward(ctx, frames[i%len(frames)])
			}
			for r.Published() < 2000 {
				time.Sleep(10 * time.Millisecond)
			}
			b.ResetTimer()
			begin := time.Now()
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
		})
	}
}
