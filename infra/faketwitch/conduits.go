package faketwitch

import (
	"context"
	"errors"
	"net/http"

	"github.com/bitbrat/twitch-edge/shared/twitch/twitchtest"
)

// ShardRequest names a shard of a conduit for the control API.
type ShardRequest struct {
	Conduit string `json:"conduit"`
	Shard   string `json:"shard"`
	// Status is the disabled status to set (POST /conduits/disable); default
	// websocket_disconnected.
	Status string `json:"status,omitempty"`
	// Code is the close code (POST /conduits/kill); default 4000.
	Code int `json:"code,omitempty"`
}

// ShardResult is the shard after a control call.
type ShardResult struct {
	Shard twitchtest.ShardInfo `json:"shard"`
}

// conduitRoutes adds the conduit control endpoints:
//
//	GET  /conduits            every conduit with its shards
//	POST /conduits/disable    {conduit, shard, status?}  disable a shard
//	POST /conduits/kill       {conduit, shard, code?}    close a WebSocket shard's socket
//	GET  /conduits/lost       notifications no shard took (Twitch would have dropped them)
func (s *Server) conduitRoutes(mux *http.ServeMux) {
	mux.HandleFunc("GET /conduits", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, s.Twitch.Conduits())
	})
	mux.HandleFunc("GET /conduits/lost", func(w http.ResponseWriter, _ *http.Request) {
		lost := s.Twitch.LostNotifications()
		if lost == nil {
			lost = []twitchtest.ConduitDelivery{}
		}
		writeJSON(w, http.StatusOK, lost)
	})
	mux.HandleFunc("POST /conduits/disable", handle(s.disableShard))
	mux.HandleFunc("POST /conduits/kill", handle(s.killShard))
}

func (s *Server) disableShard(req ShardRequest) (ShardResult, error) {
	if req.Conduit == "" || req.Shard == "" {
		return ShardResult{}, badRequest("conduit and shard are required")
	}
	if err := s.Twitch.DisableShard(req.Conduit, req.Shard, req.Status); err != nil {
		return ShardResult{}, shardError(req, err)
	}
	return s.shardResult(req)
}

func (s *Server) killShard(req ShardRequest) (ShardResult, error) {
	if req.Conduit == "" || req.Shard == "" {
		return ShardResult{}, badRequest("conduit and shard are required")
	}
	if req.Code != 0 && (req.Code < 4000 || req.Code > 4999) {
		return ShardResult{}, badRequest("code %d is not 4000-4999 (Twitch uses 4000-4007)", req.Code)
	}
	if err := s.Twitch.KillShardSocket(req.Conduit, req.Shard, req.Code); err != nil {
		return ShardResult{}, shardError(req, err)
	}
	return s.shardResult(req)
}

func (s *Server) shardResult(req ShardRequest) (ShardResult, error) {
	shards, err := s.Twitch.Shards(req.Conduit)
	if err != nil {
		return ShardResult{}, shardError(req, err)
	}
	for _, sh := range shards {
		if sh.ID == req.Shard {
			return ShardResult{Shard: sh}, nil
		}
	}
	return ShardResult{}, shardError(req, twitchtest.ErrNoConduit)
}

func shardError(req ShardRequest, err error) error {
	switch {
	case errors.Is(err, twitchtest.ErrNoConduit):
		return &httpError{http.StatusNotFound, "no shard " + req.Shard + " in conduit " + req.Conduit}
	case errors.Is(err, twitchtest.ErrNoSession):
		return conflict("shard %s of conduit %s has no live socket", req.Shard, req.Conduit)
	}
	return err
}

// Conduits lists every conduit with its shards (GET /conduits).
func (c *Client) Conduits(ctx context.Context) ([]twitchtest.ConduitInfo, error) {
	var out []twitchtest.ConduitInfo
	return out, c.do(ctx, http.MethodGet, "/conduits", nil, &out)
}

// DisableShard disables a shard (POST /conduits/disable).
func (c *Client) DisableShard(ctx context.Context, r ShardRequest) (ShardResult, error) {
	var out ShardResult
	return out, c.do(ctx, http.MethodPost, "/conduits/disable", r, &out)
}

// KillShardSocket closes a WebSocket shard's socket (POST /conduits/kill).
func (c *Client) KillShardSocket(ctx context.Context, r ShardRequest) (ShardResult, error) {
	var out ShardResult
	return out, c.do(ctx, http.MethodPost, "/conduits/kill", r, &out)
}

// LostNotifications lists what no shard took (GET /conduits/lost).
func (c *Client) LostNotifications(ctx context.Context) ([]twitchtest.ConduitDelivery, error) {
	var out []twitchtest.ConduitDelivery
	return out, c.do(ctx, http.MethodGet, "/conduits/lost", nil, &out)
}
