package twitchtest

import (
	"encoding/json"
	"net/http"
	"slices"
	"strconv"
	"time"
)

// Conduit limits (dev.twitch.tv, Create Conduits / Update Conduits).
const (
	MaxConduitsPerClient = 5
	MaxConduitShards     = 20000
	MaxConduitTotalCost  = 10000
)

// Messages of the conduit endpoints' errors.
const (
	MsgConduitLimit    = "conduit limit reached for this client"
	MsgNeedAppToken    = "The access token must be an app access token"
	MsgConduitNotFound = "conduit not found"
)

// Shard statuses the fake sets besides the WebSocket ones of statusForCode.
const (
	ShardEnabled              = "enabled"
	ShardVerificationPending  = "webhook_callback_verification_pending"
	ShardVerificationFailed   = "webhook_callback_verification_failed"
	ShardNotificationFailures = "notification_failures_exceeded"
)

// conduit is one conduit; guarded by s.mu.
type conduit struct {
	id       string
	clientID string
	seq      int
	shards   []*shard
	// doomed deletes the conduit once every shard has stayed disabled long enough.
	doomed *time.Timer
}

// shard is one shard; guarded by s.mu.
type shard struct {
	id     int
	status string
	method string // "" until a transport is assigned
	// WebSocket
	session        *session
	sessionID      string
	connectedAt    time.Time
	disconnectedAt time.Time
	// webhook
	callback string
	secret   string
	failures int
}

// ShardInfo is a shard as the fake's control API reports it.
type ShardInfo struct {
	ConduitID string `json:"conduit_id"`
	ID        string `json:"id"`
	Status    string `json:"status"`
	Method    string `json:"method,omitempty"`
	SessionID string `json:"session_id,omitempty"`
	Callback  string `json:"callback,omitempty"`
	// Failures counts consecutive webhook notifications the callback did not take.
	Failures int `json:"failures,omitempty"`
}

// ConduitInfo is a conduit and its shards.
type ConduitInfo struct {
	ID     string      `json:"id"`
	Shards []ShardInfo `json:"shards"`
}

func (sh *shard) info(conduitID string) ShardInfo {
	return ShardInfo{ConduitID: conduitID, ID: strconv.Itoa(sh.id), Status: sh.status, Method: sh.method,
		SessionID: sh.sessionID, Callback: sh.callback, Failures: sh.failures}
}

// helixJSON is the shard as Get Conduit Shards reports it.
func (sh *shard) helixJSON() map[string]any {
	t := map[string]any{"method": sh.method}
	switch sh.method {
	case "websocket":
		t["session_id"] = sh.sessionID
		if !sh.connectedAt.IsZero() {
			t["connected_at"] = sh.connectedAt.UTC().Format(time.RFC3339Nano)
		}
		if !sh.disconnectedAt.IsZero() {
			t["disconnected_at"] = sh.disconnectedAt.UTC().Format(time.RFC3339Nano)
		}
	case "webhook":
		t["callback"] = sh.callback
	default:
		t["method"] = "websocket"
	}
	return map[string]any{"id": strconv.Itoa(sh.id), "status": sh.status, "transport": t}
}

func newShards(from, to int) []*shard {
	var out []*shard
	for i := from; i < to; i++ {
		out = append(out, &shard{id: i, status: statusDisconnected})
	}
	return out
}

func (s *Server) conduitRoutes(mux *http.ServeMux) {
	mux.HandleFunc("GET /helix/eventsub/conduits", s.helix(s.getConduits))
	mux.HandleFunc("POST /helix/eventsub/conduits", s.helix(s.createConduit))
	mux.HandleFunc("PATCH /helix/eventsub/conduits", s.helix(s.updateConduit))
	mux.HandleFunc("DELETE /helix/eventsub/conduits", s.helix(s.deleteConduit))
	mux.HandleFunc("GET /helix/eventsub/conduits/shards", s.helix(s.getShards))
	mux.HandleFunc("PATCH /helix/eventsub/conduits/shards", s.helix(s.updateShards))
}

// Conduits returns every conduit with its shards, oldest first.
func (s *Server) Conduits() []ConduitInfo {
	s.mu.Lock()
	defer s.mu.Unlock()
	var cs []*conduit
	for _, c := range s.conduits {
		cs = append(cs, c)
	}
	slices.SortFunc(cs, func(a, b *conduit) int { return a.seq - b.seq })
	out := []ConduitInfo{}
	for _, c := range cs {
		ci := ConduitInfo{ID: c.id, Shards: []ShardInfo{}}
		for _, sh := range c.shards {
			ci.Shards = append(ci.Shards, sh.info(c.id))
		}
		out = append(out, ci)
	}
	return out
}

// Shards returns a conduit's shards (ErrNoConduit for an unknown id).
func (s *Server) Shards(conduitID string) ([]ShardInfo, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.conduits[conduitID]
	if c == nil {
		return nil, ErrNoConduit
	}
	var out []ShardInfo
	for _, sh := range c.shards {
		out = append(out, sh.info(c.id))
	}
	return out, nil
}

// AddConduit registers a conduit of the default app with one unassigned shard, so
// subscriptions can target it without the Helix calls.
func (s *Server) AddConduit(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.conduitSeq++
	s.conduits[id] = &conduit{id: id, clientID: s.o.ClientID, seq: s.conduitSeq, shards: newShards(0, 1)}
}

// appCaller refuses anything but an app access token, as every conduit endpoint does.
func appCaller(w http.ResponseWriter, c caller) bool {
	if !c.isApp() {
		writeError(w, http.StatusUnauthorized, MsgNeedAppToken)
		return false
	}
	return true
}

func (s *Server) getConduits(w http.ResponseWriter, _ *http.Request, _ []byte, c caller) {
	if !appCaller(w, c) {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	data := []map[string]any{}
	for _, ci := range s.sortedConduits(c.tok.clientID) {
		data = append(data, map[string]any{"id": ci.id, "shard_count": len(ci.shards)})
	}
	writeJSON(w, http.StatusOK, map[string]any{"data": data})
}

func (s *Server) sortedConduits(clientID string) []*conduit {
	var out []*conduit
	for _, c := range s.conduits {
		if c.clientID == clientID {
			out = append(out, c)
		}
	}
	slices.SortFunc(out, func(a, b *conduit) int { return a.seq - b.seq })
	return out
}

func parseShardCount(w http.ResponseWriter, n *int) bool {
	if n == nil || *n < 1 || *n > MaxConduitShards {
		writeError(w, http.StatusBadRequest, "shard_count must be between 1 and 20000")
		return false
	}
	return true
}

func (s *Server) createConduit(w http.ResponseWriter, _ *http.Request, body []byte, c caller) {
	if !appCaller(w, c) {
		return
	}
	var in struct {
		ShardCount *int `json:"shard_count"`
	}
	if err := json.Unmarshal(body, &in); err != nil {
		writeError(w, http.StatusBadRequest, "Invalid JSON body")
		return
	}
	if !parseShardCount(w, in.ShardCount) {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.sortedConduits(c.tok.clientID)) >= MaxConduitsPerClient {
		writeError(w, http.StatusTooManyRequests, MsgConduitLimit)
		return
	}
	s.conduitSeq++
	cd := &conduit{id: newID(), clientID: c.tok.clientID, seq: s.conduitSeq, shards: newShards(0, *in.ShardCount)}
	s.conduits[cd.id] = cd
	s.checkDoomLocked(cd)
	writeJSON(w, http.StatusOK, map[string]any{"data": []map[string]any{{"id": cd.id, "shard_count": len(cd.shards)}}})
}

func (s *Server) updateConduit(w http.ResponseWriter, _ *http.Request, body []byte, c caller) {
	if !appCaller(w, c) {
		return
	}
	var in struct {
		ID         string `json:"id"`
		ShardCount *int   `json:"shard_count"`
	}
	if err := json.Unmarshal(body, &in); err != nil || in.ID == "" {
		writeError(w, http.StatusBadRequest, "Invalid JSON body or missing id")
		return
	}
	if !parseShardCount(w, in.ShardCount) {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	cd := s.conduits[in.ID]
	if cd == nil || cd.clientID != c.tok.clientID {
		writeError(w, http.StatusNotFound, MsgConduitNotFound)
		return
	}
	n := *in.ShardCount
	if n < len(cd.shards) {
		// The shards above the new count are disabled and gone; their sockets stay
		// open but no longer serve the conduit.
		for _, sh := range cd.shards[n:] {
			if sh.session != nil {
				sh.session.shard = nil
			}
		}
		cd.shards = cd.shards[:n]
	} else {
		cd.shards = append(cd.shards, newShards(len(cd.shards), n)...)
	}
	s.checkDoomLocked(cd)
	writeJSON(w, http.StatusOK, map[string]any{"data": []map[string]any{{"id": cd.id, "shard_count": len(cd.shards)}}})
}

func (s *Server) deleteConduit(w http.ResponseWriter, r *http.Request, _ []byte, c caller) {
	if !appCaller(w, c) {
		return
	}
	id := r.URL.Query().Get("id")
	if id == "" {
		writeError(w, http.StatusBadRequest, "Missing required parameter \"id\"")
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	cd := s.conduits[id]
	if cd == nil || cd.clientID != c.tok.clientID {
		writeError(w, http.StatusNotFound, MsgConduitNotFound)
		return
	}
	s.removeConduitLocked(cd)
	w.WriteHeader(http.StatusNoContent)
}

// removeConduitLocked deletes a conduit with its subscriptions, as Twitch does.
func (s *Server) removeConduitLocked(cd *conduit) {
	if cd.doomed != nil {
		cd.doomed.Stop()
	}
	for _, sh := range cd.shards {
		if sh.session != nil {
			sh.session.shard = nil
		}
	}
	delete(s.conduits, cd.id)
	for id, x := range s.subs {
		if x.Transport.Method == "conduit" && x.Transport.ConduitID == cd.id {
			delete(s.subs, id)
		}
	}
}

// checkDoomLocked starts the deletion clock of a conduit whose shards are all
// disabled, and stops it when one is enabled again.
func (s *Server) checkDoomLocked(cd *conduit) {
	allDown := true
	for _, sh := range cd.shards {
		if sh.status == ShardEnabled {
			allDown = false
			break
		}
	}
	switch {
	case allDown && cd.doomed == nil && !s.closed:
		cd.doomed = time.AfterFunc(s.o.ConduitDeleteAfter, func() {
			s.mu.Lock()
			defer s.mu.Unlock()
			if s.conduits[cd.id] == cd && cd.doomed != nil {
				s.removeConduitLocked(cd)
			}
		})
	case !allDown && cd.doomed != nil:
		cd.doomed.Stop()
		cd.doomed = nil
	}
}

func (s *Server) getShards(w http.ResponseWriter, r *http.Request, _ []byte, c caller) {
	if !appCaller(w, c) {
		return
	}
	q := r.URL.Query()
	if q.Get("conduit_id") == "" {
		writeError(w, http.StatusBadRequest, "Missing required parameter \"conduit_id\"")
		return
	}
	start, ok := pageStart(w, r)
	if !ok {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	cd := s.conduits[q.Get("conduit_id")]
	if cd == nil || cd.clientID != c.tok.clientID {
		writeError(w, http.StatusNotFound, MsgConduitNotFound)
		return
	}
	var all []map[string]any
	for _, sh := range cd.shards {
		if st := q.Get("status"); st == "" || sh.status == st {
			all = append(all, sh.helixJSON())
		}
	}
	page := []map[string]any{}
	if start < len(all) {
		page = all[start:min(len(all), start+s.o.PageSize)]
	}
	paging := pagination(start+len(page), len(all))
	writeJSON(w, http.StatusOK, map[string]any{"data": page, "pagination": paging})
}
