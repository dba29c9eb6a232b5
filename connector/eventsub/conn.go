package eventsub

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"

	"github.com/bitbrat/twitch-edge/shared/fault"
	"github.com/bitbrat/twitch-edge/shared/twitch"
)

// CodeDial is the error code of a failed dial of the EventSub WebSocket.
const CodeDial = "EVENTSUB_DIAL"

// errors that end a connection, named for logs and metrics.
var (
	errKeepalive = errors.New("keepalive timeout: no message within the session's keepalive window")
	errNoWelcome = errors.New("no session_welcome")
)

// conn is one WebSocket with its reader goroutine.
type conn struct {
	ws      *websocket.Conn
	session twitch.Session
	url     string
	// lastRead is when the reader last received a frame (unix ns): the watchdog's
	// measure of Twitch's silence, independent of how fast frames are processed.
	lastRead atomic.Int64
}

type readResult struct {
	c    *conn
	data []byte
	at   time.Time
	err  error
}

// dial connects to url and reads the welcome.
func (s *Session) dial(ctx context.Context, url string) (*conn, error) {
	dctx, cancel := context.WithTimeout(ctx, s.o.WelcomeTimeout)
	defer cancel()
	ws, _, err := websocket.Dial(dctx, url, &websocket.DialOptions{HTTPClient: s.o.HTTPClient})
	if err != nil {
		return nil, fault.Wrap(fault.Transient, CodeDial, err, "dial eventsub")
	}
	ws.SetReadLimit(s.o.MaxFrameBytes)
	_, data, err := ws.Read(dctx)
	if err != nil {
		ws.CloseNow()
		return nil, fmt.Errorf("%w: %w", errNoWelcome, err)
	}
	msg, err := twitch.DecodeMessage(data)
	if err != nil || msg.Metadata.MessageType != twitch.MessageTypeWelcome {
		ws.CloseNow()
		return nil, fmt.Errorf("%w: first frame is not a welcome (%v)", errNoWelcome, err)
	}
	sess, err := msg.Session()
	if err != nil {
		ws.CloseNow()
		return nil, fmt.Errorf("%w: %w", errNoWelcome, err)
	}
	return &conn{ws: ws, session: *sess, url: url}, nil
}

// read pumps c's frames into out until the socket ends. It never drops a frame it
// read: handover.close drains out until every reader has returned.
//
// Per frame it costs one copy of the frame and nothing else: each message is read
// into one buffer reused for the socket's life, then copied to a slice of exactly
// its size, which the frame owns from then on (it is published unchanged, and lives
// until Pub/Sub acknowledges it). websocket.Conn.Read would grow a fresh buffer per
// message (io.ReadAll: three allocations for a 1 KB frame). The library is given a
// context that is never done, because with a cancellable one it registers and
// removes a context.AfterFunc on every frame header and payload read; ctx's end
// closes the socket once instead (what the library's AfterFunc does), which ends
// the pending read.
func (s *Session) read(ctx context.Context, c *conn, out chan<- readResult) {
	stop := context.AfterFunc(ctx, func() { c.ws.CloseNow() })
	defer stop()
	rctx := context.WithoutCancel(ctx)
	buf := make([]byte, 0, 4<<10)
	for {
		var data []byte
		var err error
		buf, err = readMessage(rctx, c.ws, buf[:0])
		if err == nil {
			data = append([]byte(nil), buf...)
		} else if ctx.Err() != nil {
			err = ctx.Err()
		}
		now := s.o.Now()
		if err == nil {
			c.lastRead.Store(now.UnixNano())
		}
		out <- readResult{c: c, data: data, at: now, err: err}
		if err != nil {
			return
		}
	}
}

// readMessage appends ws's next message to buf (growing it as needed; the socket's
// read limit bounds it).
func readMessage(ctx context.Context, ws *websocket.Conn, buf []byte) ([]byte, error) {
	_, r, err := ws.Reader(ctx)
	if err != nil {
		return buf, err
	}
	for {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
		n, err := r.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if err == io.EOF {
			return buf, nil
		}
		if err != nil {
			return buf, err
		}
	}
}

func (s *Session) keepaliveWindow(c *conn) time.Duration {
	secs := 10
	if c.session.KeepaliveTimeoutSeconds != nil && *c.session.KeepaliveTimeoutSeconds > 0 {
		secs = *c.session.KeepaliveTimeoutSeconds
	}
	return time.Duration(secs)*time.Second + s.o.KeepaliveGrace
}

func (c *conn) keepalive() int {
	if c.session.KeepaliveTimeoutSeconds == nil {
		return 0
	}
	return *c.session.KeepaliveTimeoutSeconds
}
