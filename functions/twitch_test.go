package functions

import (
	"context"
	"strings"
	"testing"

	"github.com/bitbrat/twitch-edge/shared/config"
	"github.com/bitbrat/twitch-edge/shared/emulators"
	"github.com/bitbrat/twitch-edge/shared/store"
)

// The bot's token is read from TWITCH_TOKEN_DATABASE when it is set (a database apart,
// readable only by the components that use the token), and from the shared database,
// upstream's location, otherwise.
func TestTokenDatabaseIsConfigurable(t *testing.T) {
	ctx := context.Background()
	t.Setenv("TWITCH_CLIENT_ID", "client")
	t.Setenv("TWITCH_BOT_USER_ID", "")
	t.Setenv("TWITCH_BOT_ACCESS_TOKEN", "")
	p := emulators.ProjectID(t)
	shared, err := store.NewClient(ctx, p, "", store.WithEmulator(emulators.Host(emulators.Firestore)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { shared.Close() })
	private, err := store.NewClient(ctx, p, "tokens", store.WithEmulator(emulators.Host(emulators.Firestore)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { private.Close() })
	if _, err := private.Collection("oauth").Doc("twitch").Collection("bot").Doc("token").Set(ctx, map[string]any{
		"accessToken": "a", "refreshToken": "r", "scope": []string{"user:write:chat"}, "expiresIn": 14400,
		"obtainmentTimestamp": 1, "userId": "900",
	}); err != nil {
		t.Fatal(err)
	}
	apart := &env{common: config.Common{Project: p, Database: "(default)"}, fns: Settings{TokenDatabase: "tokens"}, fs: shared}
	if id, err := apart.botUserID(ctx); err != nil || id != "900" {
		t.Fatalf("token database apart: bot %q, %v", id, err)
	}
	upstream := &env{common: config.Common{Project: p, Database: "(default)"}, fs: shared}
	if _, err := upstream.botUserID(ctx); err == nil || !strings.Contains(err.Error(), "oauth/twitch/bot/token") {
		t.Fatalf("upstream location (empty here): %v, want token not found", err)
	}
}
