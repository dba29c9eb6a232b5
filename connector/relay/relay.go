// Package relay moves notification frames from the EventSub socket to Pub/Sub.
// Forward never waits for Pub/Sub, so the socket is always read and Twitch's pings
// answered: frames queue in memory up to a byte budget (MaxBytes) and past it are
// spilled durably (Firestore, in batches) and replayed in order when Pub/Sub is back.
// A publish that fails is retried (with capped backoff) until it succeeds; at Close
// what cannot be published by the deadline is spilled for the next instance. Only
// when the spill cannot keep up either (Firestore down too) does Forward wait, and it
// says so loudly.
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
	"github.com/bitbrat/twitch-edge/shared/bus"
	"github.com/bitbrat/twitch-edge/shared/fault"
)

// Publisher publishes one message and waits for the acknowledgement
// (*bus.Publisher).
type Publisher interface {
	Publish(ctx context.Context, topic string, data []byte, attrs map[string]string) (string, error)
}

// Options configure a Relay.
type Options struct {
	Topic string
	// Buffer is how many frames wait for publishing (default 10,000).
	Buffer int
	// Workers publish concurrently (default 256; 8 with a BatchPublisher). Without
	// one the Pub/Sub client batches their publishes, and a worker waits for each
	// acknowledgement, so throughput is at most Workers divided by the publish
	// latency (64 workers capped it near 4,900/s on the emulator). With one, each
	// worker publishes a batch per request: up to Workers requests in flight.
	Workers int
	// BatchDelay is how long a batch waits for more frames after its first
	// (default 10 ms, the Pub/Sub client's own DelayThreshold): the latency the
	// relay adds for fewer requests. BatchCount (default 1,000, Pub/Sub's limit per
	// request) and BatchBytes (default 1 MB, the client's ByteThreshold) send a
	// batch sooner. With a BatchPublisher only.
	BatchDelay time.Duration
	BatchCount int
	BatchBytes int
	// MaxBackoff caps the wait between publish retries (default 5 s).
	MaxBackoff time.Duration
	// DeadLetterTopic receives what Pub/Sub refuses for good on Topic, with the
	// reason; empty: such a notification is logged and dropped.
	DeadLetterTopic string
	// MaxBytes bounds the frames held in memory for publishing (default 64 MiB);
	// past it frames go to Spill. Only with a Spill is the budget in bytes; without
	// one Forward waits when Buffer frames are queued, as before.
	MaxBytes int64
	// Spill stores the overflow durably; nil: no spill.
	Spill SpillStore
	// Instance names this process in spilled frames' ids.
	Instance string
	Log      *slog.Logger
	Registry *metrics.Registry
	Now      func() time.Time
}

// Relay is the buffer and its publishing workers.
type Relay struct {
	o   Options
	pub Publisher
	buf chan item
	// bytes counts the frames in memory for publishing: queued or in flight.
	bytes atomic.Int64
	sp    *spiller // nil without Options.Spill

	published *metrics.Counter
	retries   *metrics.Counter
	fullWaits *metrics.Counter
	depth     *metrics.Gauge
	latency   *metrics.Histogram
	invalid   *metrics.Counter
	bufBytes  *metrics.Gauge

	workers     sync.WaitGroup
	closing     chan struct{} // closed by Close: workers drain the buffer and exit
	closeOnce   sync.Once
	ctx         context.Context // cancelled at Close's deadline: retries stop
	cancel      context.CancelFunc
	unpublished atomic.Int64

	mu       sync.Mutex
	lastWarn time.Time
	// spilling: frames go to the spill, not the buffer, until the spill is drained,
	// so that replay keeps their order. Guarded by mu.
	spilling bool
	// leftovers are frames whose publish Close cut short, spilled at the end.
	leftovers []eventsub.Frame

	// collectMu is held by the one worker collecting a batch; timer is its
	// BatchDelay (BatchPublisher only).
	collectMu sync.Mutex
	timer     *time.Timer
}

// item is one frame on its way to Pub/Sub; spillID is set for a frame replayed from
// the spill, whose document is deleted once it is published.
type item struct {
	f       eventsub.Frame
	spillID string
}

// New returns a started Relay.
func New(pub Publisher, o Options) *Relay {
	if o.Buffer == 0 {
		o.Buffer = 10_000
	}
	_, batches := pub.(BatchPublisher)
	if o.Workers == 0 {
		o.Workers = 256
		if batches {
			o.Workers = 8
		}
	}
	if o.BatchDelay == 0 {
		o.BatchDelay = 10 * time.Millisecond
	}
	if o.BatchCount == 0 || o.BatchCount > bus.MaxBatchCount {
		o.BatchCount = bus.MaxBatchCount
	}
	if o.BatchBytes == 0 {
		o.BatchBytes = 1_000_000
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
	if o.MaxBytes == 0 {
		o.MaxBytes = 64 << 20
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &Relay{
		o: o, pub: pub, buf: make(chan item, o.Buffer), closing: make(chan struct{}),
		ctx: ctx, cancel: cancel,
		published: o.Registry.Counter("relay_published_total", "Notifications published to the raw topic."),
		retries:   o.Registry.Counter("relay_publish_retries_total", "Publish attempts that failed and were retried."),
		fullWaits: o.Registry.Counter("relay_buffer_full_total", "Times Forward waited because the buffer was full."),
		depth:     o.Registry.Gauge("relay_buffer_depth", "Frames waiting to be published."),
		latency:   o.Registry.Histogram("relay_frame_to_publish_seconds", "From frame read to publish acknowledged.", metrics.LatencyBuckets),
		invalid:   o.Registry.Counter("relay_dead_lettered_total", "Notifications Pub/Sub refused for good, sent to dead-letter."),
	}
	r.timer = time.NewTimer(time.Hour)
	r.timer.Stop()
	r.bufBytes = o.Registry.Gauge("relay_buffer_bytes", "Bytes of frames in memory for publishing.")
	if o.Spill != nil {
		r.sp = newSpiller(r, o.Spill)
	}
	for i := 0; i < o.Workers; i++ {
		r.workers.Add(1)
		go r.work()
	}
	return r
}

// ErrClosed is returned by Forward after Close.
var ErrClosed = errors.New("relay closed")

// Forward queues a frame for publishing. With a spill it never waits for Pub/Sub:
// past the byte budget the frame is spilled. Without one, or when the spill is behind
// too, it logs (at most every 5 s) and waits. Stop the producer before calling Close:
// a frame forwarded after Close is refused with ErrClosed.
func (r *Relay) Forward(ctx context.Context, f eventsub.Frame) error {
	select {
	case <-r.closing:
		return ErrClosed
	default:
	}
	if r.sp != nil {
		return r.forwardOrSpill(ctx, f)
	}
	it := item{f: f}
	select {
	case r.buf <- it:
		r.queued(f)
		return nil
	default:
	}
	r.fullWaits.Inc()
	r.warnFull()
	select {
	case r.buf <- it:
		r.queued(f)
		return nil
	case <-r.closing:
		return ErrClosed
	case <-ctx.Done():
		return ctx.Err()
	}
}

// forwardOrSpill queues f in memory while it fits the budget and nothing waits in
// the spill (order), and spills it otherwise.
func (r *Relay) forwardOrSpill(ctx context.Context, f eventsub.Frame) error {
	for {
		r.mu.Lock()
		if !r.spilling && r.bytes.Load()+int64(len(f.Data)) <= r.o.MaxBytes {
			select {
			case r.buf <- item{f: f}:
				r.queued(f)
				r.mu.Unlock()
				return nil
			default:
			}
		}
		r.spilling = true
		space, ok := r.sp.enqueue(f)
		r.mu.Unlock()
		if ok {
			return nil
		}
		// Memory and spill are both full: Firestore is behind as well. Waiting here
		// stops reading the socket; nothing better is left.
		r.fullWaits.Inc()
		r.warnFull()
		select {
		case <-space:
		case <-r.closing:
			return ErrClosed
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

func (r *Relay) queued(f eventsub.Frame) {
	r.depth.Add(1)
	r.bufBytes.Set(r.bytes.Add(int64(len(f.Data))))
}

func (r *Relay) done(f eventsub.Frame) {
	r.bufBytes.Set(r.bytes.Add(-int64(len(f.Data))))
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
		"buffer", r.o.Buffer, "maxBytes", r.o.MaxBytes, "spill", r.sp != nil, "topic", r.o.Topic)
}

func (r *Relay) work() {
	defer r.workers.Done()
	if bp, ok := r.pub.(BatchPublisher); ok {
		r.workBatch(bp)
		return
	}
	for {
		select {
		case it := <-r.buf:
			r.depth.Add(-1)
			r.publish(it, nil)
		case <-r.closing:
			for { // drain what is buffered, then stop
				select {
				case it := <-r.buf:
					r.depth.Add(-1)
					r.publish(it, nil)
				default:
					return
				}
			}
		}
	}
}

// publish retries until the message is acknowledged or Close's deadline passes. A
// message Pub/Sub refuses for good (fault.Invalid: an attribute or the frame over
// its limits) goes to the dead-letter topic with the reason instead.
// first, when not nil, is the outcome of a first attempt already made (workAsync).
func (r *Relay) publish(it item, first *error) {
	f := it.f
	defer r.done(f)
	var err error
	switch {
	case first != nil && (*first == nil || fault.KindOf(*first) == fault.Invalid):
		err = *first
	case r.ctx.Err() == nil:
		if first != nil {
			r.retries.Inc()
		}
		err = r.send(r.o.Topic, f.Data, f.RawAttributes(), f.MessageID)
	default:
		err = r.ctx.Err()
	}
	switch {
	case err == nil:
		r.published.Inc()
		r.latency.Observe(r.o.Now().Sub(f.Received))
		if it.spillID != "" {
			r.sp.replayed(it.spillID)
		}
	case fault.KindOf(err) == fault.Invalid:
		r.deadLetter(f, err)
		if it.spillID != "" {
			r.sp.replayed(it.spillID)
		}
	case it.spillID != "":
		// Still in the spill: the next instance replays it.
	case r.sp != nil:
		r.mu.Lock()
		r.leftovers = append(r.leftovers, f)
		r.mu.Unlock()
	default:
		r.unpublished.Add(1)
		r.o.Log.Error("relay: shutting down with a notification unpublished", "eventsubMessageId", f.MessageID,
			"error", err.Error())
	}
}

// send publishes one message, retrying with capped backoff, until it is
// acknowledged (nil), refused for good (a fault.Invalid error), or Close's deadline
// passes (the last error).
func (r *Relay) send(topic string, data []byte, attrs map[string]string, messageID string) error {
	wait := 100 * time.Millisecond
	for attempt := 1; ; attempt++ {
		_, err := r.pub.Publish(r.ctx, topic, data, attrs)
		if err == nil || fault.KindOf(err) == fault.Invalid || r.ctx.Err() != nil {
			return err
		}
		r.retries.Inc()
		if attempt == 1 || attempt%10 == 0 {
			r.o.Log.Warn("relay: publish failed, retrying", "topic", topic, "eventsubMessageId", messageID, "attempt", attempt,
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

// Backlog is what waits to be published.
type Backlog struct {
	// Frames and Bytes are in memory, queued or in flight.
	Frames int
	Bytes  int64
	// SpillPending are frames on their way to the spill; Spilled, frames in the
	// spill (by this process's count) waiting to be replayed.
	SpillPending int
	Spilled      int64
	// NearLimit: memory and the spill's queue are both nearly full, so Forward is
	// close to waiting (and the socket to going unread).
	NearLimit bool
}

// Backlog returns what waits to be published.
func (r *Relay) Backlog() Backlog {
	b := Backlog{Frames: len(r.buf), Bytes: r.bytes.Load()}
	if r.sp != nil {
		b.SpillPending, b.Spilled, b.NearLimit = r.sp.backlog()
		b.NearLimit = b.NearLimit && b.Bytes >= r.o.MaxBytes*9/10
	} else {
		b.NearLimit = b.Frames >= cap(r.buf)*9/10
	}
	return b
}

// Latency is the frame-to-publish histogram (for load reports).
func (r *Relay) Latency() *metrics.Histogram { return r.latency }

// Close stops accepting frames and publishes what is buffered. With a spill, what is
// not published when most of ctx's time is gone is spilled for the next instance;
// without one, publishing gives up at ctx's deadline. It reports what was lost.
func (r *Relay) Close(ctx context.Context) error {
	r.closeOnce.Do(func() { close(r.closing) })
	done := make(chan struct{})
	go func() { r.workers.Wait(); close(done) }()
	stop := ctx.Done()
	if dl, ok := ctx.Deadline(); ok && r.sp != nil {
		// Keep a third of the time (at most 2 s) for writing the rest to the spill.
		t := time.NewTimer(time.Until(dl) - min(time.Until(dl)/3, 2*time.Second))
		defer t.Stop()
		stopC := make(chan struct{})
		go func() {
			select {
			case <-t.C:
			case <-ctx.Done():
			case <-done:
			}
			close(stopC)
		}()
		stop = stopC
	}
	select {
	case <-done:
	case <-stop:
		r.cancel() // in-flight retries give up; the rest of the buffer is spilled or counted
		<-done
	}
	r.cancel()
	if r.sp != nil {
		r.mu.Lock()
		left := r.leftovers
		r.leftovers = nil
		r.mu.Unlock()
		if err := r.sp.close(ctx, left); err != nil {
			return err
		}
	}
	if n := r.unpublished.Load(); n > 0 {
		return fmt.Errorf("relay: flush deadline passed with %d notifications unpublished", n)
	}
	return nil
}

// Published returns how many notifications were published.
func (r *Relay) Published() uint64 { return r.published.Value() }
