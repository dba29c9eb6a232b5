package bus

import (
	"context"
	"fmt"
	"time"

	"cloud.google.com/go/pubsub/v2"
	"github.com/google/uuid"
)

// SentinelAttr marks the message CollectUntilSentinel publishes behind the others.
const SentinelAttr = "sentinel"

// CollectUntilSentinel publishes a sentinel to topic behind everything already
// published there and pulls sub until the sentinel and at least want other messages
// have arrived (the emulator need not deliver in publish order), or more than want
// have: then the caller sees the extra ones. Each pull waits at most patience for
// its first message. Tests use it to collect "everything so far" without guessing
// at a quiet period.
func CollectUntilSentinel(ctx context.Context, pub *Publisher, client *pubsub.Client, topic, sub string, want int, patience time.Duration) ([]Received, error) {
	sentinel := "sentinel-" + uuid.NewString()
	if _, err := pub.Publish(ctx, topic, []byte(sentinel), map[string]string{SentinelAttr: "1"}); err != nil {
		return nil, fmt.Errorf("publish the sentinel to %s: %w", topic, err)
	}
	var out []Received
	seen := false
	for !seen || len(out) < want {
		got, err := CollectFor(ctx, client, sub, want+1-len(out), patience, 2*time.Second)
		if err != nil {
			return out, err
		}
		if len(got) == 0 {
			return out, fmt.Errorf("waited %s on %s: sentinel seen %v, %d of %d messages", patience, sub, seen, len(out), want)
		}
		for _, m := range got {
			if string(m.Data) == sentinel {
				seen = true
				continue
			}
			out = append(out, m)
		}
		if len(out) > want {
			break
		}
	}
	return out, nil
}
