package faketwitch

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
)

// DefaultControlURL is where `make run` serves the control API.
const DefaultControlURL = "http://127.0.0.1:8090"

// Client calls a fake Twitch's control API (twitchctl uses it).
type Client struct {
	// BaseURL is the control API, e.g. DefaultControlURL.
	BaseURL string
	// HTTP defaults to a client with a 15 s timeout.
	HTTP *http.Client
}

// APIError is a non-2xx answer of the control API.
type APIError struct {
	Status  int
	Message string
}

func (e *APIError) Error() string {
	return fmt.Sprintf("fake twitch: %s (HTTP %d)", e.Message, e.Status)
}

func (c *Client) do(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return fmt.Errorf("encode %s request: %w", path, err)
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, strings.TrimRight(c.BaseURL, "/")+path, body)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	hc := c.HTTP
	if hc == nil {
		hc = &http.Client{Timeout: 15 * time.Second}
	}
	resp, err := hc.Do(req)
	if err != nil {
		return fmt.Errorf("reach the fake Twitch's control API at %s (is `make run` up?): %w", c.BaseURL, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
	if err != nil {
		return fmt.Errorf("%s %s: read answer: %w", method, path, err)
	}
	if resp.StatusCode/100 != 2 {
		var eb ErrorBody
		if json.Unmarshal(b, &eb) != nil || eb.Error == "" {
			eb.Error = strings.TrimSpace(string(b))
		}
		return &APIError{Status: resp.StatusCode, Message: eb.Error}
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			return fmt.Errorf("%s %s: decode answer: %w", method, path, err)
		}
	}
	return nil
}

// Trigger sends an EventSub notification.
func (c *Client) Trigger(ctx context.Context, r TriggerRequest) (TriggerResult, error) {
	var out TriggerResult
	return out, c.do(ctx, http.MethodPost, "/trigger", r, &out)
}

// Reconnect sends session_reconnect.
func (c *Client) Reconnect(ctx context.Context, r SessionRequest) (SessionResult, error) {
	var out SessionResult
	return out, c.do(ctx, http.MethodPost, "/reconnect", r, &out)
}

// Revoke revokes subscriptions.
func (c *Client) Revoke(ctx context.Context, r RevokeRequest) (RevokeResult, error) {
	var out RevokeResult
	return out, c.do(ctx, http.MethodPost, "/revoke", r, &out)
}

// Close closes the socket with a close code.
func (c *Client) Close(ctx context.Context, r CloseRequest) (SessionResult, error) {
	var out SessionResult
	return out, c.do(ctx, http.MethodPost, "/close", r, &out)
}

// Drop cuts the socket's TCP connection.
func (c *Client) Drop(ctx context.Context, r SessionRequest) (SessionResult, error) {
	var out SessionResult
	return out, c.do(ctx, http.MethodPost, "/drop", r, &out)
}

// Silence stops the socket's keepalives.
func (c *Client) Silence(ctx context.Context, r SessionRequest) (SessionResult, error) {
	var out SessionResult
	return out, c.do(ctx, http.MethodPost, "/silence", r, &out)
}

// Deliveries lists the chat messages and whispers received.
func (c *Client) Deliveries(ctx context.Context) (Deliveries, error) {
	var out Deliveries
	return out, c.do(ctx, http.MethodGet, "/deliveries", nil, &out)
}

// Sessions lists live sockets and subscriptions.
func (c *Client) Sessions(ctx context.Context) (Sessions, error) {
	var out Sessions
	return out, c.do(ctx, http.MethodGet, "/sessions", nil, &out)
}

// Users lists the seeded users.
func (c *Client) Users(ctx context.Context) ([]UserView, error) {
	var out []UserView
	return out, c.do(ctx, http.MethodGet, "/users", nil, &out)
}
