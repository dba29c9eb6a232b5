package twitchtest

import (
	"fmt"
	"net"
	"time"

	"github.com/coder/websocket"
)

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
	ss.graceEnd = func() {
		s.mu.Lock()
		handed := ss.handedOver
		s.mu.Unlock()
		if handed {
			ss.closeWith(int(websocket.StatusNormalClosure), "")
			return
		}
		ss.closeWith(4004, "reconnect grace time expired")
	}
	ss.grace = time.AfterFunc(s.o.ReconnectGrace, ss.graceEnd)
	f := s.frame("session_reconnect", "", "", map[string]any{"session": map[string]any{
		"id": ss.id, "status": "reconnecting", "keepalive_timeout_seconds": nil,
		"reconnect_url": u, "connected_at": ss.connectedAt.UTC().Format(time.RFC3339Nano),
	}})
	s.mu.Unlock()
	ss.enqueue(f)
	return u, nil
}

// EndReconnectGrace ends a reconnecting session's grace time now, as if
// ReconnectGrace had passed: its socket closes normally if the client moved to the
// reconnect URL, with 4004 if not. Tests use it instead of a short grace that a busy
// machine could overrun.
func (s *Server) EndReconnectGrace(sessionID string) error {
	s.mu.Lock()
	ss := s.sessions[sessionID]
	if ss == nil || ss.grace == nil || !ss.grace.Stop() {
		s.mu.Unlock()
		return ErrNoSession
	}
	end := ss.graceEnd
	s.mu.Unlock()
	end()
	return nil
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
