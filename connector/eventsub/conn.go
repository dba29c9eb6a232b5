package eventsub

import (
	"context"
	"errors"
	"fmt"
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
func (s *Session) read(ctx context.Context, c *conn, out chan<- readResult) {
	for {
		_, data, err := c.ws.Read(ctx)
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
