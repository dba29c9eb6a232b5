package soak

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestSoakShort runs the short fault script (what CI runs): no notification Twitch
// delivered is lost or duplicated, no stale or repeated frame is forwarded, and every
// egress event is delivered and finalized exactly once.
func TestSoakShort(t *testing.T) {
	if testing.Short() {
		t.Skip("the soak takes about three minutes; not with -short")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 480*time.Second) // with the build
	defer cancel()
	var logs lines
	res, err := Run(ctx, Options{Short: true, BinDir: t.TempDir(), Log: &logs, Output: logs.add})
	if res != nil {
		t.Logf("\n%s", res)
	}
	if err != nil || res == nil || !res.OK() {
		t.Logf("progress and components' logs (last lines):\n%s", logs.tail(200))
	}
	if err != nil {
		t.Fatalf("soak: %v", err)
	}
	if !res.OK() {
		t.Fatalf("loss, duplicates or egress failures (see the counts above)")
	}
	if res.Reconnects < 1 {
		t.Errorf("no session_reconnect was exercised")
	}
}

// lines keeps log lines for a failure report.
type lines struct {
	mu sync.Mutex
	l  []string
}

func (l *lines) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.l = append(l.l, strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

func (l *lines) add(component, line string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.l = append(l.l, "["+component+"] "+line)
}

func (l *lines) tail(n int) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	s := l.l
	if len(s) > n {
		s = s[len(s)-n:]
	}
	return strings.Join(s, "\n")
}
