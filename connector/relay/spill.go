package relay

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bitbrat/twitch-edge/connector/eventsub"
	"github.com/bitbrat/twitch-edge/connector/metrics"
	"github.com/bitbrat/twitch-edge/shared/fault"
	"github.com/bitbrat/twitch-edge/shared/store"
)

// SpillStore is the durable overflow (*store.Spill).
type SpillStore interface {
	Write(ctx context.Context, frames []store.Spilled) error
	Read(ctx context.Context, after, upTo string, limit int) ([]store.Spilled, error)
	Delete(ctx context.Context, ids []string) error
}

// Batches to and from the spill: Firestore takes up to 500 writes and 10 MiB per
// request.
const (
	spillBatch      = 400
	spillBatchBytes = 4 << 20
	spillTick       = 100 * time.Millisecond
	storeTimeout    = 10 * time.Second
)

// spiller writes the frames the relay cannot hold to the spill, in batches and in
// order, replays them into the relay when there is room again, and deletes each one
// once it is published.
type spiller struct {
	r  *Relay
	st SpillStore

	mu           sync.Mutex
	pending      []store.Spilled // waiting to be written, in order
	pendingBytes int64
	inFlight     int           // taken by the writer, not yet committed
	space        chan struct{} // closed when pending shrinks
	seq          uint64
	lastAt       time.Time
	// committedUpTo is the last id this process has written; replay reads up to it
	// (and, from the start, everything an earlier instance left).
	committedUpTo string
	commits       uint64
	deletes       []string
	lastWarn      time.Time

	backlogN atomic.Int64
	wake     chan struct{}
	stop     chan struct{}
	ctx      context.Context // cancelled at Close's deadline
	cancel   context.CancelFunc
	wg       sync.WaitGroup

	spilled, replays *metrics.Counter
	pendingG, backlg *metrics.Gauge
}

func newSpiller(r *Relay, st SpillStore) *spiller {
	sp := &spiller{r: r, st: st, space: make(chan struct{}), wake: make(chan struct{}, 1), stop: make(chan struct{}),
		spilled:  r.o.Registry.Counter("relay_spilled_total", "Frames written to the spill (Firestore)."),
		replays:  r.o.Registry.Counter("relay_replayed_total", "Spilled frames published and removed from the spill."),
		pendingG: r.o.Registry.Gauge("relay_spill_pending", "Frames waiting to be written to the spill."),
		backlg:   r.o.Registry.Gauge("relay_spill_backlog", "Frames in the spill waiting to be replayed (this process's count)."),
	}
	sp.ctx, sp.cancel = context.WithCancel(context.Background())
	sp.committedUpTo = store.SpillID(time.Now(), r.o.Instance, 0)
	sp.wg.Add(2)
	go sp.writeLoop()
	go sp.replayLoop()
	return sp
}

// enqueue queues f for the spill; it reports false, with a channel closed when
// there is room, when the spill's queue is full. Called with r.mu held.
func (sp *spiller) enqueue(f eventsub.Frame) (<-chan struct{}, bool) {
	sp.mu.Lock()
	defer sp.mu.Unlock()
	if sp.pendingBytes+int64(len(f.Data)) > sp.r.o.MaxBytes {
		return sp.space, false
	}
	sp.pending = append(sp.pending, sp.entry(f))
	sp.pendingBytes += int64(len(f.Data))
	sp.pendingG.Set(int64(len(sp.pending) + sp.inFlight))
	select {
	case sp.wake <- struct{}{}:
	default:
	}
	sp.warn()
	return nil, true
}

// entry names f in the spill: ids grow with time within this process.
func (sp *spiller) entry(f eventsub.Frame) store.Spilled {
	now := time.Now()
	if !now.After(sp.lastAt) {
		now = sp.lastAt.Add(time.Nanosecond)
	}
	sp.lastAt = now
	sp.seq++
	return store.Spilled{ID: store.SpillID(now, sp.r.o.Instance, sp.seq), Data: f.Data, MessageID: f.MessageID,
		MessageTimestamp: f.MessageTimestamp, Received: f.Received, Overlap: f.Overlap}
}

func (sp *spiller) warn() {
	if time.Since(sp.lastWarn) < 5*time.Second {
		return
	}
	sp.lastWarn = time.Now()
	sp.r.o.Log.Warn("relay: Pub/Sub is behind and the buffer is over its byte budget; spilling frames to Firestore",
		"maxBytes", sp.r.o.MaxBytes, "spillPending", len(sp.pending)+sp.inFlight, "spilled", sp.backlogN.Load())
}

func (sp *spiller) writeLoop() {
	defer sp.wg.Done()
	t := time.NewTicker(spillTick)
	defer t.Stop()
	wait := 100 * time.Millisecond
	for {
		select {
		case <-sp.stop:
			return
		case <-sp.wake:
		case <-t.C:
		}
		if err := sp.writeAll(sp.ctx); err != nil {
			sp.r.o.Log.Warn("relay: spill write failed; retrying", "code", fault.CodeOf(err, "UNKNOWN"), "error", err.Error())
			select {
			case <-sp.stop:
				return
			case <-time.After(wait):
			}
			wait = min(wait*2, 5*time.Second)
			continue
		}
		wait = 100 * time.Millisecond
		sp.deleteReplayed(sp.ctx)
	}
}

// writeAll writes what is pending, batch by batch, in order.
func (sp *spiller) writeAll(ctx context.Context) error {
	for {
		sp.mu.Lock()
		n, size := 0, int64(0)
		for n < len(sp.pending) && n < spillBatch && (n == 0 || size+int64(len(sp.pending[n].Data)) <= spillBatchBytes) {
			size += int64(len(sp.pending[n].Data))
			n++
		}
		batch := sp.pending[:n:n]
		sp.pending = sp.pending[n:]
		sp.inFlight = n
		sp.mu.Unlock()
		if n == 0 {
			return nil
		}
		wctx, cancel := context.WithTimeout(ctx, storeTimeout)
		err := sp.st.Write(wctx, batch)
		cancel()
		sp.mu.Lock()
		sp.inFlight = 0
		if err != nil {
			sp.pending = append(batch, sp.pending...)
			sp.mu.Unlock()
			return err
		}
		sp.committedUpTo = batch[n-1].ID
		sp.commits++
		sp.pendingBytes -= size
		sp.pendingG.Set(int64(len(sp.pending)))
		close(sp.space)
		sp.space = make(chan struct{})
		sp.mu.Unlock()
		sp.spilled.Add(uint64(n))
		sp.backlg.Set(sp.backlogN.Add(int64(n)))
	}
}

// replayed marks a spilled frame published: its document goes.
func (sp *spiller) replayed(id string) {
	sp.mu.Lock()
	sp.deletes = append(sp.deletes, id)
	sp.mu.Unlock()
	sp.replays.Inc()
	sp.backlg.Set(max(0, sp.backlogN.Add(-1)))
}

func (sp *spiller) deleteReplayed(ctx context.Context) {
	sp.mu.Lock()
	ids := sp.deletes
	sp.deletes = nil
	sp.mu.Unlock()
	for len(ids) > 0 {
		n := min(len(ids), spillBatch)
		dctx, cancel := context.WithTimeout(ctx, storeTimeout)
		err := sp.st.Delete(dctx, ids[:n])
		cancel()
		if err != nil {
			// A frame whose document stays is replayed again later: a repeat that
			// dedupe by message_id absorbs, never a loss.
			sp.r.o.Log.Warn("relay: could not delete replayed frames from the spill; retrying", "count", len(ids), "error", err.Error())
			sp.mu.Lock()
			sp.deletes = append(ids, sp.deletes...)
			sp.mu.Unlock()
			return
		}
		ids = ids[n:]
	}
}

// replayLoop moves spilled frames back into the relay, oldest first, whenever the
// buffer is at most half full: what an earlier instance left at start, and this
// process's own spill.
func (sp *spiller) replayLoop() {
	defer sp.wg.Done()
	t := time.NewTicker(4 * spillTick)
	defer t.Stop()
	r := sp.r
	startCheck := true // an earlier instance may have left frames
	cursor := ""
	for {
		select {
		case <-sp.stop:
			return
		case <-r.closing:
			return
		case <-t.C:
		}
		r.mu.Lock()
		spilling := r.spilling
		r.mu.Unlock()
		if (!startCheck && !spilling) || r.bytes.Load() > r.o.MaxBytes/2 {
			continue
		}
		sp.mu.Lock()
		upTo, commits := sp.committedUpTo, sp.commits
		sp.mu.Unlock()
		rctx, cancel := context.WithTimeout(sp.ctx, storeTimeout)
		frames, err := sp.st.Read(rctx, cursor, upTo, spillBatch/2)
		cancel()
		if err != nil {
			r.o.Log.Warn("relay: could not read the spill; retrying", "error", err.Error())
			continue
		}
		if len(frames) == 0 {
			startCheck = false
			r.mu.Lock()
			sp.mu.Lock()
			if sp.commits == commits && len(sp.pending) == 0 && sp.inFlight == 0 && r.spilling {
				r.spilling = false
				r.o.Log.Info("relay: spill replayed; frames go straight to Pub/Sub again", "replayed", sp.replays.Value())
			}
			sp.mu.Unlock()
			r.mu.Unlock()
			continue
		}
		for _, s := range frames {
			f, err := eventsub.ParseFrame(s.Data, s.Received)
			if err != nil { // cannot happen for a frame the relay took; do not replay it forever
				r.o.Log.Error("relay: unreadable frame in the spill; removed", "id", s.ID, "error", err.Error())
				sp.replayed(s.ID)
				cursor = s.ID
				continue
			}
			f.Overlap = s.Overlap
			select {
			case r.buf <- item{f: f, spillID: s.ID}:
				r.queued(f)
				cursor = s.ID
			case <-r.closing:
				return
			}
		}
	}
}

// backlog is the spill's part of Relay.Backlog.
func (sp *spiller) backlog() (pending int, spilled int64, nearLimit bool) {
	sp.mu.Lock()
	defer sp.mu.Unlock()
	return len(sp.pending) + sp.inFlight, max(0, sp.backlogN.Load()), sp.pendingBytes >= sp.r.o.MaxBytes*9/10
}

// close stops the loops and writes what is pending, plus the frames Close could not
// publish, before ctx ends; it reports what could be neither published nor spilled.
func (sp *spiller) close(ctx context.Context, leftovers []eventsub.Frame) error {
	stopWrites := context.AfterFunc(ctx, sp.cancel)
	defer stopWrites()
	close(sp.stop)
	sp.wg.Wait()
	sp.mu.Lock()
	for _, f := range leftovers {
		sp.pending = append(sp.pending, sp.entry(f))
		sp.pendingBytes += int64(len(f.Data))
	}
	toWrite := len(sp.pending)
	sp.mu.Unlock()
	err := sp.writeAll(ctx)
	sp.deleteReplayed(ctx)
	sp.cancel()
	sp.mu.Lock()
	lost := len(sp.pending)
	sp.mu.Unlock()
	if toWrite > lost {
		sp.r.o.Log.Info("relay: unpublished frames spilled for the next instance", "count", toWrite-lost)
	}
	if lost > 0 {
		return fmt.Errorf("relay: shutdown deadline passed with %d notifications neither published nor spilled: %v", lost, err)
	}
	return nil
}
