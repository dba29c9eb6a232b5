package twitchtest

import (
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

func itoa(n int) string { return strconv.Itoa(n) }

// caller is the authenticated identity of a Helix request.
type caller struct {
	tok *tokenInfo
}

func (c caller) isApp() bool { return c.tok.UserID == "" }

// bucket is Helix's per-token rate limit, simplified to a fixed window that refills
// completely at reset.
type bucket struct {
	used  int
	reset time.Time
}

// helix wraps a Helix handler: record, scripted response, token and Client-Id
// checks, rate limit (with the Ratelimit-* headers on every answer).
func (s *Server) helix(h func(w http.ResponseWriter, r *http.Request, body []byte, c caller)) http.HandlerFunc {
	return s.scripted(func(w http.ResponseWriter, r *http.Request, body []byte) {
		auth := r.Header.Get("Authorization")
		access, ok := strings.CutPrefix(auth, "Bearer ")
		if !ok || access == "" {
			writeError(w, http.StatusUnauthorized, "OAuth token is missing")
			return
		}
		s.mu.Lock()
		ti := s.tokenFor(access)
		s.mu.Unlock()
		if ti == nil {
			writeError(w, http.StatusUnauthorized, "Invalid OAuth token")
			return
		}
		if cid := r.Header.Get("Client-Id"); cid == "" || cid != ti.clientID {
			writeError(w, http.StatusUnauthorized, "Client ID and OAuth token do not match")
			return
		}
		if !s.takeBucket(w, ti) {
			writeError(w, http.StatusTooManyRequests, "Too Many Requests")
			return
		}
		h(w, r, body, caller{tok: ti})
	})
}

// takeBucket spends one point of the token's bucket and sets the headers; false when
// the bucket is empty.
func (s *Server) takeBucket(w http.ResponseWriter, ti *tokenInfo) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	key := ti.clientID + "/" + ti.UserID
	if ti.UserID == "" {
		key = ti.clientID + "/app"
	}
	now := s.o.Now()
	b := s.buckets[key]
	if b == nil || !now.Before(b.reset) {
		b = &bucket{reset: now.Add(s.o.RateLimitWindow)}
		s.buckets[key] = b
	}
	ok := b.used < s.o.RateLimit
	if ok {
		b.used++
	}
	w.Header().Set("Ratelimit-Limit", itoa(s.o.RateLimit))
	w.Header().Set("Ratelimit-Remaining", itoa(s.o.RateLimit-b.used))
	// Epoch seconds, rounded up so that waiting until then is always enough.
	w.Header().Set("Ratelimit-Reset", strconv.FormatInt(b.reset.Add(time.Second-1).Unix(), 10))
	return ok
}

// ChatMessage is a chat message the fake received.
type ChatMessage struct {
	BroadcasterID        string
	SenderID             string
	Message              string
	ReplyParentMessageID string
	MessageID            string
	IsSent               bool
	DropCode             string
	Time                 time.Time
}

// ChatMessages returns the chat messages received so far (sent and dropped).
func (s *Server) ChatMessages() []ChatMessage {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]ChatMessage(nil), s.chats...)
}

// duplicateWindow is how long Twitch drops an identical message from the same sender
// in the same channel (msg_duplicate).
const duplicateWindow = 30 * time.Second

func (s *Server) sendChat(w http.ResponseWriter, r *http.Request, body []byte, c caller) {
	var in struct {
		BroadcasterID        string `json:"broadcaster_id"`
		SenderID             string `json:"sender_id"`
		Message              string `json:"message"`
		ReplyParentMessageID string `json:"reply_parent_message_id"`
	}
	if err := json.Unmarshal(body, &in); err != nil {
		writeError(w, http.StatusBadRequest, "Invalid JSON body")
		return
	}
	switch {
	case c.isApp():
		// App tokens need user:bot and channel:bot grants the fake does not model.
		writeError(w, http.StatusUnauthorized, "The app access token is not authorized to send chat messages as this user")
		return
	case !c.tok.hasScope("user:write:chat"):
		writeError(w, http.StatusUnauthorized, "Missing scope: user:write:chat")
		return
	case in.BroadcasterID == "":
		writeError(w, http.StatusBadRequest, "Missing required parameter \"broadcaster_id\"")
		return
	case in.SenderID == "":
		writeError(w, http.StatusBadRequest, "Missing required parameter \"sender_id\"")
		return
	case in.SenderID != c.tok.UserID:
		writeError(w, http.StatusUnauthorized, "The sender_id must match the user ID in the user access token")
		return
	case in.Message == "":
		writeError(w, http.StatusBadRequest, "The message field must not be empty")
		return
	case utf8.RuneCountInString(in.Message) > 500:
		writeError(w, http.StatusUnprocessableEntity, "The message is too large")
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.users[in.BroadcasterID] == nil {
		writeError(w, http.StatusBadRequest, "The ID in broadcaster_id is not valid")
		return
	}
	if s.banned[in.BroadcasterID][in.SenderID] {
		writeError(w, http.StatusForbidden, "The sender is not permitted to send chat messages to the broadcaster's chat room")
		return
	}
	now := s.o.Now()
	m := ChatMessage{BroadcasterID: in.BroadcasterID, SenderID: in.SenderID, Message: in.Message,
		ReplyParentMessageID: in.ReplyParentMessageID, Time: now}
	for i := len(s.chats) - 1; i >= 0; i-- {
		p := s.chats[i]
		if now.Sub(p.Time) > duplicateWindow {
			break
		}
		if p.IsSent && p.BroadcasterID == m.BroadcasterID && p.SenderID == m.SenderID && p.Message == m.Message {
			m.DropCode = "msg_duplicate"
			break
		}
	}
	entry := map[string]any{}
	if m.DropCode != "" {
		entry["message_id"] = ""
		entry["is_sent"] = false
		entry["drop_reason"] = map[string]string{"code": m.DropCode, "message": "Your message is identical to the one you sent less than 30 seconds ago."}
	} else {
		m.IsSent = true
		m.MessageID = newID()
		entry["message_id"] = m.MessageID
		entry["is_sent"] = true
		entry["drop_reason"] = nil
	}
	s.chats = append(s.chats, m)
	writeJSON(w, http.StatusOK, map[string]any{"data": []any{entry}})
}

// Whisper is a whisper the fake accepted (Message as the recipient sees it, after
// Twitch's truncation).
type Whisper struct {
	FromUserID string
	ToUserID   string
	Message    string
	Truncated  bool
	Time       time.Time
}

// Whispers returns the accepted whispers.
func (s *Server) Whispers() []Whisper {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Whisper(nil), s.whispers...)
}

type whisperStats struct {
	sent       []time.Time          // last minute of sends
	recipients map[string]time.Time // first whisper per recipient in the last day
}

func (s *Server) sendWhisper(w http.ResponseWriter, r *http.Request, body []byte, c caller) {
	from, to := r.URL.Query().Get("from_user_id"), r.URL.Query().Get("to_user_id")
	var in struct {
		Message string `json:"message"`
	}
	switch {
	case from == "" || to == "":
		writeError(w, http.StatusBadRequest, "Missing required parameter from_user_id or to_user_id")
		return
	case c.isApp():
		writeError(w, http.StatusUnauthorized, "The access token must be a user access token")
		return
	case !c.tok.hasScope("user:manage:whispers"):
		writeError(w, http.StatusUnauthorized, "Missing scope: user:manage:whispers")
		return
	case from != c.tok.UserID:
		writeError(w, http.StatusUnauthorized, "The ID in from_user_id must match the user ID in the access token")
		return
	case from == to:
		writeError(w, http.StatusBadRequest, "The sending and receiving user IDs cannot be the same")
		return
	}
	if err := json.Unmarshal(body, &in); err != nil {
		writeError(w, http.StatusBadRequest, "Invalid JSON body")
		return
	}
	if in.Message == "" {
		writeError(w, http.StatusBadRequest, "The message field must not be empty")
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	sender, recipient := s.users[from], s.users[to]
	switch {
	case sender == nil:
		writeError(w, http.StatusBadRequest, "The ID in from_user_id is not valid")
		return
	case sender.NoVerifiedPhone:
		writeError(w, http.StatusUnauthorized, "The user in the from_user_id query parameter must have a verified phone number")
		return
	case sender.Suspended:
		writeError(w, http.StatusForbidden, "The sending user is not allowed to send whispers")
		return
	case recipient == nil:
		writeError(w, http.StatusNotFound, "The ID in to_user_id was not found")
		return
	}
	now := s.o.Now()
	st := s.wstats[from]
	if st == nil {
		st = &whisperStats{recipients: map[string]time.Time{}}
		s.wstats[from] = st
	}
	recent := st.sent[:0]
	lastSecond := 0
	for _, t := range st.sent {
		if now.Sub(t) < time.Minute {
			recent = append(recent, t)
			if now.Sub(t) < time.Second {
				lastSecond++
			}
		}
	}
	st.sent = recent
	for id, t := range st.recipients {
		if now.Sub(t) >= 24*time.Hour {
			delete(st.recipients, id)
		}
	}
	_, known := st.recipients[to]
	switch {
	case lastSecond >= 3 || len(st.sent) >= 100:
		writeError(w, http.StatusTooManyRequests, "The sending user exceeded the number of whisper requests that they may make")
		return
	case !known && len(st.recipients) >= 40:
		writeError(w, http.StatusTooManyRequests, "The sending user exceeded the number of unique whisper recipients that they may whisper per day")
		return
	}
	firstTime := true
	for _, p := range s.whispers {
		if (p.FromUserID == from && p.ToUserID == to) || (p.FromUserID == to && p.ToUserID == from) {
			firstTime = false
			break
		}
	}
	if firstTime && recipient.BlocksStrangers {
		writeError(w, http.StatusBadRequest, "The user that you're sending the whisper to doesn't allow whispers from strangers")
		return
	}
	limit := 10000
	if firstTime {
		limit = 500
	}
	msg, truncated := in.Message, false
	if utf8.RuneCountInString(msg) > limit {
		msg, truncated = string([]rune(msg)[:limit]), true
	}
	st.sent = append(st.sent, now)
	if !known {
		st.recipients[to] = now
	}
	s.whispers = append(s.whispers, Whisper{FromUserID: from, ToUserID: to, Message: msg, Truncated: truncated, Time: now})
	w.WriteHeader(http.StatusNoContent)
}

type userJSON struct {
	ID              string `json:"id"`
	Login           string `json:"login"`
	DisplayName     string `json:"display_name"`
	Type            string `json:"type"`
	BroadcasterType string `json:"broadcaster_type"`
	Description     string `json:"description"`
	ProfileImageURL string `json:"profile_image_url"`
	OfflineImageURL string `json:"offline_image_url"`
	ViewCount       int    `json:"view_count"`
	CreatedAt       string `json:"created_at"`
}

func (s *Server) getUsers(w http.ResponseWriter, r *http.Request, _ []byte, c caller) {
	q := r.URL.Query()
	ids, logins := q["id"], q["login"]
	if len(ids)+len(logins) > 100 {
		writeError(w, http.StatusBadRequest, "The total number of id and login query parameters must not exceed 100")
		return
	}
	if len(ids)+len(logins) == 0 {
		if c.isApp() {
			writeError(w, http.StatusBadRequest, "Must provide an ID or login when using an app access token")
			return
		}
		ids = []string{c.tok.UserID}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	data := []userJSON{}
	seen := map[string]bool{}
	add := func(u *User) {
		if u == nil || seen[u.ID] {
			return
		}
		seen[u.ID] = true
		data = append(data, userJSON{ID: u.ID, Login: u.Login, DisplayName: u.DisplayName, CreatedAt: "2020-01-01T00:00:00Z"})
	}
	for _, id := range ids {
		add(s.users[id])
	}
	for _, l := range logins {
		if id, ok := s.logins[strings.ToLower(l)]; ok {
			add(s.users[id])
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{"data": data})
}
