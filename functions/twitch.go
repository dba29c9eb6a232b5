package functions

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"cloud.google.com/go/firestore"

	"github.com/bitbrat/twitch-edge/shared/config"
	"github.com/bitbrat/twitch-edge/shared/fault"
	"github.com/bitbrat/twitch-edge/shared/store"
	"github.com/bitbrat/twitch-edge/shared/twitch"
	"github.com/bitbrat/twitch-edge/shared/twitchclient"
)

// The egress functions reach Twitch only when a message is deliverable. Building the
// client validates the bot token with Twitch, so it happens on the first Helix call,
// not at start: a message that can never be delivered is dead-lettered even while
// Twitch is unreachable or the token is missing, and a deliverable one is retried.

// twitchClient builds the Twitch client on first use. A failure is not remembered:
// Twitch or Firestore being briefly unreachable must not break the instance for good.
func (e *env) twitchClient(ctx context.Context) (*twitchclient.Twitch, error) {
	e.twitchMu.Lock()
	defer e.twitchMu.Unlock()
	if e.twitch != nil {
		return e.twitch, nil
	}
	cfg, err := e.twitchConfig()
	if err != nil {
		return nil, err
	}
	tokens, err := e.tokenFirestore(ctx)
	if err != nil {
		return nil, err
	}
	tw, err := twitchclient.New(ctx, cfg, tokens, e.owner, e.log, twitchclient.WithTelemetry(e.tel, e.ins))
	if err != nil {
		return nil, err
	}
	e.twitch = tw
	return tw, nil
}

func (e *env) twitchConfig() (config.Twitch, error) {
	r := config.NewReader(config.Env())
	cfg := config.ReadTwitch(r)
	if err := r.Err(); err != nil {
		return cfg, fault.Wrap(fault.Transient, "FUNCTION_NOT_CONFIGURED", err, "twitch configuration")
	}
	return cfg, nil
}

// tokenFirestore is the client of the database holding the bot's token document
// (TWITCH_TOKEN_DATABASE): the shared one unless the deployment keeps tokens apart,
// so that only the components that use the token can read it. Opened on first use,
// by the egress functions only.
func (e *env) tokenFirestore(ctx context.Context) (*firestore.Client, error) {
	db := e.fns.TokenDatabase
	if db == "" || db == e.common.Database {
		return e.fs, nil
	}
	e.tokenMu.Lock()
	defer e.tokenMu.Unlock()
	if e.tokenFS == nil {
		c, err := store.NewClient(context.WithoutCancel(ctx), e.common.Project, db)
		if err != nil {
			return nil, fault.Wrap(fault.Transient, "TOKEN_STORE_UNAVAILABLE", err, "token database %s", db)
		}
		e.tokenFS = c
	}
	return e.tokenFS, nil
}

// botUserID is TWITCH_BOT_USER_ID, else the user of the bot's token document: both
// known without calling Twitch.
func (e *env) botUserID(ctx context.Context) (string, error) {
	cfg, err := e.twitchConfig()
	if err != nil {
		return "", err
	}
	if cfg.BotUserID != "" {
		return cfg.BotUserID, nil
	}
	if cfg.BotAccessToken.Set() {
		tw, err := e.twitchClient(ctx) // a static token's user is known only to Twitch
		if err != nil {
			return "", err
		}
		return tw.BotUserID, nil
	}
	tokens, err := e.tokenFirestore(ctx)
	if err != nil {
		return "", err
	}
	tok, err := store.NewTokenStore(tokens).LoadToken(ctx, twitch.RoleBot)
	if err != nil {
		if errors.Is(err, twitch.ErrTokenNotFound) {
			return "", fmt.Errorf("the bot's user id is unknown: set TWITCH_BOT_USER_ID or store the bot token at oauth/twitch/bot/token: %w", err)
		}
		return "", err
	}
	if tok.UserID == "" {
		return "", errors.New("the bot token document has no userId: set TWITCH_BOT_USER_ID")
	}
	return tok.UserID, nil
}

// lazyHelix is the Helix client the egress services see; it builds the real one on
// the first call.
type lazyHelix struct{ env *env }

func (l lazyHelix) client(ctx context.Context) (*twitch.Client, error) {
	tw, err := l.env.twitchClient(ctx)
	if err != nil {
		if fault.KindOf(err) == fault.Unknown {
			err = fault.Wrap(fault.Transient, "TWITCH_CLIENT_UNAVAILABLE", err, "twitch client")
		}
		return nil, err
	}
	return tw.Client, nil
}

func (l lazyHelix) SendChatMessage(ctx context.Context, broadcasterID, senderID, message, replyParentID string) (*twitch.ChatMessageResult, error) {
	c, err := l.client(ctx)
	if err != nil {
		return nil, err
	}
	return c.SendChatMessage(ctx, broadcasterID, senderID, message, replyParentID)
}

func (l lazyHelix) GetUsers(ctx context.Context, logins, ids []string) ([]twitch.User, error) {
	c, err := l.client(ctx)
	if err != nil {
		return nil, err
	}
	return c.GetUsers(ctx, logins, ids)
}

func (l lazyHelix) SendWhisper(ctx context.Context, fromUserID, toUserID, message string) error {
	c, err := l.client(ctx)
	if err != nil {
		return err
	}
	return c.SendWhisper(ctx, fromUserID, toUserID, message)
}

// GetModeratedChannels asks Twitch only when the token has the scope: without it
// Twitch answers 401, which the client would take for an expired token and refresh.
func (l lazyHelix) GetModeratedChannels(ctx context.Context, userID string) ([]twitch.ModeratedChannel, error) {
	tw, err := l.env.twitchClient(ctx)
	if err != nil {
		return nil, fault.Wrap(fault.Transient, "TWITCH_CLIENT_UNAVAILABLE", err, "twitch client")
	}
	if !slices.Contains(tw.Scopes, twitch.ScopeReadModeratedChannels) {
		return nil, fault.New(fault.Permanent, "TWITCH_MISSING_SCOPE", "the bot token lacks %s", twitch.ScopeReadModeratedChannels)
	}
	return tw.Client.GetModeratedChannels(ctx, userID)
}
