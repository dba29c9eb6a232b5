package twitchtest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
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
	out           chan []byte
	ctx           context.Context
	cancel        context.CancelFunc

	// guarded by s.mu
	ended        bool
	reconnecting bool
	reconnectTok string
	handedOver   bool
	subscribed   bool
	silenced     bool
	closeStatus  string
	grace        *time.Timer
}

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
		out = append(out, SessionInfo{ID: ss.id, KeepaliveSeconds: ss.keepaliveSecs, ConnectedAt: ss.connectedAt,
			Reconnecting: ss.reconnecting, HandedOver: ss.handedOver, Subscriptions: n})
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
		connectedAt: s.o.Now(), out: make(chan []byte, 256)}
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
	}
	s.sessions[ss.id] = ss
	s.mu.Unlock()

	ka := ss.keepaliveSecs
	welcome := s.frame("session_welcome", "", "", map[string]any{"session": map[string]any{
		"id": ss.id, "status": "connected", "keepalive_timeout_seconds": ka,
		"reconnect_url": nil, "connected_at": ss.connectedAt.UTC().Format(time.RFC3339Nano),
	}})
	if err := ss.write(welcome); err != nil {
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
			if err := ss.write(f); err != nil {
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

// frame builds a WebSocket message with Twitch's metadata.
func (s *Server) frame(typ, subType, subVersion string, payload any) []byte {
	return s.frameWith(newID(), s.o.Now(), typ, subType, subVersion, payload)
}

func (s *Server) frameWith(id string, ts time.Time, typ, subType, subVersion string, payload any) []byte {
	md := map[string]string{
		"message_id":        id,
		"message_type":      typ,
		"message_timestamp": ts.UTC().Format(time.RFC3339Nano),
	}
	if subType != "" {
		md["subscription_type"] = subType
		md["subscription_version"] = subVersion
	}
	b, err := json.Marshal(map[string]any{"metadata": md, "payload": payload})
	if err != nil {
		// Only an unmarshalable event from a test gets here.
		panic(fmt.Sprintf("twitchtest: marshal frame: %v", err))
	}
	return b
}

// ErrNoSubscription is returned by Notify when no enabled subscription matches.
var ErrNoSubscription = errors.New("twitchtest: no enabled subscription matches")

// ErrNoSession is returned for an unknown or ended session id.
var ErrNoSession = errors.New("twitchtest: no such live session")

// Notification is an event to push.
type Notification struct {
	// Type is the subscription type, e.g. "channel.follow".
	Type string
	// Condition selects subscriptions: every key given must match. Nil matches all
	// subscriptions of Type.
	Condition map[string]string
	// Event is the event object (a map, a struct or json.RawMessage).
	Event any
	// MessageID overrides the generated message id (to fake a redelivery that is not
	// byte-identical).
	MessageID string
	// Timestamp overrides message_timestamp (to fake a stale message).
	Timestamp time.Time
}

type sentFrame struct {
	subID string
	frame []byte
}

// Notify sends a notification to every enabled WebSocket subscription matching n and
// returns the message ids, in the order of the subscriptions' creation.
func (s *Server) Notify(n Notification) ([]string, error) {
	ev, err := json.Marshal(n.Event)
	if err != nil {
		return nil, fmt.Errorf("twitchtest: marshal event: %w", err)
	}
	s.mu.Lock()
	var ids []string
	var targets []*session
	var frames [][]byte
	for _, x := range s.sortedSubs(func(x *Subscription) bool {
		return x.Status == "enabled" && x.Transport.Method == "websocket" && x.Type == n.Type && conditionMatches(x.Condition, n.Condition)
	}) {
		ss := s.sessions[x.Transport.SessionID]
		if ss == nil {
			continue
		}
		id, ts := n.MessageID, n.Timestamp
		if id == "" {
			id = newID()
		}
		if ts.IsZero() {
			ts = s.o.Now()
		}
		f := s.frameWith(id, ts, "notification", x.Type, x.Version, map[string]any{
			"subscription": x, "event": json.RawMessage(ev),
		})
		s.frames[id] = sentFrame{subID: x.ID, frame: f}
		ids = append(ids, id)
		targets = append(targets, ss)
		frames = append(frames, f)
	}
	s.mu.Unlock()
	if len(ids) == 0 {
		return nil, ErrNoSubscription
	}
	for i, ss := range targets {
		ss.enqueue(frames[i])
	}
	return ids, nil
}

func conditionMatches(have, want map[string]string) bool {
	for k, v := range want {
		if have[k] != v {
			return false
		}
	}
	return true
}

func (ss *session) enqueue(f []byte) {
	select {
	case ss.out <- f:
	case <-ss.ctx.Done():
	}
}

// Redeliver sends the frame of an earlier notification again, byte for byte (same
// message_id), to the session that now holds its subscription: Twitch's at-least-once
// delivery.
func (s *Server) Redeliver(messageID string) error {
	s.mu.Lock()
	sf, ok := s.frames[messageID]
	var ss *session
	if x := s.subs[sf.subID]; ok && x != nil {
		ss = s.sessions[x.Transport.SessionID]
	}
	s.mu.Unlock()
	if !ok {
		return fmt.Errorf("twitchtest: unknown message id %q", messageID)
	}
	if ss == nil {
		return ErrNoSession
	}
	ss.enqueue(sf.frame)
	return nil
}

// SendRaw sends an arbitrary text frame on a session.
func (s *Server) SendRaw(sessionID string, frame []byte) error {
	ss := s.liveSession(sessionID)
	if ss == nil {
		return ErrNoSession
	}
	ss.enqueue(append([]byte(nil), frame...))
	return nil
}

func (s *Server) liveSession(id string) *session {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.sessions[id]
}

// Reconnect sends session_reconnect on a session and returns the reconnect URL. The
// client must connect to it; its subscriptions move to the new session when it does.
// The old socket is closed ReconnectGrace after this call: with a normal closure if
// the handover happened, with 4004 (and its subscriptions disabled) if not.
func (s *Server) Reconnect(sessionID string) (string, error) {
	s.mu.Lock()
	ss := s.sessions[sessionID]
	if ss == nil || ss.ended || ss.reconnecting {
		s.mu.Unlock()
		return "", ErrNoSession
	}
	tok := newID()
	ss.reconnecting = true
	ss.reconnectTok = tok
	s.pending[tok] = ss
	u := s.EventSubWSURL() + "?reconnect=" + tok
	ss.grace = time.AfterFunc(s.o.ReconnectGrace, func() {
		s.mu.Lock()
		handed := ss.handedOver
		s.mu.Unlock()
		if handed {
			ss.closeWith(int(websocket.StatusNormalClosure), "")
			return
		}
		ss.closeWith(4004, "reconnect grace time expired")
	})
	f := s.frame("session_reconnect", "", "", map[string]any{"session": map[string]any{
		"id": ss.id, "status": "reconnecting", "keepalive_timeout_seconds": nil,
		"reconnect_url": u, "connected_at": ss.connectedAt.UTC().Format(time.RFC3339Nano),
	}})
	s.mu.Unlock()
	ss.enqueue(f)
	return u, nil
}

// Revoke revokes a subscription with a reason (user_removed, authorization_revoked,
// version_removed, ...): its status becomes the reason and, if its session is live, a
// revocation message is sent.
func (s *Server) Revoke(subscriptionID, reason string) error {
	s.mu.Lock()
	x := s.subs[subscriptionID]
	if x == nil {
		s.mu.Unlock()
		return fmt.Errorf("twitchtest: unknown subscription %q", subscriptionID)
	}
	x.Status = reason
	ss := s.sessions[x.Transport.SessionID]
	f := s.frame("revocation", x.Type, x.Version, map[string]any{"subscription": x})
	s.mu.Unlock()
	if ss != nil {
		ss.enqueue(f)
	}
	return nil
}

// CloseSession closes a socket with any close code (Twitch uses 4000–4007) and
// disables its subscriptions. The session is gone from Sessions and its
// subscriptions disabled when it returns; the close handshake finishes in the
// background.
func (s *Server) CloseSession(sessionID string, code int, reason string) error {
	ss := s.liveSession(sessionID)
	if ss == nil {
		return ErrNoSession
	}
	ss.closeWith(code, reason)
	return nil
}

// Silence stops keepalives on a session (the socket stays open): a zombie connection
// for the client's watchdog to detect.
func (s *Server) Silence(sessionID string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	ss := s.sessions[sessionID]
	if ss == nil {
		return ErrNoSession
	}
	ss.silenced = true
	return nil
}

// Drop cuts a session's TCP connection without a close frame (an RST), as a network
// failure would; its subscriptions are disabled.
func (s *Server) Drop(sessionID string) error {
	ss := s.liveSession(sessionID)
	if ss == nil {
		return ErrNoSession
	}
	if tc, ok := ss.raw.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	if ss.raw != nil {
		_ = ss.raw.Close()
	}
	return nil
}

// FollowEvent builds a channel.follow v2 event from registered users.
func (s *Server) FollowEvent(broadcasterID, followerID string, at time.Time) map[string]any {
	s.mu.Lock()
	defer s.mu.Unlock()
	b, f := s.userOrBlank(broadcasterID), s.userOrBlank(followerID)
	return map[string]any{
		"user_id": f.ID, "user_login": f.Login, "user_name": f.DisplayName,
		"broadcaster_user_id": b.ID, "broadcaster_user_login": b.Login, "broadcaster_user_name": b.DisplayName,
		"followed_at": at.UTC().Format(time.RFC3339Nano),
	}
}

// UpdateEvent builds a channel.update v2 event for a registered broadcaster.
func (s *Server) UpdateEvent(broadcasterID, title, language, categoryID, categoryName string, labels []string) map[string]any {
	s.mu.Lock()
	defer s.mu.Unlock()
	b := s.userOrBlank(broadcasterID)
	if labels == nil {
		labels = []string{}
	}
	return map[string]any{
		"broadcaster_user_id": b.ID, "broadcaster_user_login": b.Login, "broadcaster_user_name": b.DisplayName,
		"title": title, "language": language, "category_id": categoryID, "category_name": categoryName,
		"content_classification_labels": labels,
	}
}

func (s *Server) userOrBlank(id string) User {
	if u := s.users[id]; u != nil {
		return *u
	}
	return User{ID: id}
}
