package faketwitch

import (
	"context"
	"fmt"
	"time"

	"cloud.google.com/go/firestore"

	"github.com/bitbrat/twitch-edge/shared/twitch/twitchtest"
)

// BotTokenDocPath is where upstream's OAuth flow keeps the bot's token (CONTRACT.md).
const BotTokenDocPath = "oauth/twitch/bot/token"

// SeedBotToken writes tok as the bot's token document, with exactly CONTRACT.md's
// fields, so that the connector and the egress functions take the real token-provider
// path (Firestore document, refresh lease) against the fake.
func SeedBotToken(ctx context.Context, fs *firestore.Client, tok twitchtest.Token) error {
	now := time.Now()
	expiresIn := int64(4 * time.Hour / time.Second)
	if !tok.ExpiresAt.IsZero() {
		expiresIn = int64(tok.ExpiresAt.Sub(now) / time.Second)
	}
	scopes := make([]any, len(tok.Scopes))
	for i, sc := range tok.Scopes {
		scopes[i] = sc
	}
	_, err := fs.Doc(BotTokenDocPath).Set(ctx, map[string]any{
		"accessToken":         tok.AccessToken,
		"refreshToken":        tok.RefreshToken,
		"scope":               scopes,
		"expiresIn":           expiresIn,
		"obtainmentTimestamp": now.UnixMilli(),
		"userId":              tok.UserID,
	})
	if err != nil {
		return fmt.Errorf("seed %s: %w", BotTokenDocPath, err)
	}
	return nil
}
