// Package reconcile is the EventSubReconcile function: serverless mode's conduit
// upkeep. In serverless mode a conduit has webhook shards only (served by
// EventSubWebhook) and no connector runs, so nothing keeps the conduit, its shards
// and its subscriptions on its own. Cloud Scheduler publishes a tick to a Pub/Sub
// topic every minute; each tick runs one bounded round of what the connector's
// conduit mode runs on its timers:
//
//  1. conduit.EnsureConduit: find the recorded conduit or create it (again, if
//     Twitch deleted it), grown to the configured shard count;
//  2. conduit.KeepWebhookShards: point every webhook shard at the function's
//     callback and re-associate the ones Twitch disabled;
//  3. conduit.Reconciler.Round: make the subscriptions equal to channels × types.
//
// It is the same code as the connector's (package connector/conduit, imported from
// here: one module, one implementation of the conduit rules); the leases it takes
// (the lifecycle lease, the reconciler lease) are the connector's too, so a
// connector running beside it (hybrid mode) and this function never reconcile at
// the same time.
package reconcile

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/bitbrat/twitch-edge/connector/conduit"
	"github.com/bitbrat/twitch-edge/connector/eventsub"
	"github.com/bitbrat/twitch-edge/functions/trigger"
	"github.com/bitbrat/twitch-edge/shared/event"
	"github.com/bitbrat/twitch-edge/shared/fault"
	"github.com/bitbrat/twitch-edge/shared/twitch"
)

// Helix is what a round needs from Twitch, with the app access token
// (*twitch.Client built with AppTokens).
type Helix interface {
	conduit.ConduitAPI
	conduit.ShardAPI
	conduit.SubscriptionAPI
	GetUsers(ctx context.Context, logins, ids []string) ([]twitch.User, error)
}

// Records keep the conduit id, its leases and its revocations (store.ConduitStore).
type Records interface {
	conduit.ConduitRecords
	conduit.LeaseStore
	conduit.RevocationStore
}

// Publisher publishes a status event and waits for the acknowledgement
// (*bus.Publisher).
type Publisher interface {
	Publish(ctx context.Context, topic string, data []byte, attrs map[string]string) (string, error)
}

// Config is the conduit's layout and desired state.
type Config struct {
	// WebSocketShards is CONDUIT_SHARDS: the connector's shards, ids 0..N-1 (0 in
	// serverless mode).
	WebSocketShards int
	// Webhook are the webhook shards (the N ids after the WebSocket ones), their
	// callback and secret.
	Webhook conduit.WebhookShards
	// Channels are TWITCH_CHANNELS (logins or ids), served besides the channels
	// collection.
	Channels []string
	// Types are the subscription types per channel.
	Types []eventsub.TypeVersion
	// ModeratorUserID fills moderator_user_id (the bot) for types that need one.
	ModeratorUserID string
}

// Service runs the rounds. Its zero durations take the defaults below.
type Service struct {
	Helix    Helix
	Records  Records
	Channels conduit.ChannelSource
	Config   Config
	// Pub and IngressTopic, when set, receive a connector.status.changed event for
	// every round that changed something or failed.
	Pub          Publisher
	IngressTopic string
	// Owner names this instance in the leases.
	Owner string
	// Deadline bounds one round (default 50 s: the schedule's minute, less a margin,
	// and below the function's timeout).
	Deadline time.Duration
	// MaxTickAge: a tick published longer ago is skipped (a backlog after an outage
	// would otherwise run many rounds back to back). Default 5 min.
	MaxTickAge time.Duration
	// LeaseTTL of the reconciler lease (default conduit.DefaultLeaseTTL).
	LeaseTTL time.Duration
	Now      func() time.Time
	Log      *slog.Logger
}

func (s *Service) deadline() time.Duration {
	if s.Deadline > 0 {
		return s.Deadline
	}
	return 50 * time.Second
}

func (s *Service) maxTickAge() time.Duration {
	if s.MaxTickAge > 0 {
		return s.MaxTickAge
	}
	return 5 * time.Minute
}

// Outcome is one round's result.
type Outcome struct {
	ConduitID string
	// Created: the conduit was created in this round (first run, or Twitch deleted
	// it); Grown: its shard count was raised.
	Created, Grown bool
	// ShardsChanged are the webhook shards re-associated.
	ShardsChanged []string
	Result        conduit.Result
}

// changed reports whether the round did anything worth a status event.
func (o Outcome) changed() bool {
	r := o.Result
	return o.Created || o.Grown || len(o.ShardsChanged) > 0 || r.Created > 0 || r.Deleted > 0 || r.Failed > 0 || len(r.OverBudget) > 0
}

// Handle runs one round per tick. A failed round is logged and returned as a
// retryable error (the deployment does not retry ticks: the next tick is the retry).
func (s *Service) Handle(ctx context.Context, m trigger.Message) error {
	now := s.Now()
	if !m.PublishTime.IsZero() && now.Sub(m.PublishTime) > s.maxTickAge() {
		s.Log.WarnContext(ctx, "reconcile: stale tick skipped", "tickId", m.ID, "published", m.PublishTime.Format(time.RFC3339),
			"maxAge", s.maxTickAge().String())
		return nil
	}
	out, err := s.Round(ctx)
	if err != nil {
		s.Log.ErrorContext(ctx, "reconcile: round failed; the next tick retries", "tickId", m.ID, "conduitId", out.ConduitID, "error", err.Error())
		s.status(ctx, out, err)
		return fault.Wrap(fault.Transient, "RECONCILE_FAILED", err, "reconcile round")
	}
	if out.Result.Skipped {
		s.Log.InfoContext(ctx, "reconcile: another instance reconciles; round skipped", "conduitId", out.ConduitID)
		return nil
	}
	s.Log.InfoContext(ctx, "reconcile: round done", "conduitId", out.ConduitID, "created", out.Created, "grown", out.Grown,
		"shardsChanged", out.ShardsChanged, "result", out.Result.String())
	if out.changed() {
		s.status(ctx, out, nil)
	}
	return nil
}

// Round runs one round within Deadline: the conduit ensured, the webhook shards
// kept, the subscriptions reconciled. The shard step's failure does not stop the
// subscriptions' (a shard Twitch refuses must not keep channels unsubscribed); both
// errors are returned.
func (s *Service) Round(ctx context.Context) (Outcome, error) {
	ctx, cancel := context.WithTimeout(ctx, s.deadline())
	defer cancel()
	cfg := s.Config
	out := Outcome{}
	shards := cfg.WebSocketShards + len(cfg.Webhook.IDs)
	ens, err := conduit.EnsureConduit(ctx, conduit.LifecycleOptions{
		API: s.Helix, Records: s.Records, Shards: shards, Owner: s.Owner, Logger: s.Log,
	})
	if err != nil {
		return out, err
	}
	out.ConduitID, out.Created, out.Grown = ens.Conduit.ID, ens.Created, ens.Grown
	var errs []error
	if ens.Conduit.ShardCount > shards {
		// The conduit is larger than this layout (a connector's conduit with
		// WebSocket shards, or an earlier, larger configuration): which ids are
		// webhook shards is then not ours to decide, and pointing a held WebSocket
		// shard at the callback would take it from its instance.
		errs = append(errs, fmt.Errorf("conduit %s has %d shards, this layout %d (%d WebSocket, %d webhook): webhook shards left alone; set CONDUIT_SHARDS/CONDUIT_WEBHOOK_SHARDS to the conduit's layout",
			ens.Conduit.ID, ens.Conduit.ShardCount, shards, cfg.WebSocketShards, len(cfg.Webhook.IDs)))
	} else {
		changed, err := conduit.KeepWebhookShards(ctx, s.Helix, ens.Conduit.ID, cfg.Webhook)
		out.ShardsChanged = changed
		if err != nil {
			errs = append(errs, err)
		}
	}
	if len(out.ShardsChanged) > 0 {
		s.Log.InfoContext(ctx, "reconcile: webhook shards re-associated", "conduitId", ens.Conduit.ID, "shards", out.ShardsChanged,
			"callback", cfg.Webhook.Callback)
	}
	ids, err := s.channelIDs(ctx)
	if err != nil {
		return out, errors.Join(append(errs, err)...)
	}
	rec := conduit.NewReconciler(conduit.ReconcilerOptions{
		API: s.Helix, Channels: s.Channels, Revocations: s.Records, Leases: s.Records,
		Owner: s.Owner, LeaseTTL: s.LeaseTTL, ConduitID: func() string { return ens.Conduit.ID },
		StaticChannels: ids, Types: cfg.Types, ModeratorUserID: cfg.ModeratorUserID, Logger: s.Log,
	})
	res, err := rec.Round(ctx)
	out.Result = res
	if err != nil {
		errs = append(errs, err)
	}
	return out, errors.Join(errs...)
}

// channelIDs turns TWITCH_CHANNELS into broadcaster ids; numeric entries are ids
// already. An unknown login is an error: the round would otherwise silently serve
// fewer channels than configured.
func (s *Service) channelIDs(ctx context.Context) ([]string, error) {
	var ids, logins []string
	for _, c := range s.Config.Channels {
		c = strings.ToLower(strings.TrimPrefix(strings.TrimSpace(c), "#"))
		switch {
		case c == "":
		case twitch.IsUserID(c):
			ids = append(ids, c)
		default:
			logins = append(logins, c)
		}
	}
	if len(logins) == 0 {
		return ids, nil
	}
	users, err := s.Helix.GetUsers(ctx, logins, nil)
	if err != nil {
		return nil, fmt.Errorf("resolve TWITCH_CHANNELS: %w", err)
	}
	byLogin := make(map[string]string, len(users))
	for _, u := range users {
		byLogin[strings.ToLower(u.Login)] = u.ID
	}
	for _, l := range logins {
		id, ok := byLogin[l]
		if !ok {
			return nil, fault.New(fault.Invalid, "UNKNOWN_CHANNEL", "TWITCH_CHANNELS: no Twitch user with login %q", l)
		}
		ids = append(ids, id)
	}
	return ids, nil
}

// status publishes the round's connector.status.changed event (subject
// "reconcile"): CONNECTED when it succeeded, ERROR when it failed. A failed publish
// is logged only: the round's own result stands, and the next round reports again.
func (s *Service) status(ctx context.Context, out Outcome, roundErr error) {
	if s.Pub == nil || s.IngressTopic == "" {
		return
	}
	current := event.StateConnected
	if roundErr != nil {
		current = event.StateError
	}
	st := event.NewConnectorStatus(s.Owner, "reconcile", event.StateConnected, current, s.Now())
	r := out.Result
	st.Details = map[string]any{
		"via": "EventSubReconcile", "conduitId": out.ConduitID, "conduitCreated": out.Created,
		"shardsChanged": len(out.ShardsChanged), "desired": r.Desired, "existing": r.Existing, "created": r.Created,
		"deleted": r.Deleted, "revoked": r.Revoked, "failed": r.Failed, "overBudget": len(r.OverBudget),
		"totalCost": r.TotalCost, "maxTotalCost": r.MaxTotalCost,
	}
	if roundErr != nil {
		st.Reason = roundErr.Error()
	}
	data, err := json.Marshal(st)
	if err == nil {
		pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		_, err = s.Pub.Publish(pctx, s.IngressTopic, data, event.StatusAttributes())
		cancel()
	}
	if err != nil {
		s.Log.WarnContext(ctx, "reconcile: status event not published", "error", err.Error(), "topic", s.IngressTopic)
	}
}
