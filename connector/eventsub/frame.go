package eventsub

import (
	"time"

	"github.com/bitbrat/twitch-edge/shared/twitch"
)

// Frame is one raw WebSocket frame with the little the socket's goroutine needs to
// read from it: the metadata and the subscription's broadcaster.
type Frame struct {
	// Data is the frame exactly as Twitch sent it; it is forwarded unchanged.
	Data []byte
	twitch.FrameHeader
	// Received is when the connector read the frame (for latency metrics).
	Received time.Time
	// Overlap: read while another instance may forward the same events under other
	// message ids (a hand-off); published with event.AttrEventSubOverlap.
	Overlap bool
}

// ParseFrame reads a frame's metadata and broadcaster in one pass, with
// twitch.ParseFrameHeader's scanner that decodes nothing else (this runs on the
// socket's goroutine for every frame). Errors are fault.Invalid.
func ParseFrame(data []byte, received time.Time) (Frame, error) {
	h, err := twitch.ParseFrameHeader(data)
	if err != nil {
		return Frame{}, err
	}
	return Frame{Data: data, FrameHeader: h, Received: received}, nil
}
