package load

import (
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/bitbrat/twitch-edge/connector/eventsub"
)

// BenchmarkDedupeWindowFootprint reports the live heap of the connector's dedupe
// window when full (the connector keeps 200,000 message ids: ten minutes at 333/s),
// the largest fixed part of its resident memory under sustained load.
func BenchmarkDedupeWindowFootprint(b *testing.B) {
	const capacity = 200_000 // connector/app.go: eventsub.NewWindow(200_000)
	ids := make([]string, capacity)
	for i := range ids {
		ids[i] = fmt.Sprintf("%08x-d79d-478f-86b9-%012x", i, i)
	}
	now := time.Now()
	var live float64
	for i := 0; i < b.N; i++ {
		runtime.GC()
		var before runtime.MemStats
		runtime.ReadMemStats(&before)
		w := eventsub.NewWindow(capacity)
		for _, id := range ids {
			w.Check(string([]byte(id)), now, now) // a fresh string per frame, as from the socket
		}
		runtime.GC()
		var after runtime.MemStats
		runtime.ReadMemStats(&after)
		live = float64(after.HeapAlloc-before.HeapAlloc) / (1 << 20)
		runtime.KeepAlive(w)
	}
	b.ReportMetric(live, "MB-live")
	b.ReportMetric(live*(1<<20)/capacity, "B/id")
}
