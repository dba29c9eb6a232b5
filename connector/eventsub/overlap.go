package eventsub

import (
	"sync/atomic"

	"github.com/bitbrat/twitch-edge/shared/event"
)

// Overlap marks the frames a session forwards while another instance may hold a
// session with the same subscriptions: during a make-before-break hand-off between
// two connector instances. Twitch gives each session's subscription its own
// message_id, so the two copies of one event differ in message_id; the mark tells
// Normalize to judge these frames by their content instead (see
// functions/normalize/overlap.go). Outside a hand-off nothing is marked, so the
// ordinary path stays one claim per message id.
type Overlap struct{ on atomic.Bool }

// Set turns marking on or off.
func (o *Overlap) Set(on bool) {
	if o != nil {
		o.on.Store(on)
	}
}

// Active reports whether frames are marked now (a nil Overlap never marks).
func (o *Overlap) Active() bool { return o != nil && o.on.Load() }

// RawAttributes are the raw topic's attributes of the frame (twitch.FrameHeader's),
// plus the overlap mark when the frame was read during a hand-off. It shadows the
// embedded header's method, so the relay publishes the mark without knowing of it.
func (f Frame) RawAttributes() map[string]string {
	a := f.FrameHeader.RawAttributes()
	if f.Overlap {
		a[event.AttrEventSubOverlap] = "1"
	}
	return a
}
