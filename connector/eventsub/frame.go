package eventsub

import (
	"encoding/json"
	"time"

	"github.com/bitbrat/twitch-edge/shared/twitch"
)

// Frame is one raw WebSocket frame with the little the socket's goroutine needs to
// read from it: the metadata.
type Frame struct {
	// Data is the frame exactly as Twitch sent it; it is forwarded unchanged.
	Data []byte
	twitch.Metadata
	// Received is when the connector read the frame (for latency metrics).
	Received time.Time
}

// ParseFrame reads a frame's metadata, with twitch.ParseMetadata's scanner that
// decodes nothing else (this runs on the socket's goroutine for every frame).
// Errors are fault.Invalid.
func ParseFrame(data []byte, received time.Time) (Frame, error) {
	md, err := twitch.ParseMetadata(data)
	if err != nil {
		return Frame{}, err
	}
	return Frame{Data: data, Metadata: md, Received: received}, nil
}

// BroadcasterID returns payload.subscription.condition.broadcaster_user_id of a
// notification frame, or "" (the relay's workers call it, off the socket's goroutine).
func BroadcasterID(data []byte) string {
	var h struct {
		Payload struct {
			Subscription struct {
				Condition struct {
					BroadcasterUserID string `json:"broadcaster_user_id"`
				} `json:"condition"`
			} `json:"subscription"`
		} `json:"payload"`
	}
	if json.Unmarshal(data, &h) != nil {
		return ""
	}
	return h.Payload.Subscription.Condition.BroadcasterUserID
}
