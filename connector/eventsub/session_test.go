package eventsub

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/bitbrat/twitch-edge/shared/twitch"
)

const welcome = `{"metadata":{"message_id":"w","message_type":"session_welcome","message_timestamp":"2024-01-01T00:00:00Z"},"payload":{"session":{"id":"S1","status":"connected","keepalive_timeout_seconds":1,"reconnect_url":null,"connected_at":"2024-01-01T00:00:00Z"}}}`

func wsServer(t *testing.T, onConn func(c *websocket.Conn)) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := websocket.Accept(w, r, nil)
		if err != nil {
			return
		}
		c.Write(r.Context(), websocket.MessageText, []byte(welcome))
		onConn(c)
	}))
	t.Cleanup(srv.Close)
	return srv
}

// slowHelix blocks each create until ctx ends, then (like any HTTP client) returns ctx's error
// a moment later.
type slowHelix struct{ calls atomic.Int32 }

func (h *slowHelix) CreateEventSubSubscription(ctx context.Context, r twitch.CreateSubscriptionRequest) (*twitch.CreatedSubscription, error) {
	h.calls.Add(1)
	<-ctx.Done()
	time.Sleep(50 * time.Millisecond)
	return nil, ctx.Err()
}
func (h *slowHelix) ListEventSubSubscriptions(ctx context.Context, f twitch.ListSubscriptionsFilter) (*twitch.SubscriptionList, error) {
	return &twitch.SubscriptionList{}, nil
}
func (h *slowHelix) DeleteEventSubSubscription(ctx context.Context, id string) error { return nil }

type nopSink struct{}

func (nopSink) Forward(context.Context, Frame) error { return nil }

type nopState struct{}

func (nopState) SessionStarted(context.Context, string, time.Time) error      { return nil }
func (nopState) SubscriptionChanged(context.Context, SubscriptionState) error { return nil }

// Stopping while a subscribe call is in flight must not panic (the call's failure
// arrives after the session stopped) and must record nothing.
func TestStopDuringSubscribeIsClean(t *testing.T) {
	srv := wsServer(t, func(c *websocket.Conn) { c.Read(context.Background()) })
	h := &slowHelix{}
	s := New(Options{URL: "ws" + strings.TrimPrefix(srv.URL, "http"), Helix: h, Sink: nopSink{}, State: nopState{},
		Specs: Specs([]string{"1"}, "9", nil)})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- s.Run(ctx) }()
	for h.calls.Load() == 0 {
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	<-done
	if st := s.Status(); len(st.Subscriptions) != 0 || st.Connected {
		t.Errorf("after stop: %+v", st)
	}
}

type okHelix struct{}

func (okHelix) CreateEventSubSubscription(ctx context.Context, r twitch.CreateSubscriptionRequest) (*twitch.CreatedSubscription, error) {
	return &twitch.CreatedSubscription{Subscription: twitch.Subscription{ID: "sub", Status: "enabled"}}, nil
}
func (okHelix) ListEventSubSubscriptions(ctx context.Context, f twitch.ListSubscriptionsFilter) (*twitch.SubscriptionList, error) {
	return &twitch.SubscriptionList{}, nil
}
func (okHelix) DeleteEventSubSubscription(ctx context.Context, id string) error { return nil }

type slowSink struct {
	mu    sync.Mutex
	got   map[string]bool
	first bool
}

func (s *slowSink) Forward(ctx context.Context, f Frame) error {
	s.mu.Lock()
	first := !s.first
	s.first = true
	s.mu.Unlock()
	if first {
		time.Sleep(3 * time.Second) // the relay's buffer is full for a while (Pub/Sub outage)
	}
	s.mu.Lock()
	s.got[f.MessageID] = true
	s.mu.Unlock()
	return nil
}

// A backpressure stall longer than the keepalive window: frames already read off the
// socket are all forwarded, and the watchdog does not mistake the stall for silence.
func TestBackpressureStallLosesNoQueuedFrame(t *testing.T) {
	const n = 30
	var conns int32
	var cmu sync.Mutex
	srv := wsServer(t, func(c *websocket.Conn) {
		ctx := context.Background()
		go c.Read(ctx) // service control frames
		cmu.Lock()
		conns++
		first := conns == 1
		cmu.Unlock()
		if !first { // Twitch does not replay on a new session
			time.Sleep(5 * time.Second)
			return
		}
		for i := 0; i < n; i++ {
			f := fmt.Sprintf(`{"metadata":{"message_id":"m%d","message_type":"notification","message_timestamp":%q,"subscription_type":"channel.follow","subscription_version":"2"},"payload":{"subscription":{},"event":{}}}`,
				i, time.Now().UTC().Format(time.RFC3339Nano))
			if c.Write(ctx, websocket.MessageText, []byte(f)) != nil {
				return
			}
		}
		for i := 0; i < 10; i++ { // Twitch keeps sending keepalives
			time.Sleep(300 * time.Millisecond)
			if c.Write(ctx, websocket.MessageText, []byte(`{"metadata":{"message_id":"k`+fmt.Sprint(i)+`","message_type":"session_keepalive","message_timestamp":"`+time.Now().UTC().Format(time.RFC3339Nano)+`"},"payload":{}}`)) != nil {
				return
			}
		}
		time.Sleep(5 * time.Second)
	})
	// the welcome says keepalive_timeout_seconds 1
	sink := &slowSink{got: map[string]bool{}}
	s := New(Options{URL: "ws" + strings.TrimPrefix(srv.URL, "http"), Helix: okHelix{}, Sink: sink,
		Specs: Specs([]string{"1"}, "9", nil), KeepaliveGrace: 100 * time.Millisecond, Log: slog.New(slog.DiscardHandler)})
	ctx, cancel := context.WithTimeout(context.Background(), 6*time.Second)
	defer cancel()
	s.Run(ctx)
	sink.mu.Lock()
	defer sink.mu.Unlock()
	if len(sink.got) != n {
		t.Fatalf("forwarded %d of %d notifications read from the socket; reconnects: %s", len(sink.got), n, "see log")
	}
}

type slowState struct{ nopState }

func (slowState) SessionStarted(ctx context.Context, _ string, _ time.Time) error {
	select { // Firestore unavailable: the client retries for up to 60 s
	case <-time.After(3 * time.Second):
	case <-ctx.Done():
	}
	return nil
}

type timingHelix struct {
	okHelix
	first atomic.Int64
}

func (h *timingHelix) CreateEventSubSubscription(ctx context.Context, r twitch.CreateSubscriptionRequest) (*twitch.CreatedSubscription, error) {
	h.first.CompareAndSwap(0, time.Now().UnixNano())
	return h.okHelix.CreateEventSubSubscription(ctx, r)
}

// A slow state store (Firestore retrying) must not delay subscribing past the window.
func TestSlowStateStoreDoesNotDelaySubscribing(t *testing.T) {
	srv := wsServer(t, func(c *websocket.Conn) { c.Read(context.Background()) })
	h := &timingHelix{}
	s := New(Options{URL: "ws" + strings.TrimPrefix(srv.URL, "http"), Helix: h, Sink: nopSink{}, State: slowState{},
		Specs: Specs([]string{"1"}, "9", nil)})
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Second)
	defer cancel()
	start := time.Now()
	s.Run(ctx)
	if d := time.Duration(h.first.Load() - start.UnixNano()); h.first.Load() == 0 || d > 2*time.Second {
		t.Fatalf("first subscribe %v after the welcome: the session record blocks subscribing", d)
	}
}

// A zombie socket (peer alive at TCP level, silent): the keepalive watchdog fires after
// 1.1 s, and the redial must not wait for a close handshake that never comes.
func TestZombieSocketRedialsPromptly(t *testing.T) {
	var mu sync.Mutex
	var dials []time.Time
	srv := wsServer(t, func(c *websocket.Conn) {
		mu.Lock()
		dials = append(dials, time.Now())
		mu.Unlock()
		time.Sleep(9 * time.Second) // never reads: no pong, no close reply
	})
	s := New(Options{URL: "ws" + strings.TrimPrefix(srv.URL, "http"), Helix: okHelix{}, Sink: nopSink{},
		Specs: Specs([]string{"1"}, "9", nil), KeepaliveGrace: 100 * time.Millisecond})
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Second)
	defer cancel()
	s.Run(ctx)
	mu.Lock()
	defer mu.Unlock()
	if len(dials) < 2 {
		t.Fatalf("only %d dial(s) in 8 s", len(dials))
	}
	if gap := dials[1].Sub(dials[0]); gap > 3*time.Second {
		t.Fatalf("redial %v after the first dial (keepalive window 1.1 s)", gap)
	}
}
