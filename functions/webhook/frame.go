package webhook

import (
	"encoding/json"

	"github.com/bitbrat/twitch-edge/shared/twitch"
)

// Frame turns a webhook notification into the frame the connector forwards from the
// WebSocket: {"metadata": {...}, "payload": <body>}. The WebSocket frame carries the
// metadata that the webhook transport sends as headers, and its payload is exactly
// the webhook body, so Normalize reads both transports alike.
func Frame(m *Message) ([]byte, error) {
	md, err := json.Marshal(twitch.Metadata{
		MessageID: m.ID, MessageType: m.Type, MessageTimestamp: m.Timestamp,
		SubscriptionType: m.SubscriptionType, SubscriptionVersion: m.SubscriptionVersion,
	})
	if err != nil {
		return nil, err
	}
	b := make([]byte, 0, len(md)+len(m.Body)+32)
	b = append(b, `{"metadata":`...)
	b = append(b, md...)
	b = append(b, `,"payload":`...)
	b = append(b, m.Body...)
	b = append(b, '}')
	return b, nil
}

// Attributes are the Pub/Sub attributes the connector's relay puts on a raw
// notification (the keys of shared/event), read from the frame as the relay reads
// them (broadcaster from payload.subscription.condition).
func Attributes(frame []byte) (map[string]string, error) {
	h, err := twitch.ParseFrameHeader(frame)
	if err != nil {
		return nil, err
	}
	return h.RawAttributes(), nil
}
