package twitchtest

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

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

// Notify sends a notification to every enabled subscription matching n and returns
// the message ids, in the order of the subscriptions' creation: WebSocket
// subscriptions get it on their session, conduit subscriptions through the conduit's
// routing (see ConduitDeliveries for where each went, or that it was lost).
func (s *Server) Notify(n Notification) ([]string, error) {
	return s.notifyMatching(n.Type, func(x *Subscription) bool { return conditionMatches(x.Condition, n.Condition) }, n)
}

func (s *Server) notifyMatching(typ string, match func(*Subscription) bool, n Notification) ([]string, error) {
	ev, err := json.Marshal(n.Event)
	if err != nil {
		return nil, fmt.Errorf("twitchtest: marshal event: %w", err)
	}
	s.mu.Lock()
	var ids []string
	var targets []*session
	var frames [][]byte
	var routed []conduitNote
	for _, x := range s.sortedSubs(func(x *Subscription) bool {
		return x.Status == "enabled" && x.Type == typ && (x.Transport.Method == "websocket" || x.Transport.Method == "conduit") && match(x)
	}) {
		id, ts := n.MessageID, n.Timestamp
		if id == "" {
			id = newID()
		}
		if ts.IsZero() {
			ts = s.o.Now()
		}
		if x.Transport.Method == "conduit" {
			ids = append(ids, id)
			routed = append(routed, s.newConduitNote(x, id, ts, ev))
			continue
		}
		ss := s.sessions[x.Transport.SessionID]
		if ss == nil {
			continue
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
	for _, r := range routed {
		s.route(r)
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
