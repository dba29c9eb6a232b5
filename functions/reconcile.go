package functions

import (
	"context"
	"fmt"
	"time"

	"github.com/bitbrat/twitch-edge/connector/conduit"
	"github.com/bitbrat/twitch-edge/connector/eventsub"
	"github.com/bitbrat/twitch-edge/functions/reconcile"
	"github.com/bitbrat/twitch-edge/functions/trigger"
	"github.com/bitbrat/twitch-edge/shared/config"
	"github.com/bitbrat/twitch-edge/shared/store"
	"github.com/bitbrat/twitch-edge/shared/twitch"
)

// NameEventSubReconcile is serverless mode's scheduled conduit upkeep (Cloud
// Scheduler → Pub/Sub → this function; functions/reconcile).
const NameEventSubReconcile = "EventSubReconcile"

// reconcileTick names the scheduler's ticks in dead letters.
const reconcileTick = "eventsub.reconcile.tick"

// reconcileSettings are what EventSubReconcile reads beyond the common settings.
type reconcileSettings struct {
	twitch config.Twitch
	// webhook: CONDUIT_WEBHOOK_SHARDS shards at EVENTSUB_WEBHOOK_CALLBACK_URL, signed
	// with TWITCH_EVENTSUB_WEBHOOK_SECRET. In serverless mode they are the conduit's
	// only shards, ids 0..N-1.
	webhookShards int
	callback      string
	secret        config.Secret
	extra         []eventsub.TypeVersion
}

func readReconcileSettings(get config.Lookup) (reconcileSettings, error) {
	r := config.NewReader(get)
	s := reconcileSettings{
		twitch:        config.ReadTwitch(r),
		webhookShards: r.Int("CONDUIT_WEBHOOK_SHARDS", 0, 0, twitch.MaxConduitShards),
		callback:      r.URL("EVENTSUB_WEBHOOK_CALLBACK_URL", "", "https", "http"),
	}
	extra, err := eventsub.ParseTypeVersions(r.List("EVENTSUB_EXTRA_SUBSCRIPTIONS"))
	if err != nil {
		r.Invalid("EVENTSUB_EXTRA_SUBSCRIPTIONS", err)
	}
	s.extra = extra
	if err := r.Err(); err != nil {
		return s, &configError{err}
	}
	if s.webhookShards < 1 {
		return s, &configError{fmt.Errorf("CONDUIT_WEBHOOK_SHARDS: serverless mode needs at least one webhook shard")}
	}
	if s.callback == "" {
		return s, &configError{fmt.Errorf("EVENTSUB_WEBHOOK_CALLBACK_URL: required with webhook shards")}
	}
	if !s.twitch.ClientSecret.Set() {
		return s, &configError{fmt.Errorf("TWITCH_CLIENT_SECRET: required for the app access token of conduits")}
	}
	secret, err := readWebhookSecret(get)
	if err != nil {
		return s, err
	}
	s.secret = secret
	return s, nil
}

func buildReconcile(ctx context.Context, env *env) (trigger.Handler, error) {
	rs, err := readReconcileSettings(config.Env())
	if err != nil {
		return nil, err
	}
	moderator, err := env.botUserID(ctx)
	if err != nil {
		return nil, err
	}
	log := env.log.With("function", NameEventSubReconcile)
	// Conduits take the app access token; it is kept in Firestore
	// (oauth/twitch/app/token, the connector's document) and shared by every instance.
	oauth := twitch.NewOAuth(twitch.OAuthOptions{BaseURL: rs.twitch.AuthBaseURL, ClientID: rs.twitch.ClientID,
		ClientSecret: rs.twitch.ClientSecret.Reveal(), Logger: log})
	apps, err := twitch.NewAppTokenProvider(twitch.AppTokenProviderOptions{Store: store.NewAppTokenStore(env.fs), OAuth: oauth,
		Logger: log, Holder: env.owner})
	if err != nil {
		return nil, err
	}
	helix := twitch.NewClient(twitch.Options{
		APIBaseURL: rs.twitch.APIBaseURL, AuthBaseURL: rs.twitch.AuthBaseURL,
		EventSubSubscriptionsURL: rs.twitch.EventSubSubscriptionsURL, ClientID: rs.twitch.ClientID,
		// Get Users (TWITCH_CHANNELS' logins) takes an app token as well: there is no
		// user token here.
		Tokens: apps, AppTokens: apps, Logger: log,
	})
	records := store.NewConduitStore(env.fs, ConduitName, nil)
	svc := &reconcile.Service{
		Helix: helix, Records: records, Channels: store.NewChannels(env.fs, nil),
		Config: reconcile.Config{
			Webhook:  conduit.WebhookShards{IDs: conduit.WebhookShardIDs(0, rs.webhookShards), Callback: rs.callback, Secret: rs.secret.Reveal()},
			Channels: rs.twitch.Channels,
			Types: append([]eventsub.TypeVersion{
				{Type: twitch.TypeChannelFollow, Version: twitch.VersionChannelFollow},
				{Type: twitch.TypeChannelUpdate, Version: twitch.VersionChannelUpdate},
			}, rs.extra...),
			ModeratorUserID: moderator,
		},
		Pub: env.pub, IngressTopic: env.topics.Ingress,
		Owner: env.owner, Now: time.Now, Log: log,
	}
	log.InfoContext(ctx, NameEventSubReconcile+": configured", "webhookShards", rs.webhookShards, "callback", rs.callback,
		"channels", rs.twitch.Channels, "types", len(svc.Config.Types))
	return svc.Handle, nil
}
