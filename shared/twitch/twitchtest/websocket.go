package twitchtest

import (
	"context"
	"errors"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/coder/websocket"
)

// session is one EventSub WebSocket connection. Fields below "guarded by s.mu" are
// only touched with the server's lock held.
type session struct {
	s             *Server
	id            string
	conn          *websocket.Conn
	raw           net.Conn
	keepaliveSecs int
	connectedAt   time.Time
	out           chan outFrame
	// loopDone is closed when writeLoop returns: after it, no frame is written.
	loopDone chan struct{}
	ctx      context.Context
	cancel   context.CancelFunc

	// guarded by s.mu
	ended        bool
	reconnecting bool
	reconnectTok string
	handedOver   bool
	subscribed   bool
	silenced     bool
	closeStatus  string
	grace        *time.Timer
	graceEnd     func()    // what grace runs when it fires
	shard        *shardRef // the conduit shard this session serves
}

// outFrame is a frame to write; done (if set) receives the write's outcome.
type outFrame struct {
	b    []byte
	done chan error
}

// errNotWritten: the session ended before the frame was written.
var errNotWritten = errors.New("twitchtest: session ended before the frame was written")

// SessionInfo describes a live socket.
type SessionInfo struct {
	ID               string
	KeepaliveSeconds int
	ConnectedAt      time.Time
	// Reconnecting is true after session_reconnect was sent and until the socket ends.
	Reconnecting bool
	// HandedOver is true once the client connected to the reconnect URL.
	HandedOver bool
	// Subscriptions counts the enabled subscriptions on this session.
	Subscriptions int
	// Shard is "conduitID/shardID" when the session serves a conduit shard.
	Shard string `json:",omitempty"`
}

// Sessions returns the live sockets, oldest first.
func (s *Server) Sessions() []SessionInfo {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []SessionInfo
	for _, ss := range s.sessions {
		n := 0
		for _, x := range s.subs {
			if x.Status == "enabled" && x.Transport.SessionID == ss.id {
				n++
			}
		}
		shard := ""
		if ss.shard != nil {
			shard = ss.shard.conduit.id + "/" + strconv.Itoa(ss.shard.sh.id)
		}
		out = append(out, SessionInfo{ID: ss.id, KeepaliveSeconds: ss.keepaliveSecs, ConnectedAt: ss.connectedAt,
			Reconnecting: ss.reconnecting, HandedOver: ss.handedOver, Subscriptions: n, Shard: shard})
	}
	for i := 1; i < len(out); i++ {
		for j := i; j > 0 && out[j].ConnectedAt.Before(out[j-1].ConnectedAt); j-- {
			out[j], out[j-1] = out[j-1], out[j]
		}
	}
	return out
}

func (s *Server) serveWS(w http.ResponseWriter, r *http.Request) {
	s.record(r, nil)
	q := r.URL.Query()
	secs := max(10, s.o.MinKeepaliveSeconds)
	if v := q.Get("keepalive_timeout_seconds"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			writeError(w, http.StatusBadRequest, "keepalive_timeout_seconds must be an integer")
			return
		}
		// Twitch answers a numeric value out of range with the nearest valid one.
		secs = min(max(n, s.o.MinKeepaliveSeconds), 600)
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		http.Error(w, "closed", http.StatusServiceUnavailable)
		return
	}
	s.wg.Add(1)
	s.mu.Unlock()
	defer s.wg.Done()

	conn, err := websocket.Accept(w, r, nil)
	if err != nil {
		return
	}
	raw, _ := r.Context().Value(rawConnKey{}).(net.Conn)
	ss := &session{s: s, id: newID(), conn: conn, raw: raw, keepaliveSecs: secs,
		connectedAt: s.o.Now(), out: make(chan outFrame, 256), loopDone: make(chan struct{})}
	ss.ctx, ss.cancel = context.WithCancel(s.ctx)
	defer ss.cancel()

	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		_ = conn.CloseNow()
		return
	}
	if tok := q.Get("reconnect"); tok != "" {
		old := s.pending[tok]
		delete(s.pending, tok)
		if old == nil || old.ended {
			s.mu.Unlock()
			_ = conn.Close(4007, "invalid reconnect url")
			return
		}
		ss.keepaliveSecs = old.keepaliveSecs
		// Subscriptions move before the welcome is written, so every notification
		// from now on goes to the new socket, after its welcome.
		for _, x := range s.subs {
			if x.Status == "enabled" && x.Transport.Method == "websocket" && x.Transport.SessionID == old.id {
				x.Transport.SessionID = ss.id
				x.Transport.ConnectedAt = ss.connectedAt.UTC().Format(time.RFC3339Nano)
			}
		}
		old.handedOver = true
		ss.subscribed = true
		s.handOverShardLocked(old, ss)
	}
	s.sessions[ss.id] = ss
	s.mu.Unlock()

	ka := ss.keepaliveSecs
	welcome := s.frame("session_welcome", "", "", map[string]any{"session": map[string]any{
		"id": ss.id, "status": "connected", "keepalive_timeout_seconds": ka,
		"reconnect_url": nil, "connected_at": ss.connectedAt.UTC().Format(time.RFC3339Nano),
	}})
	if err := ss.write(welcome); err != nil {
		close(ss.loopDone)
		ss.end(statusDisconnected)
		_ = conn.CloseNow()
		return
	}
	s.wg.Add(1)
	go ss.readLoop()
	if s.o.PingInterval > 0 {
		s.wg.Add(1)
		go ss.pingLoop()
	}
	ss.writeLoop()
}

func (ss *session) keepaliveTimeout() time.Duration {
	return time.Duration(ss.keepaliveSecs) * ss.s.o.KeepaliveUnit
}

func (ss *session) write(frame []byte) error {
	ctx, cancel := context.WithTimeout(ss.ctx, 5*time.Second)
	defer cancel()
	return ss.conn.Write(ctx, websocket.MessageText, frame)
}

// writeLoop sends queued frames and keepalives (after three quarters of the timeout
// of silence, so a client never legitimately waits the full timeout), and closes an
// unused socket with 4003.
func (ss *session) writeLoop() {
	s := ss.s
	defer close(ss.loopDone)
	interval := ss.keepaliveTimeout() * 3 / 4
	ka := time.NewTimer(interval)
	defer ka.Stop()
	window := s.o.SubscribeTimeout
	if window <= 0 {
		window = ss.keepaliveTimeout()
	}
	unused := time.NewTimer(window)
	defer unused.Stop()
	for {
		select {
		case <-ss.ctx.Done():
			return
		case f := <-ss.out:
			err := ss.write(f.b)
			if f.done != nil {
				f.done <- err
			}
			if err != nil && ss.closing() {
				// A frame after our close frame: the handshake in closeWith ends the
				// session. Cutting the connection now could reset it before the
				// client has read the frames written before the close.
				continue
			}
			if err != nil {
				ss.end(statusNetworkError)
				_ = ss.conn.CloseNow()
				return
			}
			ka.Reset(interval)
		case <-ka.C:
			s.mu.Lock()
			silenced := ss.silenced
			s.mu.Unlock()
			if !silenced {
				if err := ss.write(s.frame("session_keepalive", "", "", map[string]any{})); err != nil {
					ss.end(statusNetworkError)
					_ = ss.conn.CloseNow()
					return
				}
			}
			ka.Reset(interval)
		case <-unused.C:
			s.mu.Lock()
			subscribed := ss.subscribed
			s.mu.Unlock()
			if !subscribed {
				ss.closeWith(4003, "connection unused")
				// serveWS cancels the session when this returns: wait until the
				// close frame is out.
				<-ss.ctx.Done()
				return
			}
		}
	}
}

// readLoop watches the client: Twitch accepts nothing but control frames, so any data
// frame closes the socket with 4001. A read error means the client went away.
func (ss *session) readLoop() {
	defer ss.s.wg.Done()
	_, _, err := ss.conn.Read(ss.ctx)
	if err != nil {
		ss.end(statusDisconnected)
		_ = ss.conn.CloseNow()
		return
	}
	ss.closeWith(4001, "client sent inbound traffic")
}

func (ss *session) pingLoop() {
	defer ss.s.wg.Done()
	t := time.NewTicker(ss.s.o.PingInterval)
	defer t.Stop()
	for {
		select {
		case <-ss.ctx.Done():
			return
		case <-t.C:
			ctx, cancel := context.WithTimeout(ss.ctx, ss.s.o.PingInterval)
			err := ss.conn.Ping(ctx)
			cancel()
			if err != nil && ss.ctx.Err() == nil {
				ss.closeWith(4002, "failed ping pong")
				return
			}
		}
	}
}

// Subscription statuses for the ways a socket ends.
const (
	statusDisconnected = "websocket_disconnected"
	statusNetworkError = "websocket_network_error"
)

func statusForCode(code int) string {
	switch code {
	case 4000:
		return "websocket_internal_error"
	case 4001:
		return "websocket_received_inbound_traffic"
	case 4002:
		return "websocket_failed_ping_pong"
	case 4003:
		return "websocket_connection_unused"
	case 4004, 4007:
		return "websocket_failed_to_reconnect"
	case 4005:
		return "websocket_network_timeout"
	case 4006:
		return statusNetworkError
	}
	return statusDisconnected
}

// closeWith retires the session at once (its status and its subscriptions change
// now, whatever the peer does), then runs the close handshake in the background: a
// dead or stalled peer costs the library's handshake timeout there, never the caller
// (a ping loop, a grace timer, a control call) or a test waiting on the fake's state.
// The session's context is cancelled only after the close frame went out, since
// cancelling it under a pending read drops the connection without a close frame.
func (ss *session) closeWith(code int, reason string) {
	s := ss.s
	s.mu.Lock()
	if ss.closeStatus == "" {
		ss.closeStatus = statusForCode(code)
	}
	first := ss.retireLocked(statusForCode(code))
	if first {
		s.wg.Add(1)
	}
	s.mu.Unlock()
	if !first {
		return
	}
	go func() {
		defer s.wg.Done()
		_ = ss.conn.Close(websocket.StatusCode(code), reason)
		ss.cancel()
	}()
}

// closing reports whether closeWith has started the close handshake.
func (ss *session) closing() bool {
	ss.s.mu.Lock()
	defer ss.s.mu.Unlock()
	return ss.closeStatus != ""
}

// end retires the session once and stops its goroutines.
func (ss *session) end(status string) {
	ss.s.mu.Lock()
	ss.retireLocked(status)
	ss.s.mu.Unlock()
	ss.cancel()
}

// retireLocked takes the session out of service once, reporting whether this call
// did: a session that was not handed over to a reconnect takes its subscriptions
// down with it, as on Twitch. Callers hold s.mu.
func (ss *session) retireLocked(status string) bool {
	s := ss.s
	if ss.ended {
		return false
	}
	ss.ended = true
	if ss.closeStatus != "" {
		status = ss.closeStatus
	}
	delete(s.sessions, ss.id)
	if ss.reconnectTok != "" {
		delete(s.pending, ss.reconnectTok)
	}
	if ss.grace != nil {
		ss.grace.Stop()
	}
	s.releaseShardLocked(ss, status)
	if !ss.handedOver {
		now := s.o.Now().UTC().Format(time.RFC3339Nano)
		for _, x := range s.subs {
			if x.Status == "enabled" && x.Transport.Method == "websocket" && x.Transport.SessionID == ss.id {
				x.Status = status
				x.Transport.DisconnectedAt = now
			}
		}
	}
	return true
}

// abort drops the socket at once (server shutdown).
func (ss *session) abort() {
	ss.end(statusDisconnected)
	_ = ss.conn.CloseNow()
}

func (ss *session) enqueue(f []byte) {
	select {
	case ss.out <- outFrame{b: f}:
	case <-ss.ctx.Done():
	}
}

// deliver writes f and reports whether it went out: the conduit router's "did the
// shard take it". A frame still queued when the session ends was not delivered.
func (ss *session) deliver(f []byte) error {
	done := make(chan error, 1)
	select {
	case ss.out <- outFrame{b: f, done: done}:
	case <-ss.ctx.Done():
		return errNotWritten
	}
	select {
	case err := <-done:
		return err
	case <-ss.loopDone:
		select {
		case err := <-done:
			return err
		default:
			return errNotWritten
		}
	}
}

func (s *Server) liveSession(id string) *session {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.sessions[id]
}
