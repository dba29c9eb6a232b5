package functions

import (
	"context"
	"encoding/json"
	"time"

	"github.com/bitbrat/twitch-edge/shared/twitch"
)

// With EGRESS_WHISPER_SEEN_WITHIN set, EgressWhisper whispers only users seen on
// internal.ingress.v1 within that window. Normalize is what publishes there, so its
// publisher records the userId of every event it publishes to the ingress topic
// (store.SeenUsers) — here, in the wiring, so that Normalize itself stays unaware.

// seenMarker records users (*store.SeenUsers).
type seenMarker interface {
	Mark(ctx context.Context, userID string, at time.Time) error
}

// seenPublisher is Normalize's publisher when the setting is on.
type seenPublisher struct {
	next interface {
		Publish(ctx context.Context, topic string, data []byte, attrs map[string]string) (string, error)
	}
	ingress string
	seen    seenMarker
	now     func() time.Time
}

// Publish records the event's userId (when it has a Twitch user id) and publishes. The
// mark goes first: an event on the topic whose user was not recorded would make a
// legitimate reply fail, while a recorded user whose event was not published (the
// publish failed and will be retried) is harmless.
func (p seenPublisher) Publish(ctx context.Context, topic string, data []byte, attrs map[string]string) (string, error) {
	if topic == p.ingress {
		var e struct {
			UserID string `json:"userId"`
		}
		if json.Unmarshal(data, &e) == nil && twitch.IsUserID(e.UserID) {
			if err := p.seen.Mark(ctx, e.UserID, p.now()); err != nil {
				return "", err
			}
		}
	}
	return p.next.Publish(ctx, topic, data, attrs)
}
