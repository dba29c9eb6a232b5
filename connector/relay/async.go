package relay

import (
	"context"

	"github.com/bitbrat/twitch-edge/shared/bus"
)

// AsyncPublisher is a Publisher that can also start a publish and return at once
// (*bus.Publisher). With one, each worker takes every frame waiting (up to
// MaxInFlight), starts them all and then collects the acknowledgements: a few
// goroutines keep thousands of publishes in flight, where one goroutine per
// publish waiting for its acknowledgement cost scheduler churn per notification.
type AsyncPublisher interface {
	Publisher
	PublishAsync(ctx context.Context, topic string, data []byte, attrs map[string]string) *bus.Result
}

// workAsync takes the first frame waiting and every other one up to MaxInFlight,
// starts publishing them all, then finishes each as publish does (a failed one is
// retried there, on its own).
func (r *Relay) workAsync(ap AsyncPublisher) {
	batch := make([]item, 0, r.o.MaxInFlight)
	results := make([]*bus.Result, 0, r.o.MaxInFlight)
	for {
		batch = batch[:0]
		select {
		case it := <-r.buf:
			batch = append(batch, it)
		case <-r.closing:
			select { // drain what is buffered, then stop
			case it := <-r.buf:
				batch = append(batch, it)
			default:
				return
			}
		}
	more:
		for len(batch) < cap(batch) {
			select {
			case it := <-r.buf:
				batch = append(batch, it)
			default:
				break more
			}
		}
		r.depth.Add(-int64(len(batch)))
		results = results[:0]
		for _, it := range batch {
			var res *bus.Result
			// What Pub/Sub would refuse goes through publish, which dead-letters it.
			if r.ctx.Err() == nil {
				if attrs := it.f.RawAttributes(); bus.CheckMessage(it.f.Data, attrs) == nil {
					res = ap.PublishAsync(r.ctx, r.o.Topic, it.f.Data, attrs)
				}
			}
			results = append(results, res)
		}
		for i, it := range batch {
			if results[i] == nil {
				r.publish(it, nil)
				continue
			}
			_, err := results[i].Get(r.ctx)
			r.publish(it, &err)
			results[i] = nil
		}
	}
}
