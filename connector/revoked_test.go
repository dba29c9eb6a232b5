package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/bitbrat/twitch-edge/shared/twitch/twitchtest"
)

// TestEveryRevocationIsRememberedAndRetriedOnANewToken: with every subscription
// revoked the connector is not ready and says why; a restart remembers the
// revocations (Firestore) instead of asking Twitch again at once; and when the bot's
// token changes (someone re-authorized) it subscribes again and gets ready by
// itself. Before, it idled unready-but-silent until restarted, and a restart asked
// again at once.
func TestEveryRevocationIsRememberedAndRetriedOnANewToken(t *testing.T) {
	h := newHarness(t, twitchtest.Options{})
	h.seedToken()
	fast := func(c *Config) { c.TokenCheck = 200 * time.Millisecond }
	a := h.start("a", fast)
	h.waitReady(a, 20*time.Second)
	for _, s := range h.tw.EnabledSubscriptions() {
		if err := h.tw.Revoke(s.ID, "authorization_revoked"); err != nil {
			t.Fatal(err)
		}
	}
	h.waitFor("not ready, naming the revocations", 20*time.Second, func() bool {
		ok, why := a.app.Ready()
		return !ok && strings.Contains(why, "every subscription is revoked") && strings.Contains(why, "authorization_revoked")
	})
	h.waitFor("the revocations recorded in Firestore", 20*time.Second, func() bool {
		subs, err := a.app.state.Subscriptions(context.Background())
		n := 0
		for _, s := range subs {
			if s.Status == "authorization_revoked" {
				n++
			}
		}
		return err == nil && n == len(a.app.specs)
	})
	a.stop()

	creates := len(h.tw.RequestsTo("POST", "/helix/eventsub/subscriptions"))
	b := h.start("b", fast)
	h.waitFor("the restarted instance to remember the revocations", 20*time.Second, func() bool {
		_, why := b.app.Ready()
		return strings.Contains(why, "every subscription is revoked")
	})
	if n := len(h.tw.RequestsTo("POST", "/helix/eventsub/subscriptions")); n != creates {
		t.Fatalf("the restart asked Twitch for %d revoked subscriptions at once", n-creates)
	}
	// Re-authorization writes a new token document.
	_, err := h.fs.Collection("oauth").Doc("twitch").Collection("bot").Doc("token").Set(context.Background(),
		map[string]any{"accessToken": "token-after-reauthorization", "userId": botID})
	if err != nil {
		t.Fatal(err)
	}
	h.waitReady(b, 30*time.Second)
	if n := len(h.tw.EnabledSubscriptions()); n != len(b.app.specs) {
		t.Fatalf("%d subscriptions enabled after the new token, want %d", n, len(b.app.specs))
	}
}
