package conduit

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/bitbrat/twitch-edge/connector/eventsub"
	"github.com/bitbrat/twitch-edge/shared/fault"
	"github.com/bitbrat/twitch-edge/shared/store"
	"github.com/bitbrat/twitch-edge/shared/twitch"
)

// ShardAPI is what a holder needs from Helix (app access token).
type ShardAPI interface {
	UpdateConduitShards(ctx context.Context, conduitID string, shards []twitch.ShardAssignment) ([]twitch.Shard, error)
	GetConduitShards(ctx context.Context, conduitID, status string) ([]twitch.Shard, error)
}

// Sink receives the notification frames of a held shard, unchanged, exactly as the
// WebSocket mode's sink does (the connector forwards both to the raw topic, so
// Normalize sees one shape). Forward may block (backpressure).
type Sink interface {
	Forward(ctx context.Context, f eventsub.Frame) error
}

// HolderOptions configure RunShard.
type HolderOptions struct {
	ConduitID string
	ShardID   string
	// URL is the EventSub WebSocket server (TWITCH_EVENTSUB_WS_URL).
	URL  string
	API  ShardAPI
	Sink Sink
	// Fence is called right before every PATCH and fails when this instance no longer
	// holds the shard (ShardLeases.Fence); RunShard then returns its error.
	Fence func(ctx context.Context) error
	// OnRevocation receives the subscriptions Twitch revokes (the reconciler records
	// them). Optional.
	OnRevocation func(ctx context.Context, sub twitch.Subscription)
	// OnPatched is told every session id the shard was pointed at. Optional.
	OnPatched func(sessionID string)
	// OnDown is told when the shard's socket ended (other than by ctx or Drain): the
	// shard is disabled until the next PATCH. Optional.
	OnDown func(reason string)
	// Recheck, when it delivers, makes the holder read the shard's status back at
	// once (conduit.shard.disabled named it) and PATCH it again if needed. Optional.
	Recheck <-chan struct{}
	// Drain, once closed, hands the shard over (a deploy's SIGTERM, after the lease
	// was released, or a lease lost): the holder no longer PATCHes, keeps reading its socket until
	// Twitch shows the shard on another session (the next holder's PATCH), and then
	// returns; nothing Twitch sent to the old socket is left unread. ctx bounds it.
	Drain <-chan struct{}
	// MovedPoll is how soon a draining holder first reads the shard back; each look
	// after waits twice as long, up to 5 s. Default 200 ms.
	MovedPoll time.Duration
	// PatchWindow is how soon after a welcome the shard must be PATCHed: Twitch
	// closes a socket unused for 10 s. Default 10 s.
	PatchWindow time.Duration
	// CheckEvery is how often the shard's status is read back (Get Conduit Shards);
	// a shard found disabled or pointing elsewhere is PATCHed again. Default 1 min.
	CheckEvery time.Duration
	// WelcomeTimeout bounds a dial and its welcome. Default 10 s.
	WelcomeTimeout time.Duration
	// RetryMin and RetryMax bound the backoff between failed connections. Defaults
	// 250 ms and 30 s.
	RetryMin, RetryMax time.Duration
	// ReconnectDrain is how long the old socket of a session_reconnect is still read
	// after the new one's welcome (Twitch may have sent on it until then). Default 2 s.
	ReconnectDrain time.Duration
	HTTPClient     *http.Client
	MaxFrameBytes  int64
	Logger         *slog.Logger
}

func (o *HolderOptions) defaults() {
	if o.PatchWindow <= 0 {
		o.PatchWindow = 10 * time.Second
	}
	if o.CheckEvery <= 0 {
		o.CheckEvery = time.Minute
	}
	if o.WelcomeTimeout <= 0 {
		o.WelcomeTimeout = 10 * time.Second
	}
	if o.RetryMin <= 0 {
		o.RetryMin = 250 * time.Millisecond
	}
	if o.RetryMax <= 0 {
		o.RetryMax = 30 * time.Second
	}
	if o.ReconnectDrain <= 0 {
		o.ReconnectDrain = 2 * time.Second
	}
	if o.MovedPoll <= 0 {
		o.MovedPoll = 200 * time.Millisecond
	}
	if o.MaxFrameBytes <= 0 {
		o.MaxFrameBytes = 1 << 20
	}
	if o.Fence == nil {
		o.Fence = func(context.Context) error { return nil }
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	o.Logger = o.Logger.With("conduitId", o.ConduitID, "shard", o.ShardID)
}

// errFenced ends RunShard: the lease is gone, another instance serves the shard.
var errFenced = errors.New("shard lease no longer held")

// errMoved ends a draining holder: the shard points at another session now.
var errMoved = errors.New("shard handed over to another session")

// draining reports whether o.Drain is closed.
func (o *HolderOptions) draining() bool {
	select {
	case <-o.Drain:
		return o.Drain != nil
	default:
		return false
	}
}

// RunShard serves one held shard until ctx ends or the lease is lost: it keeps a
// WebSocket to the EventSub server, PATCHes the shard with the session id within
// PatchWindow of every welcome whose id changed (a new socket after a drop always
// has a new id), follows session_reconnect to its URL (the session, and so the
// shard's transport, stays the same), and hands notifications to the sink.
func RunShard(ctx context.Context, o HolderOptions) error {
	o.defaults()
	patched := ""
	url := o.URL
	backoff := o.RetryMin
	for {
		if o.draining() {
			return nil
		}
		c, err := dialShard(ctx, &o, url)
		url = o.URL
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			o.Logger.Warn("eventsub dial for conduit shard failed; retrying", "error", err, "retryIn", backoff.String())
			if !sleepCtx(ctx, backoff) {
				return nil
			}
			backoff = min(2*backoff, o.RetryMax)
			continue
		}
		if c.session.ID != patched {
			if err := patchShard(ctx, &o, c.session.ID, c.welcomeAt); err != nil {
				c.close()
				if errors.Is(err, errFenced) || ctx.Err() != nil {
					return fencedOrNil(ctx, err)
				}
				o.Logger.Warn("conduit shard not pointed at the new session; reconnecting", "error", err, "retryIn", backoff.String())
				if !sleepCtx(ctx, backoff) {
					return nil
				}
				backoff = min(2*backoff, o.RetryMax)
				continue
			}
			patched = c.session.ID
		}
		backoff = o.RetryMin
		next, err := serveShard(ctx, &o, c, &patched)
		if ctx.Err() != nil || errors.Is(err, errFenced) {
			return fencedOrNil(ctx, err)
		}
		if errors.Is(err, errMoved) || o.draining() {
			o.Logger.Info("conduit shard handed over; holder done", "reason", fmt.Sprint(err))
			return nil
		}
		if next != "" {
			url = next
			continue
		}
		o.Logger.Warn("conduit shard socket ended; reconnecting (a new session is PATCHed)", "error", err)
		if o.OnDown != nil {
			o.OnDown(err.Error())
		}
	}
}

func fencedOrNil(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return nil
	}
	return err
}

// patchShard points the shard at sessionID, retrying transient failures until the
// window after the welcome closes.
func patchShard(ctx context.Context, o *HolderOptions, sessionID string, welcomeAt time.Time) error {
	pctx, cancel := context.WithDeadline(ctx, welcomeAt.Add(o.PatchWindow))
	defer cancel()
	wait := 100 * time.Millisecond
	for {
		err := o.Fence(pctx)
		if errors.Is(err, store.ErrLeaseLost) {
			return fmt.Errorf("%w: %w", errFenced, err)
		}
		if err == nil {
			_, err = o.API.UpdateConduitShards(pctx, o.ConduitID, []twitch.ShardAssignment{{ID: o.ShardID, Transport: twitch.WebSocketShard(sessionID)}})
		} else {
			// The lease could not be confirmed (Firestore slow or away): no PATCH
			// without it; retried within the window like a failed PATCH.
			err = fault.Wrap(fault.Transient, store.CodeLeaseLost, err, "confirm shard %s lease before PATCH", o.ShardID)
		}
		if err == nil {
			o.Logger.Info("conduit shard pointed at session", "sessionId", sessionID, "sinceWelcome", time.Since(welcomeAt).String())
			if o.OnPatched != nil {
				o.OnPatched(sessionID)
			}
			return nil
		}
		if k := fault.KindOf(err); k != fault.Transient && k != fault.RateLimited && k != fault.Unknown {
			return fmt.Errorf("patch shard %s: %w", o.ShardID, err)
		}
		o.Logger.Warn("conduit shard PATCH failed; retrying within the window", "error", err, "sessionId", sessionID)
		if !sleepCtx(pctx, wait) {
			return fmt.Errorf("patch shard %s within %s of the welcome: %w", o.ShardID, o.PatchWindow, err)
		}
		wait = min(2*wait, time.Second)
	}
}

func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
