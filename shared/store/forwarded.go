package store

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"cloud.google.com/go/firestore"
)

// CollectionForwarded holds the ids of EventSub notifications the connector has
// forwarded, so that a restarted connector does not forward a redelivery again.
const CollectionForwarded = "eventsub_forwarded"

// ForwardedLedger records forwarded notification ids in the background, in batches,
// and reads back the recent ones at start-up. Recording is best effort: the
// in-memory window is the first line of dedupe, and Normalize's ledger the last.
type ForwardedLedger struct {
	client    *firestore.Client
	retention time.Duration
	log       *slog.Logger
	in        chan forwardedEntry
	dropped   atomic.Uint64
	done      chan struct{}
	closeOnce sync.Once
	// ctx bounds every write; cancelled when Close's deadline passes.
	ctx    context.Context
	cancel context.CancelFunc
}

type forwardedEntry struct {
	id string
	at time.Time
}

// NewForwardedLedger starts the background writer; Close flushes it.
func NewForwardedLedger(client *firestore.Client, retention time.Duration, log *slog.Logger) *ForwardedLedger {
	l := &ForwardedLedger{client: client, retention: retention, log: log, in: make(chan forwardedEntry, 50_000), done: make(chan struct{})}
	l.ctx, l.cancel = context.WithCancel(context.Background())
	go l.run()
	return l
}

// Forwarded queues the record of one forwarded notification; it never blocks.
func (l *ForwardedLedger) Forwarded(messageID string, at time.Time) {
	select {
	case l.in <- forwardedEntry{messageID, at}:
	default:
		if l.dropped.Add(1)%1000 == 1 {
			l.log.Warn("forwarded ledger: queue full, records dropped", "dropped", l.dropped.Load())
		}
	}
}

func (l *ForwardedLedger) run() {
	defer close(l.done)
	const maxBatch = 400 // Firestore allows 500 writes per batch
	batch := make([]forwardedEntry, 0, maxBatch)
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	flush := func(parent context.Context) {
		if len(batch) == 0 {
			return
		}
		ctx, cancel := context.WithTimeout(parent, 10*time.Second)
		defer cancel()
		wb := l.client.BulkWriter(ctx)
		now := time.Now()
		for _, e := range batch {
			_, err := wb.Set(l.client.Collection(CollectionForwarded).Doc(DocID(e.id)), map[string]any{
				"messageTimestamp": e.at, "forwardedAt": now, FieldExpireAt: now.Add(l.retention),
			})
			if err != nil {
				l.log.Warn("forwarded ledger: queue write", "error", err.Error())
			}
		}
		wb.End()
		batch = batch[:0]
	}
	for {
		select {
		case e, ok := <-l.in:
			if !ok {
				flush(l.ctx)
				return
			}
			batch = append(batch, e)
			if len(batch) == maxBatch {
				flush(l.ctx)
			}
		case <-tick.C:
			flush(l.ctx)
		}
	}
}

// Recent returns the ids forwarded since the given time, oldest first.
func (l *ForwardedLedger) Recent(ctx context.Context, since time.Time) ([]string, []time.Time, error) {
	snaps, err := l.client.Collection(CollectionForwarded).Where("forwardedAt", ">=", since).
		OrderBy("forwardedAt", firestore.Asc).Documents(ctx).GetAll()
	if err != nil {
		return nil, nil, classify(err, "read recent forwarded ids")
	}
	ids := make([]string, 0, len(snaps))
	ats := make([]time.Time, 0, len(snaps))
	for _, sn := range snaps {
		at, _ := sn.Data()["forwardedAt"].(time.Time)
		ids = append(ids, sn.Ref.ID)
		ats = append(ats, at)
	}
	return ids, ats, nil
}

// Close flushes queued records, giving up at ctx's end (they are best effort).
func (l *ForwardedLedger) Close(ctx context.Context) {
	l.closeOnce.Do(func() { close(l.in) })
	stop := context.AfterFunc(ctx, l.cancel)
	defer stop()
	<-l.done
	l.cancel()
	if ctx.Err() != nil {
		l.log.Warn("forwarded ledger: shutdown deadline passed; records abandoned")
	}
}
