package twitchtest

import (
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"time"
)

// Limits of WebSocket subscriptions per user token (client id + user id).
const (
	MaxWebSocketConnections   = 3
	MaxSubscriptionsPerSocket = 300
	MaxTotalCost              = 10
)

// Messages of the 429 answers of Create EventSub Subscription.
const (
	MsgTransportsLimit = "number of websocket transports limit exceeded"
	MsgTotalCost       = "subscription total cost exceeds max_total_cost"
	MsgPerSocketLimit  = "maximum subscriptions per websocket session exceeded"
)

// Subscription is an EventSub subscription held by the fake (Twitch's JSON shape).
type Subscription struct {
	ID        string            `json:"id"`
	Status    string            `json:"status"`
	Type      string            `json:"type"`
	Version   string            `json:"version"`
	Condition map[string]string `json:"condition"`
	CreatedAt string            `json:"created_at"`
	Transport Transport         `json:"transport"`
	Cost      int               `json:"cost"`

	clientID string
	userID   string
	seq      int
}

// Transport is a subscription's transport as Twitch reports it.
type Transport struct {
	Method         string `json:"method"`
	SessionID      string `json:"session_id,omitempty"`
	ConduitID      string `json:"conduit_id,omitempty"`
	ConnectedAt    string `json:"connected_at,omitempty"`
	DisconnectedAt string `json:"disconnected_at,omitempty"`
}

// subType describes a subscription type the fake knows.
type subType struct {
	conditions []string
	scope      string
	// paidUnlessAuthorized: costs 1 unless the token's user is the condition's
	// broadcaster (Twitch: no cost when the user authorized the app).
	paidUnlessAuthorized bool
	// appOnly: only an app access token may subscribe (no user condition).
	appOnly bool
}

var subTypes = map[string]subType{
	"channel.follow/2": {conditions: []string{"broadcaster_user_id", "moderator_user_id"}, scope: "moderator:read:followers"},
	"channel.update/2": {conditions: []string{"broadcaster_user_id"}, paidUnlessAuthorized: true},
	"stream.online/1":  {conditions: []string{"broadcaster_user_id"}, paidUnlessAuthorized: true},
	"stream.offline/1": {conditions: []string{"broadcaster_user_id"}, paidUnlessAuthorized: true},
	// conduit_id is optional; client_id must be the app's own.
	"conduit.shard.disabled/1": {conditions: []string{"client_id"}, appOnly: true},
}

// Subscriptions returns a copy of every subscription (enabled and disabled), oldest
// first.
func (s *Server) Subscriptions() []Subscription {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.sortedSubs(func(*Subscription) bool { return true })
}

// EnabledSubscriptions returns the enabled subscriptions, oldest first.
func (s *Server) EnabledSubscriptions() []Subscription {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.sortedSubs(func(x *Subscription) bool { return x.Status == "enabled" })
}

func (s *Server) sortedSubs(keep func(*Subscription) bool) []Subscription {
	var out []Subscription
	for _, x := range s.subs {
		if keep(x) {
			c := *x
			c.Condition = cloneMap(x.Condition)
			out = append(out, c)
		}
	}
	slices.SortFunc(out, func(a, b Subscription) int { return a.seq - b.seq })
	return out
}

func cloneMap(m map[string]string) map[string]string {
	c := make(map[string]string, len(m))
	for k, v := range m {
		c[k] = v
	}
	return c
}

func (s *Server) createSubscription(w http.ResponseWriter, r *http.Request, body []byte, c caller) {
	var in struct {
		Type      string            `json:"type"`
		Version   string            `json:"version"`
		Condition map[string]string `json:"condition"`
		Transport struct {
			Method    string `json:"method"`
			SessionID string `json:"session_id"`
			ConduitID string `json:"conduit_id"`
			Callback  string `json:"callback"`
		} `json:"transport"`
	}
	if err := json.Unmarshal(body, &in); err != nil {
		writeError(w, http.StatusBadRequest, "Invalid JSON body")
		return
	}
	st, ok := subTypes[in.Type+"/"+in.Version]
	if !ok {
		writeError(w, http.StatusBadRequest, "The combination of values in the type and version fields is not valid")
		return
	}
	for _, k := range st.conditions {
		if in.Condition[k] == "" {
			writeError(w, http.StatusBadRequest, "The condition field is missing "+k)
			return
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, k := range st.conditions {
		if strings.HasSuffix(k, "user_id") && s.users[in.Condition[k]] == nil {
			writeError(w, http.StatusBadRequest, "The condition's "+k+" is not a valid user ID")
			return
		}
	}
	now := s.o.Now()
	sub := &Subscription{
		ID: newID(), Status: "enabled", Type: in.Type, Version: in.Version,
		Condition: cloneMap(in.Condition), CreatedAt: now.UTC().Format(time.RFC3339Nano),
		clientID: c.tok.clientID, userID: c.tok.UserID,
	}
	maxCost := MaxTotalCost
	switch in.Transport.Method {
	case "websocket":
		if st.appOnly {
			writeError(w, http.StatusUnauthorized, "The access token must be an app access token for "+in.Type)
			return
		}
		if c.isApp() {
			writeError(w, http.StatusUnauthorized, "The access token must be a user access token for the websocket transport")
			return
		}
		if st.scope != "" && !c.tok.hasScope(st.scope) {
			writeError(w, http.StatusForbidden, "subscription missing proper authorization")
			return
		}
		if in.Type == "channel.follow" {
			b, m := in.Condition["broadcaster_user_id"], in.Condition["moderator_user_id"]
			if m != c.tok.UserID || (m != b && !s.mods[b][m]) {
				writeError(w, http.StatusForbidden, "subscription missing proper authorization")
				return
			}
		}
		sess := s.sessions[in.Transport.SessionID]
		if in.Transport.SessionID == "" || sess == nil || sess.ended {
			writeError(w, http.StatusBadRequest, "websocket transport session does not exist or has already disconnected")
			return
		}
		if st.paidUnlessAuthorized && in.Condition["broadcaster_user_id"] != c.tok.UserID {
			sub.Cost = 1
		}
		onSession, cost := 0, 0
		sockets := map[string]bool{}
		for _, x := range s.subs {
			if x.Status != "enabled" || x.Transport.Method != "websocket" || x.clientID != c.tok.clientID || x.userID != c.tok.UserID {
				continue
			}
			cost += x.Cost
			sockets[x.Transport.SessionID] = true
			if x.Transport.SessionID == sess.id {
				onSession++
				if x.Type == sub.Type && mapsEqual(x.Condition, sub.Condition) {
					writeError(w, http.StatusConflict, "subscription already exists")
					return
				}
			}
		}
		switch {
		case !sockets[sess.id] && len(sockets) >= MaxWebSocketConnections:
			writeError(w, http.StatusTooManyRequests, MsgTransportsLimit)
			return
		case onSession >= MaxSubscriptionsPerSocket:
			writeError(w, http.StatusTooManyRequests, MsgPerSocketLimit)
			return
		case cost+sub.Cost > MaxTotalCost:
			writeError(w, http.StatusTooManyRequests, MsgTotalCost)
			return
		}
		sub.Transport = Transport{Method: "websocket", SessionID: sess.id, ConnectedAt: sess.connectedAt.UTC().Format(time.RFC3339Nano)}
		sess.subscribed = true
	case "conduit":
		if !c.isApp() {
			writeError(w, http.StatusUnauthorized, "The access token must be an app access token for the conduit transport")
			return
		}
		if cd := s.conduits[in.Transport.ConduitID]; cd == nil || cd.clientID != c.tok.clientID {
			writeError(w, http.StatusBadRequest, "The conduit_id is not valid")
			return
		}
		if st.appOnly && in.Condition["client_id"] != c.tok.clientID {
			writeError(w, http.StatusForbidden, "client_id must be the app's own client id")
			return
		}
		if in.Type == "channel.follow" && !s.authorizedLocked(c.tok.clientID, in.Condition["moderator_user_id"], st.scope) {
			writeError(w, http.StatusForbidden, "subscription missing proper authorization")
			return
		}
		if st.paidUnlessAuthorized && !s.authorizedLocked(c.tok.clientID, in.Condition["broadcaster_user_id"], "") {
			sub.Cost = 1
		}
		cost := 0
		for _, x := range s.subs {
			if x.clientID != c.tok.clientID || x.Transport.Method == "websocket" || x.Status != "enabled" {
				continue
			}
			cost += x.Cost
			if x.Transport.ConduitID == in.Transport.ConduitID && x.Type == sub.Type && mapsEqual(x.Condition, sub.Condition) {
				writeError(w, http.StatusConflict, "subscription already exists")
				return
			}
		}
		if cost+sub.Cost > s.o.MaxConduitCost {
			writeError(w, http.StatusTooManyRequests, MsgTotalCost)
			return
		}
		maxCost = s.o.MaxConduitCost
		sub.Transport = Transport{Method: "conduit", ConduitID: in.Transport.ConduitID}
	default:
		writeError(w, http.StatusBadRequest, "The transport method is not supported by the fake")
		return
	}
	s.subSeq++
	sub.seq = s.subSeq
	s.subs[sub.ID] = sub
	total, totalCost := s.totals(c)
	writeJSON(w, http.StatusAccepted, map[string]any{
		"data": []*Subscription{sub}, "total": total, "total_cost": totalCost, "max_total_cost": maxCost,
	})
}

// authorizedLocked reports whether userID has authorized the app (holds a user token
// of clientID, with scope when one is given): Twitch's condition for a cost of 0, and
// for app-token subscriptions that need a scope.
func (s *Server) authorizedLocked(clientID, userID, scope string) bool {
	for _, ti := range s.tokens {
		if ti.clientID == clientID && ti.UserID == userID && userID != "" && !ti.revoked && (scope == "" || ti.hasScope(scope)) {
			return true
		}
	}
	return false
}

// visible reports whether the caller's token can see x: user tokens see that user's
// WebSocket subscriptions, app tokens the app's webhook and conduit ones.
func visible(x *Subscription, c caller) bool {
	if x.clientID != c.tok.clientID {
		return false
	}
	if c.isApp() {
		return x.Transport.Method != "websocket"
	}
	return x.Transport.Method == "websocket" && x.userID == c.tok.UserID
}

func (s *Server) totals(c caller) (total, cost int) {
	for _, x := range s.subs {
		if visible(x, c) {
			total++
			if x.Status == "enabled" {
				cost += x.Cost
			}
		}
	}
	return total, cost
}

func (s *Server) listSubscriptions(w http.ResponseWriter, r *http.Request, _ []byte, c caller) {
	q := r.URL.Query()
	filters := 0
	for _, k := range []string{"status", "type", "user_id", "subscription_id"} {
		if q.Get(k) != "" {
			filters++
		}
	}
	if filters > 1 {
		writeError(w, http.StatusBadRequest, "Specify only one of the status, type, user_id and subscription_id filters")
		return
	}
	start, ok := pageStart(w, r)
	if !ok {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	all := s.sortedSubs(func(x *Subscription) bool {
		if !visible(x, c) {
			return false
		}
		switch {
		case q.Get("status") != "":
			return x.Status == q.Get("status")
		case q.Get("type") != "":
			return x.Type == q.Get("type")
		case q.Get("subscription_id") != "":
			return x.ID == q.Get("subscription_id")
		case q.Get("user_id") != "":
			for _, v := range x.Condition {
				if v == q.Get("user_id") {
					return true
				}
			}
			return false
		}
		return true
	})
	total, cost := s.totals(c)
	page := []Subscription{}
	if start < len(all) {
		page = all[start:min(len(all), start+s.o.PageSize)]
	}
	paging := pagination(start+len(page), len(all))
	maxCost := MaxTotalCost
	if c.isApp() {
		maxCost = s.o.MaxConduitCost
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"data": page, "total": total, "total_cost": cost, "max_total_cost": maxCost, "pagination": paging,
	})
}

func (s *Server) deleteSubscription(w http.ResponseWriter, r *http.Request, _ []byte, c caller) {
	id := r.URL.Query().Get("id")
	if id == "" {
		writeError(w, http.StatusBadRequest, "Missing required parameter \"id\"")
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	x := s.subs[id]
	if x == nil || !visible(x, c) {
		writeError(w, http.StatusNotFound, "The subscription was not found")
		return
	}
	delete(s.subs, id)
	w.WriteHeader(http.StatusNoContent)
}

func mapsEqual(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}
