package egress

import (
	"sync"
	"testing"
	"time"
)

func TestLimiter(t *testing.T) {
	t0 := time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)
	ms := func(n int) time.Time { return t0.Add(time.Duration(n) * time.Millisecond) }
	type step struct {
		at      time.Time
		ok      bool
		retryAt time.Time
	}
	for _, tc := range []struct {
		name                 string
		perSecond, perMinute int
		steps                []step
	}{
		{"three per second", 3, 100, []step{
			{ms(0), true, time.Time{}}, {ms(100), true, time.Time{}}, {ms(200), true, time.Time{}},
			{ms(300), false, ms(1000)}, // the first send leaves the window at 1 s
			{ms(999), false, ms(1000)},
			{ms(1000), true, time.Time{}},
			{ms(1050), false, ms(1100)},
		}},
		{"per minute", 2, 4, []step{
			{ms(0), true, time.Time{}}, {ms(1000), true, time.Time{}}, {ms(2000), true, time.Time{}}, {ms(3000), true, time.Time{}},
			{ms(4000), false, ms(60000)},
			{ms(59999), false, ms(60000)},
			{ms(60000), true, time.Time{}},
			{ms(60001), false, ms(61000)},
		}},
		{"both full: the later slot", 1, 2, []step{
			{ms(0), true, time.Time{}}, {ms(59500), true, time.Time{}},
			{ms(59600), false, ms(60500)}, // the minute frees at 60 s, the second only at 60.5 s
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := NewLimiter(tc.perSecond, tc.perMinute)
			for i, s := range tc.steps {
				ok, at := l.Reserve(s.at)
				if ok != s.ok || !at.Equal(s.retryAt) {
					t.Fatalf("step %d at %s: got %t, %s; want %t, %s", i, s.at.Sub(t0), ok, at.Sub(t0), s.ok, s.retryAt.Sub(t0))
				}
			}
		})
	}
}

func TestLimiterConcurrentReservationsNeverExceedTheBudget(t *testing.T) {
	l := NewLimiter(WhispersPerSecond, WhispersPerMinute)
	now := time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)
	var (
		wg sync.WaitGroup
		mu sync.Mutex
		ok int
	)
	for i := 0; i < 50; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if got, _ := l.Reserve(now); got {
				mu.Lock()
				ok++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if ok != WhispersPerSecond {
		t.Fatalf("%d reservations in one instant, want %d", ok, WhispersPerSecond)
	}
}
