// Package relay moves notification frames from the EventSub socket to Pub/Sub
// through a bounded buffer. Forward never blocks while the buffer has room, so the
// socket is read at full speed; when Pub/Sub is slow or down the buffer absorbs it,
// and a publish that fails is retried (with capped backoff) until it succeeds or the
// process stops. When the buffer is full, Forward blocks — backpressure — and says
// so loudly: nothing Twitch delivered is dropped while the process lives.
package relay

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bitbrat/twitch-edge/connector/eventsub"
	"github.com/bitbrat/twitch-edge/connector/metrics"
	"github.com/bitbrat/twitch-edge/shared/event"
	"github.com/bitbrat/twitch-edge/shared/fault"
)

// Publisher publishes one message and waits for the acknowledgement
// (*bus.Publisher).
type Publisher interface {
	Publish(ctx context.Context, topic string, data []byte, attrs map[string]string) (string, error)
}

// Recorder remembers forwarded message ids across restarts (the Firestore ledger).
// It is called after each publish is acknowledged and must not block for long.
type Recorder interface {
	Forwarded(messageID string, at time.Time)
}

// Options configure a Relay.
type Options struct {
	Topic string
	// Buffer is how many frames wait for publishing (default 10,000).
	Buffer int
	// Workers publish concurrently (default 256); the Pub/Sub client batches them.
	// Each waits for its acknowledgement, so throughput is at most Workers divided
	// by the publish latency (64 workers capped it near 4,900/s on the emulator).
	Workers int
	// MaxBackoff caps the wait between publish retries (default 5 s).
	MaxBackoff time.Duration
	Recorder   Recorder
	Log        *slog.Logger
	Registry   *metrics.Registry
	Now        func() time.Time
}

// Relay is the buffer and its publishing workers.
type Relay struct {
	o   Options
	pub Publisher
	buf chan eventsub.Frame

	published *metrics.Counter
	retries   *metrics.Counter
	fullWaits *metrics.Counter
	depth     *metrics.Gauge
	latency   *metrics.Histogram

	workers     sync.WaitGroup
	closing     chan struct{} // closed by Close: workers drain the buffer and exit
	closeOnce   sync.Once
	ctx         context.Context // cancelled at Close's deadline: retries stop
	cancel      context.CancelFunc
	unpublished atomic.Int64

	mu       sync.Mutex
	lastWarn time.Time
}

// New returns a started Relay.
func New(pub Publisher, o Options) *Relay {
	if o.Buffer == 0 {
		o.Buffer = 10_000
	}
	if o.Workers == 0 {
		o.Workers = 256
	}
	if o.MaxBackoff == 0 {
		o.MaxBackoff = 5 * time.Second
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.Registry == nil {
		o.Registry = metrics.New()
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &Relay{
		o: o, pub: pub, buf: make(chan eventsub.Frame, o.Buffer), closing: make(chan struct{}),
		ctx: ctx, cancel: cancel,
		published: o.Registry.Counter("relay_published_total", "Notifications published to the raw topic."),
		retries:   o.Registry.Counter("relay_publish_retries_total", "Publish attempts that failed and were retried."),
		fullWaits: o.Registry.Counter("relay_buffer_full_total", "Times Forward waited because the buffer was full."),
		depth:     o.Registry.Gauge("relay_buffer_depth", "Frames waiting to be published."),
		latency:   o.Registry.Histogram("relay_frame_to_publish_seconds", "From frame read to publish acknowledged.", metrics.LatencyBuckets),
	}
	for i := 0; i < o.Workers; i++ {
		r.workers.Add(1)
		go r.work()
	}
	return r
}

// ErrClosed is returned by Forward after Close.
var ErrClosed = errors.New("relay closed")

// Forward queues a frame for publishing. It returns at once while the buffer has
// room; when it is full it logs (at most every 5 s) and waits. Stop the producer
// before calling Close: a frame forwarded after Close is refused with ErrClosed.
func (r *Relay) Forward(ctx context.Context, f eventsub.Frame) error {
	select {
	case <-r.closing:
		return ErrClosed
	default:
	}
	select {
	case r.buf <- f:
		r.depth.Add(1)
		return nil
	default:
	}
	r.fullWaits.Inc()
	r.warnFull()
	select {
	case r.buf <- f:
		r.depth.Add(1)
		return nil
	case <-r.closing:
		return ErrClosed
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (r *Relay) warnFull() {
	r.mu.Lock()
	defer r.mu.Unlock()
	now := r.o.Now()
	if now.Sub(r.lastWarn) < 5*time.Second {
		return
	}
	r.lastWarn = now
	r.o.Log.Error("relay: buffer full, reading the EventSub socket is paused until Pub/Sub catches up",
		"buffer", r.o.Buffer, "topic", r.o.Topic)
}

// Attributes are the Pub/Sub attributes of a raw notification (shared/event names
// them); the broadcaster comes from the frame's header scan, not a second decode.
func Attributes(f eventsub.Frame) map[string]string {
	a := make(map[string]string, 6)
	a[event.AttrEventSubMessageID] = f.MessageID
	a[event.AttrEventSubMessageType] = f.MessageType
	a[event.AttrEventSubSubscriptionType] = f.SubscriptionType
	a[event.AttrEventSubSubscriptionVersion] = f.SubscriptionVersion
	a[event.AttrEventSubMessageTimestamp] = f.MessageTimestamp.UTC().Format(time.RFC3339Nano)
	if f.BroadcasterUserID != "" {
		a[event.AttrEventSubBroadcasterID] = f.BroadcasterUserID
	}
	return a
}

func (r *Relay) work() {
	defer r.workers.Done()
	for {
		select {
		case f := <-r.buf:
			r.depth.Add(-1)
			r.publish(f)
		case <-r.closing:
			for { // drain what is buffered, then stop
				select {
				case f := <-r.buf:
					r.depth.Add(-1)
					r.publish(f)
				default:
					return
				}
			}
		}
	}
}

// publish retries until the message is acknowledged or Close's deadline passes.
func (r *Relay) publish(f eventsub.Frame) {
	attrs := Attributes(f)
	wait := 100 * time.Millisecond
	for attempt := 1; ; attempt++ {
		_, err := r.pub.Publish(r.ctx, r.o.Topic, f.Data, attrs)
		if err == nil {
			r.published.Inc()
			r.latency.Observe(r.o.Now().Sub(f.Received))
			if r.o.Recorder != nil {
				r.o.Recorder.Forwarded(f.MessageID, f.MessageTimestamp)
			}
			return
		}
		if r.ctx.Err() != nil {
			r.unpublished.Add(1)
			r.o.Log.Error("relay: shutting down with a notification unpublished", "eventsubMessageId", f.MessageID,
				"error", err.Error())
			return
		}
		r.retries.Inc()
		if attempt == 1 || attempt%10 == 0 {
			r.o.Log.Warn("relay: publish failed, retrying", "eventsubMessageId", f.MessageID, "attempt", attempt,
				"code", fault.CodeOf(err, "UNKNOWN"), "error", err.Error())
		}
		select {
		case <-time.After(wait):
		case <-r.ctx.Done():
		}
		wait = min(wait*2, r.o.MaxBackoff)
	}
}

// Depth returns how many frames wait in the buffer.
func (r *Relay) Depth() int { return len(r.buf) }

// Latency is the frame-to-publish histogram (for load reports).
func (r *Relay) Latency() *metrics.Histogram { return r.latency }

// Close stops accepting frames and publishes what is buffered, giving up at ctx's
// deadline. It reports how many frames were left unpublished.
func (r *Relay) Close(ctx context.Context) error {
	r.closeOnce.Do(func() { close(r.closing) })
	done := make(chan struct{})
	go func() { r.workers.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		r.cancel() // in-flight retries give up; the rest of the buffer is counted
		<-done
	}
	r.cancel()
	if n := r.unpublished.Load(); n > 0 {
		return fmt.Errorf("relay: flush deadline passed with %d notifications unpublished", n)
	}
	return nil
}

// Published returns how many notifications were published.
func (r *Relay) Published() uint64 { return r.published.Value() }
