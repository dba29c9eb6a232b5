package relay

import (
	"context"
	"time"

	"github.com/bitbrat/twitch-edge/shared/bus"
	"github.com/bitbrat/twitch-edge/shared/fault"
)

// BatchPublisher is a Publisher that can also publish many messages in one request
// (*bus.Publisher). With one, the relay batches itself: one worker at a time
// collects the frames waiting, for at most BatchDelay after the first, and publishes
// them in one request while the next worker collects. Per notification that is a
// channel receive and its share of one request; the client's own batching
// (pubsub.Publisher) costs a result, a channel, flow control and a bundler hand-off
// per message, and, with one goroutine per publish waiting for it, scheduler churn.
type BatchPublisher interface {
	Publisher
	PublishBatch(ctx context.Context, topic string, msgs []bus.Message) ([]string, error)
}

// workBatch publishes batches until the relay closes.
func (r *Relay) workBatch(bp BatchPublisher) {
	batch := make([]item, 0, r.o.BatchCount)
	msgs := make([]bus.Message, 0, r.o.BatchCount)
	for {
		batch = r.collect(batch[:0])
		if len(batch) == 0 {
			return
		}
		r.publishBatch(bp, batch, msgs[:0])
		clear(batch) // the frames' bytes are not kept past their publish
	}
}

// collect waits for a frame, then takes every frame that arrives within BatchDelay,
// up to BatchCount frames or BatchBytes. Only one worker collects at a time (the
// others are publishing), so a batch is everything that arrived meanwhile. After
// Close it takes what is buffered without waiting; empty means stop.
func (r *Relay) collect(batch []item) []item {
	r.collectMu.Lock()
	defer r.collectMu.Unlock()
	select {
	case it := <-r.buf:
		batch = append(batch, it)
	case <-r.closing:
		return r.takeBuffered(batch, 0)
	}
	size := len(batch[0].f.Data)
	r.timer.Reset(r.o.BatchDelay)
	defer r.timer.Stop()
wait:
	for len(batch) < r.o.BatchCount && size < r.o.BatchBytes {
		select {
		case it := <-r.buf:
			batch = append(batch, it)
			size += len(it.f.Data)
		case <-r.timer.C:
			break wait
		case <-r.closing:
			r.depth.Add(-int64(len(batch)))
			return r.takeBuffered(batch, size)
		}
	}
	r.depth.Add(-int64(len(batch)))
	return batch
}

// takeBuffered adds what is buffered, without waiting, up to the batch's limits.
func (r *Relay) takeBuffered(batch []item, size int) []item {
	n := len(batch)
	for len(batch) < r.o.BatchCount && size < r.o.BatchBytes {
		select {
		case it := <-r.buf:
			batch = append(batch, it)
			size += len(it.f.Data)
			continue
		default:
		}
		break
	}
	r.depth.Add(-int64(len(batch) - n))
	return batch
}

// publishBatch publishes batch in one request, retrying it whole with capped
// backoff while the error is transient and the relay is not past Close's deadline,
// then finishes each frame as publish does. A frame Pub/Sub would refuse, or a
// request refused as invalid, goes through publish alone (which dead-letters what
// is refused for good).
func (r *Relay) publishBatch(bp BatchPublisher, batch []item, msgs []bus.Message) {
	n := 0
	for _, it := range batch {
		attrs := it.f.RawAttributes()
		if bus.CheckMessage(it.f.Data, attrs) != nil {
			r.publish(it, nil)
			continue
		}
		batch[n] = it
		n++
		msgs = append(msgs, bus.Message{Data: it.f.Data, Attributes: attrs})
	}
	batch = batch[:n]
	if n == 0 {
		return
	}
	err := r.ctx.Err()
	wait := 100 * time.Millisecond
	for attempt := 1; err == nil; attempt++ {
		_, err = bp.PublishBatch(r.ctx, r.o.Topic, msgs)
		if err == nil || fault.KindOf(err) == fault.Invalid || r.ctx.Err() != nil {
			break
		}
		r.retries.Add(uint64(len(batch)))
		if attempt == 1 || attempt%10 == 0 {
			r.o.Log.Warn("relay: publish failed, retrying", "topic", r.o.Topic, "messages", len(batch), "attempt", attempt,
				"code", fault.CodeOf(err, "UNKNOWN"), "error", err.Error())
		}
		select {
		case <-time.After(wait):
		case <-r.ctx.Done():
		}
		wait = min(wait*2, r.o.MaxBackoff)
		err = nil
	}
	for _, it := range batch {
		if fault.KindOf(err) == fault.Invalid {
			r.publish(it, nil) // find the one refused
			continue
		}
		r.publish(it, &err)
	}
	clear(msgs)
}
