package twitchtest

import (
	"encoding/json"
	"net/http"
	"strconv"
	"time"
)

// updateShards serves PATCH /eventsub/conduits/shards: 202 with the shards it updated
// in data and the ones it refused in errors.
func (s *Server) updateShards(w http.ResponseWriter, _ *http.Request, body []byte, c caller) {
	if !appCaller(w, c) {
		return
	}
	var in struct {
		ConduitID string `json:"conduit_id"`
		Shards    []struct {
			ID        string `json:"id"`
			Transport struct {
				Method    string `json:"method"`
				SessionID string `json:"session_id"`
				Callback  string `json:"callback"`
				Secret    string `json:"secret"`
			} `json:"transport"`
		} `json:"shards"`
	}
	if err := json.Unmarshal(body, &in); err != nil || in.ConduitID == "" {
		writeError(w, http.StatusBadRequest, "Invalid JSON body or missing conduit_id")
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	cd := s.conduits[in.ConduitID]
	if cd == nil || cd.clientID != c.tok.clientID {
		writeError(w, http.StatusNotFound, MsgConduitNotFound)
		return
	}
	data, errs := []map[string]any{}, []map[string]string{}
	refuse := func(id, msg string) {
		errs = append(errs, map[string]string{"id": id, "message": msg, "code": "invalid_parameter"})
	}
	for _, u := range in.Shards {
		n, err := strconv.Atoi(u.ID)
		if err != nil || n < 0 || n >= len(cd.shards) {
			refuse(u.ID, "shard id is outside the conduit's shard range")
			continue
		}
		sh := cd.shards[n]
		switch t := u.Transport; t.Method {
		case "websocket":
			ss := s.sessions[t.SessionID]
			if t.SessionID == "" || ss == nil || ss.ended {
				refuse(u.ID, "websocket session does not exist or has already disconnected")
				continue
			}
			if ss.shard != nil && ss.shard.sh != sh {
				refuse(u.ID, "websocket session is already assigned to another shard")
				continue
			}
			s.detachLocked(sh)
			sh.method, sh.session, sh.sessionID = "websocket", ss, ss.id
			sh.connectedAt, sh.disconnectedAt = ss.connectedAt, time.Time{}
			sh.status = ShardEnabled
			ss.shard = &shardRef{conduit: cd, sh: sh}
			ss.subscribed = true
		case "webhook":
			if t.Callback == "" || !webhookSecretOK(t.Secret) {
				refuse(u.ID, "webhook transport needs a callback and a secret of 10 to 100 ASCII characters")
				continue
			}
			s.detachLocked(sh)
			sh.method, sh.callback, sh.secret, sh.failures = "webhook", t.Callback, t.Secret, 0
			sh.status = ShardVerificationPending
			s.startVerificationLocked(cd, sh)
		default:
			refuse(u.ID, "transport method must be websocket or webhook")
			continue
		}
		data = append(data, sh.helixJSON())
	}
	s.checkDoomLocked(cd)
	writeJSON(w, http.StatusAccepted, map[string]any{"data": data, "errors": errs})
}

// detachLocked takes a shard's current transport off it.
func (s *Server) detachLocked(sh *shard) {
	if sh.session != nil && sh.session.shard != nil && sh.session.shard.sh == sh {
		sh.session.shard = nil
	}
	sh.session, sh.sessionID, sh.callback, sh.secret = nil, "", "", ""
}

func webhookSecretOK(secret string) bool {
	if len(secret) < 10 || len(secret) > 100 {
		return false
	}
	for i := 0; i < len(secret); i++ {
		if secret[i] < 0x20 || secret[i] > 0x7e {
			return false
		}
	}
	return true
}

// shardRef links a session to the shard it serves.
type shardRef struct {
	conduit *conduit
	sh      *shard
}
