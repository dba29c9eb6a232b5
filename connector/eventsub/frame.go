package eventsub

import (
	"encoding/json"
	"time"

	"github.com/bitbrat/twitch-edge/shared/fault"
	"github.com/bitbrat/twitch-edge/shared/twitch"
)

// Frame is one raw WebSocket frame with the little the connector needs to read from
// it: the metadata and, for notifications, the broadcaster the event is about.
type Frame struct {
	// Data is the frame exactly as Twitch sent it; it is forwarded unchanged.
	Data []byte
	twitch.Metadata
	// BroadcasterID is payload.subscription.condition.broadcaster_user_id, if any.
	BroadcasterID string
	// Received is when the connector read the frame (for latency metrics).
	Received time.Time
}

// header is the part of a frame decoded on the hot path: one pass, no payload
// decode beyond the broadcaster id.
type header struct {
	Metadata twitch.Metadata `json:"metadata"`
	Payload  struct {
		Subscription struct {
			Condition struct {
				BroadcasterUserID string `json:"broadcaster_user_id"`
			} `json:"condition"`
		} `json:"subscription"`
	} `json:"payload"`
}

// ParseFrame reads a frame's header. Errors are fault.Invalid.
func ParseFrame(data []byte, received time.Time) (Frame, error) {
	var h header
	if err := json.Unmarshal(data, &h); err != nil {
		return Frame{}, fault.Wrap(fault.Invalid, "EVENTSUB_BAD_FRAME", err, "decode eventsub frame header")
	}
	if h.Metadata.MessageType == "" || h.Metadata.MessageID == "" {
		return Frame{}, fault.New(fault.Invalid, "EVENTSUB_BAD_FRAME", "frame without metadata.message_type or message_id")
	}
	return Frame{
		Data:          data,
		Metadata:      h.Metadata,
		BroadcasterID: h.Payload.Subscription.Condition.BroadcasterUserID,
		Received:      received,
	}, nil
}
