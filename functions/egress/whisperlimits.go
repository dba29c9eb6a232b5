package egress

import (
	"sync"
	"time"
)

// Twitch's whisper send limits for one sender.
const (
	WhispersPerSecond = 3
	WhispersPerMinute = 100
)

// Limiter enforces a sender's whisper rate limits inside one process: at most
// perSecond sends in any second and perMinute in any minute (sliding windows, as
// Twitch counts). It holds across instances only because the whisper function is
// deployed with at most one instance; the daily recipient cap, which must hold across
// instances and restarts, lives in Firestore instead. Safe for concurrent use. The
// caller passes the time, so tests drive it with a fake clock.
type Limiter struct {
	perSecond, perMinute int

	mu sync.Mutex
	// sent holds the send times of the last minute, oldest first.
	sent []time.Time
}

// NewLimiter returns a limiter allowing perSecond sends per second and perMinute per
// minute.
func NewLimiter(perSecond, perMinute int) *Limiter {
	return &Limiter{perSecond: max(perSecond, 1), perMinute: max(perMinute, 1), sent: make([]time.Time, 0, perMinute)}
}

// Reserve takes a send slot at now. When both windows have room it records the send
// and returns ok; otherwise it records nothing and returns when the next slot frees.
func (l *Limiter) Reserve(now time.Time) (ok bool, retryAt time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	drop := 0
	for drop < len(l.sent) && now.Sub(l.sent[drop]) >= time.Minute {
		drop++
	}
	if drop > 0 {
		l.sent = append(l.sent[:0], l.sent[drop:]...)
	}
	inSecond := 0
	for i := len(l.sent) - 1; i >= 0 && now.Sub(l.sent[i]) < time.Second; i-- {
		inSecond++
	}
	if inSecond >= l.perSecond {
		retryAt = l.sent[len(l.sent)-l.perSecond].Add(time.Second)
	}
	if len(l.sent) >= l.perMinute {
		if at := l.sent[len(l.sent)-l.perMinute].Add(time.Minute); at.After(retryAt) {
			retryAt = at
		}
	}
	if !retryAt.IsZero() {
		return false, retryAt
	}
	l.sent = append(l.sent, now)
	return true, time.Time{}
}
