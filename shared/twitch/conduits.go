package twitch

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/bitbrat/twitch-edge/shared/fault"
)

// Conduit limits Twitch documents; the client checks them before asking.
const (
	MaxConduitShards       = 20000
	maxShardsPerUpdate     = 20000
	minWebhookSecretLength = 10
	maxWebhookSecretLength = 100
)

// Codes of conduit errors (see errors.go for the others).
const (
	// CodeConduitLimit: the app already has the most conduits Twitch allows (5).
	CodeConduitLimit = "CONDUIT_LIMIT"
	// CodeShardUpdateFailed: Update Conduit Shards answered 202 but refused some
	// shards; the *ShardUpdateError in the chain lists them.
	CodeShardUpdateFailed = "CONDUIT_SHARD_UPDATE_FAILED"
)

// Conduit is an EventSub conduit.
type Conduit struct {
	ID         string `json:"id"`
	ShardCount int    `json:"shard_count"`
}

// ShardTransport is a shard's transport: a WebSocket session or a webhook callback.
type ShardTransport struct {
	// Method is "websocket" or "webhook".
	Method string `json:"method"`
	// SessionID is the WebSocket session (method websocket).
	SessionID string `json:"session_id,omitempty"`
	// Callback and Secret are the webhook's URL and signing secret (method webhook;
	// Twitch never returns the secret).
	Callback string `json:"callback,omitempty"`
	Secret   string `json:"secret,omitempty"`
	// ConnectedAt and DisconnectedAt are reported for WebSocket shards.
	ConnectedAt    *time.Time `json:"connected_at,omitempty"`
	DisconnectedAt *time.Time `json:"disconnected_at,omitempty"`
}

// String leaves the secret out, so printing a transport leaks nothing.
func (t ShardTransport) String() string {
	if t.Method == "webhook" {
		return "webhook " + t.Callback
	}
	return t.Method + " " + t.SessionID
}

// GoString keeps %#v as safe as %v.
func (t ShardTransport) GoString() string { return t.String() }

// WebSocketShard is the transport of a shard served by a WebSocket session.
func WebSocketShard(sessionID string) ShardTransport {
	return ShardTransport{Method: "websocket", SessionID: sessionID}
}

// WebhookShard is the transport of a shard served by a webhook callback.
func WebhookShard(callback, secret string) ShardTransport {
	return ShardTransport{Method: "webhook", Callback: callback, Secret: secret}
}

// Shard is one shard of a conduit as Twitch reports it. Status is "enabled" or the
// reason it is disabled (websocket_disconnected, notification_failures_exceeded, ...).
type Shard struct {
	ID        string         `json:"id"`
	Status    string         `json:"status"`
	Transport ShardTransport `json:"transport"`
}

// ShardAssignment assigns a transport to shard ID.
type ShardAssignment struct {
	ID        string         `json:"id"`
	Transport ShardTransport `json:"transport"`
}

// ShardError is one shard Update Conduit Shards refused.
type ShardError struct {
	ShardID string `json:"id"`
	Message string `json:"message"`
	Code    string `json:"code"`
}

func (e ShardError) Error() string {
	s := "shard " + e.ShardID + " refused"
	if e.Code != "" {
		s += " (" + e.Code + ")"
	}
	if e.Message != "" {
		s += ": " + e.Message
	}
	return s
}

// ShardUpdateError is what UpdateConduitShards returns (inside a Permanent
// *fault.Error with code CONDUIT_SHARD_UPDATE_FAILED) when Twitch's 202 carried
// per-shard errors: Updated lists the shards it did update, Failed the ones it refused.
type ShardUpdateError struct {
	ConduitID string
	Updated   []Shard
	Failed    []ShardError
}

func (e *ShardUpdateError) Error() string {
	parts := make([]string, 0, len(e.Failed))
	for _, f := range e.Failed {
		parts = append(parts, f.Error())
	}
	return "conduit " + e.ConduitID + ": " + strconv.Itoa(len(e.Failed)) + " of " +
		strconv.Itoa(len(e.Failed)+len(e.Updated)) + " shards not updated: " + strings.Join(parts, "; ")
}

// appClient is the view that sends the app access token (Options.AppTokens). There
// is no fallback to the user token: Twitch would answer 401, and the client would
// spend a refresh of the user token on it.
func (c *Client) appClient(op string) (*Client, error) {
	if c.app == nil {
		return nil, fault.New(fault.Auth, CodeNoToken, "twitch %s needs an app access token; none configured (Options.AppTokens)", op)
	}
	return c.app, nil
}

func (c *Client) conduitsURL(suffix string, q url.Values) string {
	u := c.apiBase + "/eventsub/conduits" + suffix
	if enc := q.Encode(); enc != "" {
		u += "?" + enc
	}
	return u
}

type conduitsBody struct {
	Data []Conduit `json:"data"`
}

// GetConduits lists the app's conduits.
func (c *Client) GetConduits(ctx context.Context) ([]Conduit, error) {
	const endpoint = "GET /eventsub/conduits"
	app, err := c.appClient("get conduits")
	if err != nil {
		return nil, err
	}
	resp, err := app.do(ctx, request{method: http.MethodGet, path: "/eventsub/conduits", url: c.conduitsURL("", nil)})
	if err != nil {
		return nil, wrapf(err, "get conduits")
	}
	var out conduitsBody
	if err := decode(endpoint, resp, &out); err != nil {
		return nil, err
	}
	return out.Data, nil
}

// CreateConduit creates a conduit with shardCount shards (ids "0" … shardCount-1).
// CONDUIT_LIMIT when the app has the most conduits Twitch allows.
func (c *Client) CreateConduit(ctx context.Context, shardCount int) (*Conduit, error) {
	if shardCount < 1 || shardCount > MaxConduitShards {
		return nil, invalidInput("create conduit: shard count %d outside 1..%d", shardCount, MaxConduitShards)
	}
	body, _ := json.Marshal(map[string]int{"shard_count": shardCount})
	return c.conduitWrite(ctx, http.MethodPost, "create conduit", body)
}

// UpdateConduit changes a conduit's shard count; lowering it disables the shards
// above the new count.
func (c *Client) UpdateConduit(ctx context.Context, id string, shardCount int) (*Conduit, error) {
	if id == "" {
		return nil, invalidInput("update conduit: id is required")
	}
	if shardCount < 1 || shardCount > MaxConduitShards {
		return nil, invalidInput("update conduit %s: shard count %d outside 1..%d", id, shardCount, MaxConduitShards)
	}
	body, _ := json.Marshal(map[string]any{"id": id, "shard_count": shardCount})
	return c.conduitWrite(ctx, http.MethodPatch, "update conduit "+id, body)
}

func (c *Client) conduitWrite(ctx context.Context, method, op string, body []byte) (*Conduit, error) {
	endpoint := method + " /eventsub/conduits"
	app, err := c.appClient(op)
	if err != nil {
		return nil, err
	}
	resp, err := app.do(ctx, request{method: method, path: "/eventsub/conduits", url: c.conduitsURL("", nil), body: body})
	if err != nil {
		return nil, wrapf(err, "%s", op)
	}
	var out conduitsBody
	if err := decode(endpoint, resp, &out); err != nil {
		return nil, err
	}
	if len(out.Data) != 1 || out.Data[0].ID == "" {
		return nil, malformed(endpoint, errorf("expected one conduit in data, got %d", len(out.Data)))
	}
	return &out.Data[0], nil
}

// DeleteConduit deletes a conduit and, with it, its subscriptions (204).
func (c *Client) DeleteConduit(ctx context.Context, id string) error {
	if id == "" {
		return invalidInput("delete conduit: id is required")
	}
	app, err := c.appClient("delete conduit")
	if err != nil {
		return err
	}
	u := c.conduitsURL("", url.Values{"id": {id}})
	if _, err := app.do(ctx, request{method: http.MethodDelete, path: "/eventsub/conduits", url: u}); err != nil {
		return wrapf(err, "delete conduit %s", id)
	}
	return nil
}

type shardsBody struct {
	Data       []Shard      `json:"data"`
	Errors     []ShardError `json:"errors"`
	Pagination struct {
		Cursor string `json:"cursor"`
	} `json:"pagination"`
}

// GetConduitShards lists a conduit's shards, following every page; status (optional)
// keeps only the shards with that status.
func (c *Client) GetConduitShards(ctx context.Context, conduitID, status string) ([]Shard, error) {
	const endpoint = "GET /eventsub/conduits/shards"
	if conduitID == "" {
		return nil, invalidInput("get conduit shards: conduit id is required")
	}
	app, err := c.appClient("get conduit shards")
	if err != nil {
		return nil, err
	}
	q := url.Values{"conduit_id": {conduitID}}
	if status != "" {
		q.Set("status", status)
	}
	var shards []Shard
	for page := 0; ; page++ {
		if page >= maxListPages {
			return nil, malformed(endpoint, errorf("more than %d pages", maxListPages))
		}
		resp, err := app.do(ctx, request{method: http.MethodGet, path: "/eventsub/conduits/shards", url: c.conduitsURL("/shards", q)})
		if err != nil {
			return nil, wrapf(err, "get shards of conduit %s", conduitID)
		}
		var out shardsBody
		if err := decode(endpoint, resp, &out); err != nil {
			return nil, err
		}
		shards = append(shards, out.Data...)
		cursor := out.Pagination.Cursor
		if cursor == "" || len(out.Data) == 0 || cursor == q.Get("after") {
			return shards, nil
		}
		q.Set("after", cursor)
	}
}

// UpdateConduitShards assigns transports to shards. Twitch answers 202 even when it
// refused some shards: then the shards it did update are returned together with an
// error (code CONDUIT_SHARD_UPDATE_FAILED) whose *ShardUpdateError lists each refused
// shard — never a silent success.
func (c *Client) UpdateConduitShards(ctx context.Context, conduitID string, shards []ShardAssignment) ([]Shard, error) {
	const endpoint = "PATCH /eventsub/conduits/shards"
	if conduitID == "" {
		return nil, invalidInput("update conduit shards: conduit id is required")
	}
	if len(shards) == 0 || len(shards) > maxShardsPerUpdate {
		return nil, invalidInput("update conduit %s shards: %d shards given, want 1..%d", conduitID, len(shards), maxShardsPerUpdate)
	}
	for _, s := range shards {
		if err := checkShardAssignment(s); err != nil {
			return nil, invalidInput("update conduit %s shards: %v", conduitID, err)
		}
	}
	app, err := c.appClient("update conduit shards")
	if err != nil {
		return nil, err
	}
	body, err := json.Marshal(map[string]any{"conduit_id": conduitID, "shards": shards})
	if err != nil {
		return nil, invalidInput("update conduit %s shards: %v", conduitID, err)
	}
	resp, err := app.do(ctx, request{method: http.MethodPatch, path: "/eventsub/conduits/shards", url: c.conduitsURL("/shards", nil), body: body})
	if err != nil {
		return nil, wrapf(err, "update conduit %s shards", conduitID)
	}
	var out shardsBody
	if err := decode(endpoint, resp, &out); err != nil {
		return nil, err
	}
	if len(out.Errors) > 0 {
		e := &ShardUpdateError{ConduitID: conduitID, Updated: out.Data, Failed: out.Errors}
		return out.Data, fault.Wrap(fault.Permanent, CodeShardUpdateFailed, e, "twitch %s", endpoint)
	}
	return out.Data, nil
}

func checkShardAssignment(s ShardAssignment) error {
	if _, err := strconv.Atoi(s.ID); err != nil || s.ID == "" {
		return errorf("shard id %q is not a number", s.ID)
	}
	switch t := s.Transport; t.Method {
	case "websocket":
		if t.SessionID == "" {
			return errorf("shard %s: websocket transport needs a session id", s.ID)
		}
	case "webhook":
		if !strings.HasPrefix(t.Callback, "https://") && !strings.HasPrefix(t.Callback, "http://") {
			return errorf("shard %s: webhook callback must be an http(s) URL", s.ID)
		}
		if n := len(t.Secret); n < minWebhookSecretLength || n > maxWebhookSecretLength {
			return errorf("shard %s: webhook secret must be %d..%d characters, got %d", s.ID, minWebhookSecretLength, maxWebhookSecretLength, n)
		}
	default:
		return errorf("shard %s: unsupported transport method %q", s.ID, t.Method)
	}
	return nil
}
