package twitchtest

import (
	"net/http"
	"slices"
	"strconv"
	"time"
)

// Get Moderated Channels (GET /helix/moderation/channels), as Twitch documents it:
// a user access token with user:read:moderated_channels, user_id equal to the
// token's user, first (1–100, default 20) and after (a cursor); the channels in which
// the user is a moderator, sorted, each {broadcaster_id, broadcaster_login,
// broadcaster_name}, and pagination.cursor when there are more.
func (s *Server) getModeratedChannels(w http.ResponseWriter, r *http.Request, _ []byte, c caller) {
	q := r.URL.Query()
	userID := q.Get("user_id")
	switch {
	case c.isApp():
		writeError(w, http.StatusUnauthorized, "The access token must be a user access token")
		return
	case !c.tok.hasScope("user:read:moderated_channels"):
		writeError(w, http.StatusUnauthorized, "Missing scope: user:read:moderated_channels")
		return
	case userID == "":
		writeError(w, http.StatusBadRequest, "Missing required parameter \"user_id\"")
		return
	case userID != c.tok.UserID:
		writeError(w, http.StatusBadRequest, "The user_id parameter must match the user ID in the access token")
		return
	}
	first := 20
	if v := q.Get("first"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 100 {
			writeError(w, http.StatusBadRequest, "The value of first must be between 1 and 100")
			return
		}
		first = n
	}
	start, ok := pageStart(w, r)
	if !ok {
		return
	}
	s.mu.Lock()
	var ids []string
	for b, mods := range s.mods {
		if mods[userID] {
			ids = append(ids, b)
		}
	}
	slices.Sort(ids)
	data := []map[string]string{}
	for _, id := range ids[min(start, len(ids)):min(len(ids), start+first)] {
		u := s.users[id]
		login, name := "", ""
		if u != nil {
			login, name = u.Login, u.DisplayName
		}
		data = append(data, map[string]string{"broadcaster_id": id, "broadcaster_login": login, "broadcaster_name": name})
	}
	s.mu.Unlock()
	paging := pagination(start+first, len(ids))
	writeJSON(w, http.StatusOK, map[string]any{"data": data, "pagination": paging})
}

// Twitch's chat rate limit for one sender in one channel: 20 messages per 30 seconds,
// or 100 where the sender is the broadcaster or one of its moderators.
const (
	ChatWindow             = 30 * time.Second
	ChatPerWindow          = 20
	ChatPerWindowModerator = 100
)

// ChatBudgetViolations counts the chat messages Twitch accepted beyond the sender's
// rate limit in their channel (any 30-second window holding more than the limit; each
// message over counts once). Twitch would have dropped them, or held the bot back; the
// fake accepts them so that tests can count.
func (s *Server) ChatBudgetViolations() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	type key struct{ broadcaster, sender string }
	times := map[key][]time.Time{}
	for _, m := range s.chats {
		if m.IsSent {
			k := key{m.BroadcasterID, m.SenderID}
			times[k] = append(times[k], m.Time)
		}
	}
	over := 0
	for k, ts := range times {
		limit := ChatPerWindow
		if k.sender == k.broadcaster || s.mods[k.broadcaster][k.sender] {
			limit = ChatPerWindowModerator
		}
		slices.SortFunc(ts, func(a, b time.Time) int { return a.Compare(b) })
		lo := 0
		for hi := range ts {
			for ts[hi].Sub(ts[lo]) >= ChatWindow {
				lo++
			}
			if hi-lo+1 > limit {
				over++
			}
		}
	}
	return over
}
