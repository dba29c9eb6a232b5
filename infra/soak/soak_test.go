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

// TestSoakConduitShort runs the short conduit script: two connector instances on a
// conduit of two shards, session_reconnect on each shard, the SIGKILL of one
// instance and its restart, a shard disabled by Twitch, a rolling restart of both and
// a channel added to and removed from the Firestore collection, all with the stream
// on: every notification a shard took is on internal.ingress.v1 exactly once, and
// Twitch dropped none (its one retry on the other shard took what a down shard
// could not).
func TestSoakConduitShort(t *testing.T) {
	if testing.Short() {
		t.Skip("the conduit soak takes about two minutes; not with -short")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 480*time.Second) // with the build
	defer cancel()
	var logs lines
	res, err := Run(ctx, Options{Transport: "conduit", Short: true, BinDir: t.TempDir(), Log: &logs, Output: logs.add})
	if res != nil {
		t.Logf("\n%s", res)
	}
	if err != nil || res == nil || !res.OK() {
		t.Logf("progress and components' logs (last lines):\n%s", logs.tail(300))
	}
	if err != nil {
		t.Fatalf("soak: %v", err)
	}
	if !res.OK() {
		t.Fatalf("loss or duplicates on internal.ingress.v1 (see the counts above)")
	}
	if res.Retried == 0 {
		t.Errorf("no notification was retried on the other shard: the faults did not take a shard down")
	}
}
