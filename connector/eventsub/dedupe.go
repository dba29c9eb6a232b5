package eventsub

import (
	"hash/maphash"
	"sync"
	"time"
)

// MaxMessageAge is Twitch's advice: reject notifications whose message_timestamp is
// older than ten minutes (they are replays), and remember message ids at least that
// long (a redelivery keeps its message_id).
const MaxMessageAge = 10 * time.Minute

// Window remembers the message ids seen in the last MaxMessageAge. It is bounded by
// Capacity as well, so a flood cannot exhaust memory; past that, the oldest ids go
// first (and the staleness check still rejects anything older than ten minutes).
//
// Ids are kept as 128-bit hashes (two seeded 64-bit hashes) with a unix-nano time:
// about 60 bytes an id instead of a string's 150, and no allocation per id. Two ids
// collide with a probability near 2^-128 per pair: never, in practice.
type Window struct {
	mu       sync.Mutex
	ids      map[idHash]int64
	order    []windowEntry // FIFO ring of insertions
	head     int
	size     int
	capacity int
	maxAge   time.Duration
	seeds    [2]maphash.Seed
}

type idHash [2]uint64

type windowEntry struct {
	id idHash
	at int64
}

// NewWindow returns a window of at most capacity ids.
func NewWindow(capacity int) *Window {
	return &Window{
		ids:      make(map[idHash]int64, capacity),
		order:    make([]windowEntry, capacity),
		capacity: capacity,
		maxAge:   MaxMessageAge,
		seeds:    [2]maphash.Seed{maphash.MakeSeed(), maphash.MakeSeed()},
	}
}

func (w *Window) hash(id string) idHash {
	return idHash{maphash.String(w.seeds[0], id), maphash.String(w.seeds[1], id)}
}

// Verdict says what to do with a notification.
type Verdict int

// The verdicts.
const (
	Fresh Verdict = iota
	Duplicate
	Stale
)

func (v Verdict) String() string {
	return [...]string{"fresh", "duplicate", "stale"}[v]
}

// Check classifies a notification with message id sent at ts, as seen at now, and
// remembers it when it is fresh.
func (w *Window) Check(id string, ts, now time.Time) Verdict {
	if !ts.IsZero() && now.Sub(ts) > w.maxAge {
		return Stale
	}
	h := w.hash(id)
	w.mu.Lock()
	defer w.mu.Unlock()
	w.expire(now)
	if _, ok := w.ids[h]; ok {
		return Duplicate
	}
	w.add(h, now.UnixNano())
	return Fresh
}

// Remember adds an id seen at the given time (e.g. loaded from the ledger at
// start-up). Call it in time order, before Check.
func (w *Window) Remember(id string, at time.Time) {
	h := w.hash(id)
	w.mu.Lock()
	defer w.mu.Unlock()
	if _, ok := w.ids[h]; !ok {
		w.add(h, at.UnixNano())
	}
}

// Len returns the number of ids remembered.
func (w *Window) Len() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.ids)
}

func (w *Window) add(h idHash, at int64) {
	if w.size == w.capacity {
		delete(w.ids, w.order[w.head].id)
		w.head = (w.head + 1) % w.capacity
		w.size--
	}
	w.order[(w.head+w.size)%w.capacity] = windowEntry{id: h, at: at}
	w.size++
	w.ids[h] = at
}

func (w *Window) expire(now time.Time) {
	limit := now.Add(-w.maxAge).UnixNano()
	for w.size > 0 {
		e := w.order[w.head]
		if e.at >= limit {
			return
		}
		delete(w.ids, e.id)
		w.order[w.head] = windowEntry{}
		w.head = (w.head + 1) % w.capacity
		w.size--
	}
}
