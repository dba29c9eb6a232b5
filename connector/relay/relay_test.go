package relay

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bitbrat/twitch-edge/connector/eventsub"
	"github.com/bitbrat/twitch-edge/connector/metrics"
	"github.com/bitbrat/twitch-edge/shared/event"
	"github.com/bitbrat/twitch-edge/shared/fault"
)

// flakyPublisher is a fake of the relay's own Publisher interface.
type flakyPublisher struct {
	mu       sync.Mutex
	failures int // fail this many calls first
	got      map[string]int
	block    chan struct{} // when non-nil, Publish waits for it
	calls    atomic.Int64
}

func (p *flakyPublisher) Publish(ctx context.Context, _ string, data []byte, attrs map[string]string) (string, error) {
	p.calls.Add(1)
	if p.block != nil {
		select {
		case <-p.block:
		case <-ctx.Done():
			return "", ctx.Err()
		}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.failures > 0 {
		p.failures--
		return "", fault.New(fault.Transient, "PUBSUB_UNAVAILABLE", "down")
	}
	if p.got == nil {
		p.got = map[string]int{}
	}
	p.got[attrs[event.AttrEventSubMessageID]]++
	return "id", nil
}

func frame(i int) eventsub.Frame {
	f, err := eventsub.ParseFrame([]byte(fmt.Sprintf(
		`{"metadata":{"message_id":"m-%d","message_type":"notification","message_timestamp":"2026-11-22T00:00:00Z","subscription_type":"channel.follow","subscription_version":"2"},"payload":{"subscription":{"condition":{"broadcaster_user_id":"101"}},"event":{}}}`, i)), time.Now())
	if err != nil {
		panic(err)
	}
	return f
}

func TestRelayRetriesUntilPublished(t *testing.T) {
	p := &flakyPublisher{failures: 5}
	r := New(p, Options{Topic: "raw", Workers: 2, MaxBackoff: 20 * time.Millisecond})
	for i := 0; i < 20; i++ {
		if err := r.Forward(context.Background(), frame(i)); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := r.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if len(p.got) != 20 {
		t.Fatalf("published %d distinct notifications, want 20", len(p.got))
	}
	for id, n := range p.got {
		if n != 1 {
			t.Errorf("%s published %d times", id, n)
		}
	}
	if r.retries.Value() != 5 || r.Published() != 20 {
		t.Errorf("retries=%d published=%d", r.retries.Value(), r.Published())
	}
}

func TestRelayAppliesBackpressureWhenFull(t *testing.T) {
	p := &flakyPublisher{block: make(chan struct{})}
	r := New(p, Options{Topic: "raw", Buffer: 10, Workers: 1})
	// One frame is taken by the (blocked) worker, ten fill the buffer.
	if err := r.Forward(context.Background(), frame(0)); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, func() bool { return p.calls.Load() == 1 })
	for i := 1; i < 11; i++ {
		if err := r.Forward(context.Background(), frame(i)); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if err := r.Forward(ctx, frame(99)); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Forward on a full buffer returned %v, want it to wait", err)
	}
	if r.fullWaits.Value() != 1 {
		t.Errorf("buffer-full events = %d", r.fullWaits.Value())
	}
	close(p.block)
	cctx, ccancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer ccancel()
	if err := r.Close(cctx); err != nil {
		t.Fatal(err)
	}
	if len(p.got) != 11 {
		t.Fatalf("published %d, want 11", len(p.got))
	}
	if err := r.Forward(context.Background(), frame(100)); !errors.Is(err, ErrClosed) {
		t.Errorf("Forward after Close = %v", err)
	}
}

func TestRelayCloseReportsWhatItCouldNotFlush(t *testing.T) {
	p := &flakyPublisher{failures: 1 << 30}
	r := New(p, Options{Topic: "raw", Workers: 1, MaxBackoff: 10 * time.Millisecond})
	for i := 0; i < 3; i++ {
		_ = r.Forward(context.Background(), frame(i))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	err := r.Close(ctx)
	if err == nil || r.unpublished.Load() != 3 {
		t.Fatalf("Close = %v, unpublished = %d; want an error counting 3", err, r.unpublished.Load())
	}
}

func waitUntil(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("timed out")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// BenchmarkFramePath is the connector's per-frame work on the socket's goroutine:
// parse the header, check the dedupe window, enqueue for publishing.
func BenchmarkFramePath(b *testing.B) {
	raw := make([][]byte, 4096)
	for i := range raw {
		raw[i] = []byte(fmt.Sprintf(`{"metadata":{"message_id":"%08d-d79d-478f-86b9-120f112b044e","message_type":"notification","message_timestamp":"2026-11-22T00:00:00.464757833Z","subscription_type":"channel.follow","subscription_version":"2"},"payload":{"subscription":{"id":"f1c2a387-161a-49f9-a165-0f21d7a4e1c4","status":"enabled","type":"channel.follow","version":"2","cost":0,"condition":{"broadcaster_user_id":"1337","moderator_user_id":"1337"},"transport":{"method":"websocket","session_id":"AQoQexAWVYKSTIu4ec_2VAxyuhAB"},"created_at":"2026-11-22T00:00:00.464757833Z"},"event":{"user_id":"1234","user_login":"cool_user","user_name":"Cool_User","broadcaster_user_id":"1337","broadcaster_user_login":"cooler_user","broadcaster_user_name":"Cooler_User","followed_at":"2026-11-22T00:00:00.17106713Z"}}}`, i))
	}
	// One less than the distinct frames: each id has left the window when it comes
	// round again, so every check takes the fresh path (lookup, insert, evict).
	w := eventsub.NewWindow(len(raw) - 1)
	r := &Relay{buf: make(chan item, 1<<16), closing: make(chan struct{})}
	r.depth, r.bufBytes = newTestGauge(), newTestGauge()
	ctx := context.Background()
	now := time.Date(2026, 11, 22, 0, 0, 1, 0, time.UTC)
	b.ReportAllocs()
	b.SetBytes(int64(len(raw[0])))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		f, err := eventsub.ParseFrame(raw[i%len(raw)], now)
		if err != nil {
			b.Fatal(err)
		}
		if w.Check(f.MessageID, f.MessageTimestamp, now) != eventsub.Fresh {
			b.Fatal("not fresh")
		}
		if err := r.Forward(ctx, f); err != nil {
			b.Fatal(err)
		}
		select { // stand in for the publishing workers
		case <-r.buf:
		default:
		}
	}
}

// BenchmarkAttributes is a worker's per-message work before publishing: the
// attributes, broadcaster included, read from the frame's header scan (it used to
// decode every frame a second time with encoding/json).
func BenchmarkAttributes(b *testing.B) {
	f, err := eventsub.ParseFrame([]byte(followFrame), time.Now())
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if a := f.RawAttributes(); a[event.AttrEventSubBroadcasterID] != "1337" {
			b.Fatal(a)
		}
	}
}

func TestAttributes(t *testing.T) {
	for _, c := range []struct {
		name, frame, broadcaster string
	}{
		{"notification", followFrame, "1337"},
		{"no condition", `{"metadata":{"message_id":"m","message_type":"notification","message_timestamp":"2026-11-22T00:00:00Z","subscription_type":"x","subscription_version":"1"},"payload":{"subscription":{}}}`, ""},
		{"broadcaster not a string", `{"metadata":{"message_id":"m","message_type":"notification","message_timestamp":"2026-11-22T00:00:00Z"},"payload":{"subscription":{"condition":{"broadcaster_user_id":7}}}}`, ""},
		{"escaped key", `{"metadata":{"message_id":"m","message_type":"notification","message_timestamp":"2026-11-22T00:00:00Z"},"payload":{"subscription":{"condition":{"broadcaster\u005fuser_id":"42"}}}}`, "42"},
	} {
		t.Run(c.name, func(t *testing.T) {
			f, err := eventsub.ParseFrame([]byte(c.frame), time.Now())
			if err != nil {
				t.Fatal(err)
			}
			a := f.RawAttributes()
			if got, ok := a[event.AttrEventSubBroadcasterID]; got != c.broadcaster || ok != (c.broadcaster != "") {
				t.Errorf("broadcaster attribute %q (present %v), want %q", got, ok, c.broadcaster)
			}
			if a[event.AttrEventSubMessageID] != f.MessageID || f.MessageID == "" {
				t.Errorf("message id attribute %q, frame's %q", a[event.AttrEventSubMessageID], f.MessageID)
			}
		})
	}
}

const followFrame = `{"metadata":{"message_id":"befa7b53-d79d-478f-86b9-120f112b044e","message_type":"notification","message_timestamp":"2023-07-19T10:11:12.464757833Z","subscription_type":"channel.follow","subscription_version":"2"},"payload":{"subscription":{"id":"f1c2a387-161a-49f9-a165-0f21d7a4e1c4","status":"enabled","type":"channel.follow","version":"2","cost":0,"condition":{"broadcaster_user_id":"1337","moderator_user_id":"1337"},"transport":{"method":"websocket","session_id":"AQoQexAWVYKSTIu4ec_2VAxyuhAB"},"created_at":"2023-07-19T14:56:51.634234626Z"},"event":{"user_id":"1234","user_login":"cool_user","user_name":"Cool_User","broadcaster_user_id":"1337","broadcaster_user_login":"cooler_user","broadcaster_user_name":"Cooler_User","followed_at":"2020-07-15T18:16:11.17106713Z"}}}`

func newTestGauge() *metrics.Gauge { return metrics.New().Gauge("g", "test") }
