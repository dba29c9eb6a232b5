// Package twitchclient assembles a twitch.Client from configuration, the same way in
// the connector and the egress functions: the bot's token from its Firestore document
// (refreshed and shared with upstream's OAuth flow) or, for quick local runs, the
// static TWITCH_BOT_ACCESS_TOKEN; and the bot's user id from TWITCH_BOT_USER_ID or,
// failing that, from Twitch's validation of the token.
package twitchclient

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"cloud.google.com/go/firestore"

	"github.com/bitbrat/twitch-edge/shared/config"
	"github.com/bitbrat/twitch-edge/shared/fault"
	"github.com/bitbrat/twitch-edge/shared/store"
	"github.com/bitbrat/twitch-edge/shared/telemetry"
	"github.com/bitbrat/twitch-edge/shared/twitch"
)

// Twitch is a ready client and who it speaks as.
type Twitch struct {
	Client *twitch.Client
	OAuth  *twitch.OAuth
	// BotUserID is the bot's Twitch user id.
	BotUserID string
	// Static reports whether the token is the static fallback (no refresh).
	Static bool
	// Scopes are the token's scopes as Twitch validated them at start.
	Scopes []string
}

// Option configures New.
type Option func(*options)

type options struct {
	tel *telemetry.Telemetry
	ins *telemetry.Instruments
}

// WithTelemetry traces and measures the Twitch calls (a client span each, the Helix
// rate-limit headroom, responses by status class) and counts token refreshes.
func WithTelemetry(tel *telemetry.Telemetry, ins *telemetry.Instruments) Option {
	return func(o *options) { o.tel, o.ins = tel, ins }
}

// New builds the client. holder names this process in token-refresh leases.
// It validates the token once (Twitch asks for validation at start), which also
// yields the bot's user id when the configuration does not give it.
func New(ctx context.Context, cfg config.Twitch, fs *firestore.Client, holder string, log *slog.Logger, opts ...Option) (*Twitch, error) {
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	httpClient := &http.Client{Timeout: 30 * time.Second}
	var onRefresh func(context.Context, string)
	if o.tel != nil {
		httpClient.Transport = o.tel.Transport(nil, o.ins)
		onRefresh = o.ins.TokenRefresh
	}
	oauth := twitch.NewOAuth(twitch.OAuthOptions{
		BaseURL: cfg.AuthBaseURL, ClientID: cfg.ClientID, ClientSecret: cfg.ClientSecret.Reveal(),
		HTTPClient: httpClient, Logger: log,
	})
	var (
		tokens twitch.TokenSource
		val    *twitch.Validation
		static bool
	)
	if cfg.BotAccessToken.Set() {
		s, err := twitch.NewStaticTokenSource(ctx, oauth, cfg.BotAccessToken.Reveal())
		if err != nil {
			return nil, fmt.Errorf("TWITCH_BOT_ACCESS_TOKEN: %w", err)
		}
		tokens, val, static = s, s.Validation(), true
	} else {
		p, err := twitch.NewProvider(twitch.ProviderOptions{
			Store: store.NewTokenStore(fs), Role: twitch.RoleBot, OAuth: oauth, Logger: log, Holder: holder,
			// Well above the OAuth call's 30 s timeout: a slow refresh must not outlive
			// its lease, or another process could refresh with the same refresh token.
			LeaseTTL:  90 * time.Second,
			OnRefresh: onRefresh,
		})
		if err != nil {
			return nil, err
		}
		tokens = p
		tok, err := p.Token(ctx)
		if err != nil {
			if errors.Is(err, twitch.ErrTokenNotFound) {
				return nil, fault.Wrap(fault.Auth, twitch.CodeNoToken, err,
					"no bot token: store it in Firestore at oauth/twitch/bot/token (upstream's OAuth flow) or set TWITCH_BOT_ACCESS_TOKEN")
			}
			return nil, fmt.Errorf("bot token: %w", err)
		}
		if val, err = oauth.ValidateToken(ctx, tok); err != nil {
			return nil, fmt.Errorf("validate bot token: %w", err)
		}
	}
	bot := cfg.BotUserID
	if bot == "" {
		bot = val.UserID
	} else if val.UserID != "" && val.UserID != bot {
		return nil, fmt.Errorf("TWITCH_BOT_USER_ID is %s but the bot token belongs to user %s", bot, val.UserID)
	}
	client := twitch.NewClient(twitch.Options{
		APIBaseURL: cfg.APIBaseURL, AuthBaseURL: cfg.AuthBaseURL, EventSubSubscriptionsURL: cfg.EventSubSubscriptionsURL,
		ClientID: cfg.ClientID, HTTPClient: httpClient, Tokens: tokens, Logger: log,
	})
	log.Info("twitch: client ready", "botUserId", bot, "login", val.Login, "scopes", val.Scopes, "staticToken", static)
	return &Twitch{Client: client, OAuth: oauth, BotUserID: bot, Static: static, Scopes: val.Scopes}, nil
}
