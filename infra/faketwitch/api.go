package faketwitch

import "time"

// The control API's requests and answers (JSON). Every POST body is optional where
// all its fields are; unknown fields are rejected with 400, as are bad values.

// TriggerRequest is POST /trigger: push an EventSub notification to the connector.
type TriggerRequest struct {
	// Type is "channel.follow" or "channel.update".
	Type string `json:"type"`
	// Broadcaster is a channel's login; default the first seeded channel.
	Broadcaster string `json:"broadcaster,omitempty"`
	// User is the follower's login (channel.follow only); default the next viewer.
	User string `json:"user,omitempty"`
	// Title and Category of a channel.update; defaults are made up.
	Title    string `json:"title,omitempty"`
	Category string `json:"category,omitempty"`
}

// TriggerResult lists the notifications sent (one per matching subscription).
type TriggerResult struct {
	Type        string   `json:"type"`
	Broadcaster string   `json:"broadcaster"`
	User        string   `json:"user,omitempty"`
	MessageIDs  []string `json:"messageIds"`
}

// SessionRequest is the body of POST /reconnect, /drop and /silence: which socket.
// Empty: the newest live socket that is not already reconnecting.
type SessionRequest struct {
	Session string `json:"session,omitempty"`
}

// CloseRequest is POST /close: close the socket with a WebSocket close code
// (Twitch uses 4000–4007).
type CloseRequest struct {
	Code    int    `json:"code"`
	Session string `json:"session,omitempty"`
}

// RevokeRequest is POST /revoke: revoke the enabled subscriptions of a type.
type RevokeRequest struct {
	Type string `json:"type"`
	// Broadcaster limits the revocation to one channel (login); default all.
	Broadcaster string `json:"broadcaster,omitempty"`
	// Reason is the status Twitch reports; default "authorization_revoked".
	Reason string `json:"reason,omitempty"`
}

// SessionResult names the socket an action applied to.
type SessionResult struct {
	Session string `json:"session"`
	// ReconnectURL is set by /reconnect.
	ReconnectURL string `json:"reconnectUrl,omitempty"`
}

// RevokeResult lists the revoked subscription ids.
type RevokeResult struct {
	Revoked []string `json:"revoked"`
}

// ChatDelivery is a chat message the fake Helix received.
type ChatDelivery struct {
	Time      time.Time `json:"time"`
	Channel   string    `json:"channel"` // login
	Sender    string    `json:"sender"`  // login
	Message   string    `json:"message"`
	MessageID string    `json:"messageId,omitempty"`
	Sent      bool      `json:"sent"`
	DropCode  string    `json:"dropCode,omitempty"`
}

// WhisperDelivery is a whisper the fake Helix accepted.
type WhisperDelivery struct {
	Time      time.Time `json:"time"`
	From      string    `json:"from"` // login
	To        string    `json:"to"`   // login
	ToID      string    `json:"toId"`
	Message   string    `json:"message"`
	Truncated bool      `json:"truncated,omitempty"`
}

// Deliveries is GET /deliveries.
type Deliveries struct {
	Chat     []ChatDelivery    `json:"chat"`
	Whispers []WhisperDelivery `json:"whispers"`
}

// SessionView is one live EventSub socket.
type SessionView struct {
	ID               string    `json:"id"`
	ConnectedAt      time.Time `json:"connectedAt"`
	KeepaliveSeconds int       `json:"keepaliveSeconds"`
	Reconnecting     bool      `json:"reconnecting,omitempty"`
	Subscriptions    int       `json:"subscriptions"`
}

// SubscriptionView is one EventSub subscription.
type SubscriptionView struct {
	ID          string `json:"id"`
	Type        string `json:"type"`
	Version     string `json:"version"`
	Status      string `json:"status"`
	Broadcaster string `json:"broadcaster"` // login
	Session     string `json:"session,omitempty"`
}

// Sessions is GET /sessions.
type Sessions struct {
	Sessions      []SessionView      `json:"sessions"`
	Subscriptions []SubscriptionView `json:"subscriptions"`
}

// UserView is a seeded user (GET /users).
type UserView struct {
	ID          string `json:"id"`
	Login       string `json:"login"`
	DisplayName string `json:"displayName"`
	Role        string `json:"role"` // bot | channel | viewer
}

// ErrorBody is every non-2xx answer.
type ErrorBody struct {
	Error string `json:"error"`
}
