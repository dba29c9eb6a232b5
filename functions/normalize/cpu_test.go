package normalize

import (
	"syscall"
	"testing"
	"time"
)

// reportCPU reports the CPU time the process spent per iteration since start (all
// threads, user + system, GC included) as cpu-ns/op. On a machine shared with other
// work ns/op grows with the wait for a core; CPU time per event is what the targets
// are about and moves far less with the load.
func reportCPU(b *testing.B, start time.Duration) {
	b.ReportMetric(float64(cpuTime()-start)/float64(b.N), "cpu-ns/op")
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
