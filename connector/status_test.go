package main

import (
	"testing"
	"time"

	"github.com/bitbrat/twitch-edge/shared/event"
	"github.com/bitbrat/twitch-edge/shared/twitch/twitchtest"
)

// In WebSocket mode, the session's changes are status events on internal.ingress.v1
// with the status attributes: connected at the welcome, a subscription revoked, and
// disconnected when the instance stops.
func TestWebSocketModeStatusEvents(t *testing.T) {
	h := newHarness(t, twitchtest.Options{})
	status := watchStatus(t, h)
	a := h.start("a", func(c *Config) { c.Topics.Ingress = ingressTopic })
	h.waitReady(a, 20*time.Second)
	h.waitFor("a session CONNECTED event", 30*time.Second, func() bool {
		return status.find(func(e event.ConnectorStatus) bool {
			return e.Subject == "session" && e.CurrentState == event.StateConnected && e.Connector == event.ConnectorName &&
				e.Type == event.TypeConnectorStatusChanged && e.InstanceID == "a" && e.Timestamp != ""
		})
	})
	subs := h.tw.EnabledSubscriptions()
	if err := h.tw.Revoke(subs[0].ID, "authorization_revoked"); err != nil {
		t.Fatal(err)
	}
	h.waitFor("a subscription ERROR event", 30*time.Second, func() bool {
		return status.find(func(e event.ConnectorStatus) bool {
			return e.Subject == "subscription" && e.CurrentState == event.StateError && e.Reason == "authorization_revoked" &&
				e.SubscriptionType == subs[0].Type
		})
	})
	a.stop()
	h.waitFor("a session DISCONNECTED event", 30*time.Second, func() bool {
		return status.find(func(e event.ConnectorStatus) bool {
			return e.Subject == "session" && e.CurrentState == event.StateDisconnected
		})
	})
}
