package twitch

import (
	"encoding/json"
	"errors"
	"time"

	"github.com/bitbrat/twitch-edge/shared/fault"
)

// EventSub WebSocket message types (metadata.message_type).
const (
	MessageTypeWelcome      = "session_welcome"
	MessageTypeKeepalive    = "session_keepalive"
	MessageTypeNotification = "notification"
	MessageTypeReconnect    = "session_reconnect"
	MessageTypeRevocation   = "revocation"
)

// Subscription types and versions this project consumes.
const (
	TypeChannelFollow    = "channel.follow"
	VersionChannelFollow = "2"
	TypeChannelUpdate    = "channel.update"
	VersionChannelUpdate = "2"
)

// Subscription statuses Twitch reports (in lists and in revocation messages).
const (
	StatusEnabled                      = "enabled"
	StatusAuthorizationRevoked         = "authorization_revoked"
	StatusUserRemoved                  = "user_removed"
	StatusModeratorRemoved             = "moderator_removed"
	StatusVersionRemoved               = "version_removed"
	StatusWebSocketDisconnected        = "websocket_disconnected"
	StatusWebSocketFailedPingPong      = "websocket_failed_ping_pong"
	StatusWebSocketInboundTraffic      = "websocket_received_inbound_traffic"
	StatusWebSocketConnectionUnused    = "websocket_connection_unused"
	StatusWebSocketInternalError       = "websocket_internal_error"
	StatusWebSocketNetworkTimeout      = "websocket_network_timeout"
	StatusWebSocketNetworkError        = "websocket_network_error"
	StatusWebSocketFailedToReconnect   = "websocket_failed_to_reconnect"
	StatusConduitDeleted               = "conduit_deleted"
	StatusNotificationFailuresExceeded = "notification_failures_exceeded"
)

// RevocationIsFinal reports whether a subscription revoked with status stays gone
// until someone fixes the cause (the broadcaster authorizes the app again, a newer
// version is used): recreating it would only be revoked again. conduit_deleted and
// the transport statuses are not final; the subscription can be made again.
func RevocationIsFinal(status string) bool {
	switch status {
	case StatusAuthorizationRevoked, StatusUserRemoved, StatusModeratorRemoved, StatusVersionRemoved:
		return true
	}
	return false
}

// WebSocket close codes Twitch uses.
const (
	CloseInternalServerError = 4000
	CloseClientSentInbound   = 4001
	CloseFailedPingPong      = 4002
	CloseConnectionUnused    = 4003
	CloseReconnectGrace      = 4004
	CloseNetworkTimeout      = 4005
	CloseNetworkError        = 4006
	CloseInvalidReconnect    = 4007
)

// Metadata identifies a WebSocket message. SubscriptionType and SubscriptionVersion
// are set on notifications and revocations only.
type Metadata struct {
	MessageID           string    `json:"message_id"`
	MessageType         string    `json:"message_type"`
	MessageTimestamp    time.Time `json:"message_timestamp"`
	SubscriptionType    string    `json:"subscription_type,omitempty"`
	SubscriptionVersion string    `json:"subscription_version,omitempty"`
}

// Message is one frame of the EventSub WebSocket: metadata plus a payload whose shape
// depends on the message type. The payload stays raw so an unknown message type is
// still a valid Message.
type Message struct {
	Metadata Metadata        `json:"metadata"`
	Payload  json.RawMessage `json:"payload"`
}

// Session describes a WebSocket connection (welcome and reconnect messages).
type Session struct {
	ID     string `json:"id"`
	Status string `json:"status"`
	// KeepaliveTimeoutSeconds is null in a reconnect message.
	KeepaliveTimeoutSeconds *int `json:"keepalive_timeout_seconds"`
	// ReconnectURL is set only in a reconnect message; connect to it exactly as given.
	ReconnectURL *string   `json:"reconnect_url"`
	ConnectedAt  time.Time `json:"connected_at"`
	// RecoveryURL is used by conduit shards; null otherwise.
	RecoveryURL *string `json:"recovery_url,omitempty"`
}

// Transport is where a subscription delivers events.
type Transport struct {
	Method string `json:"method"`
	// SessionID is the WebSocket session (method "websocket").
	SessionID string `json:"session_id,omitempty"`
	// ConduitID is the conduit (method "conduit").
	ConduitID string `json:"conduit_id,omitempty"`
	// Callback is the webhook URL (method "webhook"; not used by this project).
	Callback string `json:"callback,omitempty"`
	// ConnectedAt and DisconnectedAt are reported by Twitch for WebSocket transports.
	ConnectedAt    *time.Time `json:"connected_at,omitempty"`
	DisconnectedAt *time.Time `json:"disconnected_at,omitempty"`
}

// WebSocketTransport targets a WebSocket session.
func WebSocketTransport(sessionID string) Transport {
	return Transport{Method: "websocket", SessionID: sessionID}
}

// ConduitTransport targets a conduit.
func ConduitTransport(conduitID string) Transport {
	return Transport{Method: "conduit", ConduitID: conduitID}
}

// Subscription is an EventSub subscription as Twitch reports it.
type Subscription struct {
	ID        string            `json:"id"`
	Status    string            `json:"status"`
	Type      string            `json:"type"`
	Version   string            `json:"version"`
	Condition map[string]string `json:"condition"`
	Transport Transport         `json:"transport"`
	CreatedAt time.Time         `json:"created_at"`
	Cost      int               `json:"cost"`
}

// SessionPayload is the payload of welcome and reconnect messages.
type SessionPayload struct {
	Session Session `json:"session"`
}

// NotificationPayload is the payload of a notification. Event stays raw: the
// connector relays it unchanged, and the normalizer decodes the types it knows.
type NotificationPayload struct {
	Subscription Subscription    `json:"subscription"`
	Event        json.RawMessage `json:"event"`
}

// RevocationPayload is the payload of a revocation; Subscription.Status is the reason.
type RevocationPayload struct {
	Subscription Subscription `json:"subscription"`
}

// ChannelFollowEvent is the event of channel.follow v2.
type ChannelFollowEvent struct {
	UserID               string    `json:"user_id"`
	UserLogin            string    `json:"user_login"`
	UserName             string    `json:"user_name"`
	BroadcasterUserID    string    `json:"broadcaster_user_id"`
	BroadcasterUserLogin string    `json:"broadcaster_user_login"`
	BroadcasterUserName  string    `json:"broadcaster_user_name"`
	FollowedAt           time.Time `json:"followed_at"`
}

// ChannelUpdateEvent is the event of channel.update v2.
type ChannelUpdateEvent struct {
	BroadcasterUserID           string   `json:"broadcaster_user_id"`
	BroadcasterUserLogin        string   `json:"broadcaster_user_login"`
	BroadcasterUserName         string   `json:"broadcaster_user_name"`
	Title                       string   `json:"title"`
	Language                    string   `json:"language"`
	CategoryID                  string   `json:"category_id"`
	CategoryName                string   `json:"category_name"`
	ContentClassificationLabels []string `json:"content_classification_labels"`
}

// CodeBadFrame is the error code of an EventSub frame that cannot be read.
const CodeBadFrame = "EVENTSUB_BAD_FRAME"

// errNoMetadata is returned for a frame without the fields every message has.
var errNoMetadata = errors.New("eventsub message without metadata.message_type or metadata.message_id")

// DecodeMessage parses a WebSocket frame. It tolerates unknown fields and unknown
// message and subscription types; it fails only for a frame that is not JSON or lacks
// message_type or message_id. Errors are Invalid: the same frame never decodes.
func DecodeMessage(frame []byte) (*Message, error) {
	var m Message
	if err := json.Unmarshal(frame, &m); err != nil {
		return nil, fault.Wrap(fault.Invalid, CodeBadFrame, err, "decode eventsub message")
	}
	if m.Metadata.MessageType == "" || m.Metadata.MessageID == "" {
		return nil, fault.Wrap(fault.Invalid, CodeBadFrame, errNoMetadata, "decode eventsub message")
	}
	return &m, nil
}

// ParseMetadata extracts only the metadata of a frame: the connector's per-frame
// work (dedupe by message id, staleness by timestamp, routing by type) without
// decoding the payload. It accepts and rejects exactly what DecodeMessage does (the
// fuzz target checks this) at a fraction of the cost; see BenchmarkParseMetadata.
func ParseMetadata(frame []byte) (Metadata, error) {
	md, err := scanMetadata(frame)
	if err != nil {
		return Metadata{}, fault.Wrap(fault.Invalid, CodeBadFrame, err, "decode eventsub metadata")
	}
	if md.MessageType == "" || md.MessageID == "" {
		return Metadata{}, fault.Wrap(fault.Invalid, CodeBadFrame, errNoMetadata, "decode eventsub metadata")
	}
	return md, nil
}

// Session decodes the payload of a welcome or reconnect message.
func (m *Message) Session() (*Session, error) {
	var p SessionPayload
	if err := m.decodePayload(&p); err != nil {
		return nil, err
	}
	if p.Session.ID == "" {
		return nil, fault.New(fault.Invalid, CodeBadFrame, "%s without session id", m.Metadata.MessageType)
	}
	return &p.Session, nil
}

// Notification decodes the payload of a notification; Event stays raw.
func (m *Message) Notification() (*NotificationPayload, error) {
	var p NotificationPayload
	if err := m.decodePayload(&p); err != nil {
		return nil, err
	}
	if p.Subscription.Type == "" {
		return nil, fault.New(fault.Invalid, CodeBadFrame, "notification without subscription type")
	}
	return &p, nil
}

// Revocation decodes the payload of a revocation.
func (m *Message) Revocation() (*RevocationPayload, error) {
	var p RevocationPayload
	if err := m.decodePayload(&p); err != nil {
		return nil, err
	}
	return &p, nil
}

func (m *Message) decodePayload(v any) error {
	if len(m.Payload) == 0 {
		return fault.New(fault.Invalid, CodeBadFrame, "%s without payload", m.Metadata.MessageType)
	}
	if err := json.Unmarshal(m.Payload, v); err != nil {
		return fault.Wrap(fault.Invalid, CodeBadFrame, err, "decode %s payload", m.Metadata.MessageType)
	}
	return nil
}
