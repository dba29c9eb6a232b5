package eventsub

import (
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
type Window struct {
	mu       sync.Mutex
	ids      map[string]time.Time
	order    []windowEntry // FIFO ring of insertions
	head     int
	size     int
	capacity int
	maxAge   time.Duration
}

type windowEntry struct {
	id string
	at time.Time
}

// NewWindow returns a window of at most capacity ids.
func NewWindow(capacity int) *Window {
	return &Window{
		ids:      make(map[string]time.Time, capacity),
		order:    make([]windowEntry, capacity),
		capacity: capacity,
		maxAge:   MaxMessageAge,
	}
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
	w.mu.Lock()
	defer w.mu.Unlock()
	w.expire(now)
	if _, ok := w.ids[id]; ok {
		return Duplicate
	}
	w.add(id, now)
	return Fresh
}

// Remember adds ids seen at the given time (e.g. loaded from the ledger at start-up).
func (w *Window) Remember(id string, at time.Time) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if _, ok := w.ids[id]; !ok {
		w.add(id, at)
	}
}

// Len returns the number of ids remembered.
func (w *Window) Len() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.ids)
}

func (w *Window) add(id string, at time.Time) {
	if w.size == w.capacity {
		old := w.order[w.head]
		delete(w.ids, old.id)
		w.head = (w.head + 1) % w.capacity
		w.size--
	}
	w.order[(w.head+w.size)%w.capacity] = windowEntry{id: id, at: at}
	w.size++
	w.ids[id] = at
}

func (w *Window) expire(now time.Time) {
	for w.size > 0 {
		e := w.order[w.head]
		if now.Sub(e.at) <= w.maxAge {
			return
		}
		delete(w.ids, e.id)
		w.order[w.head] = windowEntry{}
		w.head = (w.head + 1) % w.capacity
		w.size--
	}
}
