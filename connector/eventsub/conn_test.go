package eventsub

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// BenchmarkReadFrame is the socket's side of a frame: a loopback WebSocket server
// writes 1 KB text frames as fast as they are read, and the client reads them with
// the library's Read (a fresh buffer grown per message, a cancellable context) or
// with readMessage (one reused buffer, one exact copy, a context never done).
// cpu-ns/op is the whole process's CPU per frame, the server's writes included.
func BenchmarkReadFrame(b *testing.B) {
	frame := bytes.Repeat([]byte("x"), 1078)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ws, err := websocket.Accept(w, r, nil)
		if err != nil {
			return
		}
		defer ws.CloseNow()
		for r.Context().Err() == nil {
			if err := ws.Write(r.Context(), websocket.MessageText, frame); err != nil {
				return
			}
		}
	}))
	defer srv.Close()
	for _, mode := range []string{"conn.Read", "readMessage"} {
		b.Run(mode, func(b *testing.B) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			ws, _, err := websocket.Dial(ctx, "ws"+srv.URL[len("http"):], nil)
			if err != nil {
				b.Fatal(err)
			}
			defer ws.CloseNow()
			rctx := context.WithoutCancel(ctx)
			buf := make([]byte, 0, 4<<10)
			var sink []byte
			b.ReportAllocs()
			b.ResetTimer()
			cpu0 := cpuTime()
			for i := 0; i < b.N; i++ {
				if mode == "conn.Read" {
					_, sink, err = ws.Read(ctx)
				} else if buf, err = readMessage(rctx, ws, buf[:0]); err == nil {
					sink = append([]byte(nil), buf...)
				}
				if err != nil || len(sink) != len(frame) {
					b.Fatalf("read %d bytes: %v", len(sink), err)
				}
			}
			b.ReportMetric(float64(cpuTime()-cpu0)/float64(b.N), "cpu-ns/op")
		})
	}
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
