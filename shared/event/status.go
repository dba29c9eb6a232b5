package event

import (
	"time"
)

// TypeConnectorStatusChanged is the `type` of upstream BitBrat's connector status
// events on internal.ingress.v1 (CONTRACT.md, "Status events").
const TypeConnectorStatusChanged = "connector.status.changed"

// ConnectorName is this edge's `connector` in status events.
const ConnectorName = "twitch"

// Connector states, upstream's set. Every state change of this edge maps onto one of
// them; Detail says what changed (a shard, a subscription, a reconcile round).
const (
	StateDisconnected = "DISCONNECTED"
	StateConnecting   = "CONNECTING"
	StateConnected    = "CONNECTED"
	StateError        = "ERROR"
)

// ConnectorStatus is a connector.status.changed event: a plain JSON object, not an
// InternalEventV2. The members after InstanceID are this edge's details; upstream
// consumers ignore members they do not know.
type ConnectorStatus struct {
	Type          string `json:"type"`
	Connector     string `json:"connector"`
	PreviousState string `json:"previousState"`
	CurrentState  string `json:"currentState"`
	Timestamp     string `json:"timestamp"`
	InstanceID    string `json:"instanceId"`

	// Subject names what changed: "session", "shard", "instance", "subscription",
	// "reconcile".
	Subject string `json:"subject,omitempty"`
	// Shard is the conduit shard id, for subject "shard".
	Shard string `json:"shard,omitempty"`
	// SubscriptionID and SubscriptionType name the subscription, for subject
	// "subscription".
	SubscriptionID   string `json:"subscriptionId,omitempty"`
	SubscriptionType string `json:"subscriptionType,omitempty"`
	// BroadcasterID is the channel concerned, when there is one.
	BroadcasterID string `json:"broadcasterId,omitempty"`
	// Reason is Twitch's status or our own, in words (e.g. "authorization_revoked",
	// "websocket_disconnected", "lease lost").
	Reason string `json:"reason,omitempty"`
	// Details carries counts and other figures (a reconcile round's result).
	Details map[string]any `json:"details,omitempty"`
}

// NewConnectorStatus returns a status event from previous to current, stamped at.
func NewConnectorStatus(instanceID, subject, previous, current string, at time.Time) ConnectorStatus {
	return ConnectorStatus{
		Type:          TypeConnectorStatusChanged,
		Connector:     ConnectorName,
		PreviousState: previous,
		CurrentState:  current,
		Timestamp:     at.UTC().Format(time.RFC3339Nano),
		InstanceID:    instanceID,
		Subject:       subject,
	}
}

// StatusAttributes are the Pub/Sub attributes of a status event on
// internal.ingress.v1, so subscribers can filter them from InternalEventV2 traffic.
func StatusAttributes() map[string]string {
	return map[string]string{AttrType: TypeConnectorStatusChanged, "source": "twitch-edge"}
}
