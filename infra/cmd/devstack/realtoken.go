package main

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/bitbrat/twitch-edge/infra/stack"
	"github.com/bitbrat/twitch-edge/shared/fault"
	"github.com/bitbrat/twitch-edge/shared/store"
	"github.com/bitbrat/twitch-edge/shared/twitch"
)

// checkRealToken finds the bot's token the way the stack will (TWITCH_BOT_ACCESS_TOKEN,
// or the token document in the Firestore emulator named by FIRESTORE_EMULATOR_HOST)
// and asks Twitch whether it works, before any emulator starts. An expired token with
// a refresh token and the client secret is fine: the components refresh it.
func checkRealToken(ctx context.Context, out *printer, o stack.Options) error {
	tw := o.RealTwitch
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	access, refresh, from := tw.BotAccessToken.Reveal(), "", "TWITCH_BOT_ACCESS_TOKEN"
	if access == "" {
		if o.FirestoreHost == "" {
			return errors.New("real Twitch: no bot token. Set TWITCH_BOT_ACCESS_TOKEN, or start your own Firestore emulator, " +
				"store a token in it with `bin/twitchctl login` and set FIRESTORE_EMULATOR_HOST (README, With real Twitch); " +
				"each `make run` otherwise starts an empty emulator")
		}
		fs, err := store.NewClient(ctx, o.Project, "", store.WithEmulator(o.FirestoreHost))
		if err != nil {
			return fmt.Errorf("real Twitch: %w", err)
		}
		defer fs.Close()
		tok, err := store.NewTokenStore(fs).LoadToken(ctx, twitch.RoleBot)
		if errors.Is(err, twitch.ErrTokenNotFound) {
			return fmt.Errorf("real Twitch: no bot token in oauth/twitch/bot/token (project %s, Firestore emulator %s): run `bin/twitchctl login --firestore %s --project %s`",
				o.Project, o.FirestoreHost, o.FirestoreHost, o.Project)
		}
		if err != nil {
			return fmt.Errorf("real Twitch: read the bot token from the Firestore emulator at %s (is it running?): %w", o.FirestoreHost, err)
		}
		access, refresh, from = tok.AccessToken, tok.RefreshToken, "oauth/twitch/bot/token"
	}
	oa := twitch.NewOAuth(twitch.OAuthOptions{BaseURL: tw.AuthBaseURL, ClientID: tw.ClientID})
	v, err := oa.ValidateToken(ctx, access)
	var fe *fault.Error
	switch {
	case err == nil:
	case errors.As(err, &fe) && fe.Code == twitch.CodeTokenInvalid && refresh != "" && tw.ClientSecret.Set():
		out.line("stack", "the bot token in %s has expired; the components will refresh it (TWITCH_CLIENT_SECRET is set)", from)
		return nil
	case errors.As(err, &fe) && fe.Code == twitch.CodeTokenInvalid:
		return fmt.Errorf("real Twitch: the bot token in %s is expired or revoked and cannot be refreshed here (no refresh token or no TWITCH_CLIENT_SECRET): run `bin/twitchctl login`", from)
	default:
		return fmt.Errorf("real Twitch: validate the bot token at %s: %w", tw.AuthBaseURL, err)
	}
	if v.ClientID != tw.ClientID {
		return fmt.Errorf("real Twitch: the bot token in %s belongs to client id %s, not TWITCH_CLIENT_ID %s: log in with this app", from, v.ClientID, tw.ClientID)
	}
	if tw.BotUserID != "" && v.UserID != tw.BotUserID {
		return fmt.Errorf("real Twitch: the bot token in %s is user %s's (%s), not TWITCH_BOT_USER_ID %s", from, v.UserID, v.Login, tw.BotUserID)
	}
	missing := twitch.MissingScopes(twitch.BotScopes(), v.Scopes)
	note := "all the scopes the edge needs"
	if len(missing) > 0 {
		note = "MISSING scopes " + strings.Join(missing, " ") + " (follows, whispers or chat will fail; `bin/twitchctl login` asks for them)"
	}
	out.line("stack", "bot token from %s: user %s (%s), valid for %s, %s", from, v.Login, v.UserID, time.Duration(v.ExpiresIn)*time.Second, note)
	return nil
}
