package conduit

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/bitbrat/twitch-edge/shared/store"
	"github.com/bitbrat/twitch-edge/shared/twitch"
)

// ConduitAPI is what the lifecycle needs from Helix (app access token).
type ConduitAPI interface {
	GetConduits(ctx context.Context) ([]twitch.Conduit, error)
	CreateConduit(ctx context.Context, shardCount int) (*twitch.Conduit, error)
	UpdateConduit(ctx context.Context, id string, shardCount int) (*twitch.Conduit, error)
}

// ConduitRecords keeps the conduit id across restarts (store.ConduitStore); the
// create lease keeps instances that start together from creating a conduit each.
type ConduitRecords interface {
	LoadConduit(ctx context.Context) (store.ConduitRecord, bool, error)
	SaveConduit(ctx context.Context, r store.ConduitRecord) error
	AcquireLease(ctx context.Context, name, owner string, ttl time.Duration) (store.Lease, bool, error)
	ReleaseLease(ctx context.Context, l store.Lease) error
}

// LifecycleOptions configure EnsureConduit.
type LifecycleOptions struct {
	API     ConduitAPI
	Records ConduitRecords
	// Shards is the configured shard count (CONDUIT_SHARDS).
	Shards int
	// Owner names this instance in the create lease.
	Owner string
	// LeaseTTL bounds how long a crashed instance's create lease blocks the others.
	// Default 30 s.
	LeaseTTL time.Duration
	// Poll is how often an instance waiting for another's create looks again.
	// Default 500 ms.
	Poll   time.Duration
	Logger *slog.Logger
}

// leaseLifecycle is the lease that serialises finding and creating the conduit.
const leaseLifecycle = "lifecycle"

// Ensured is the outcome of EnsureConduit.
type Ensured struct {
	Conduit twitch.Conduit
	// Created: no usable conduit was recorded (first start, or Twitch deleted it); its
	// subscriptions are gone too and the reconciler creates them again.
	Created bool
	// Grown: the shard count was raised to the configured one.
	Grown bool
}

// EnsureConduit finds the recorded conduit or creates one, and grows it to shards.
// It never lowers the shard count: shards above the configured count may be held
// and serving, and Update Conduits would disable them (a later deploy with fewer
// shards keeps the larger conduit; lower it by hand once no instance holds them).
func EnsureConduit(ctx context.Context, o LifecycleOptions) (Ensured, error) {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.LeaseTTL <= 0 {
		o.LeaseTTL = 30 * time.Second
	}
	if o.Poll <= 0 {
		o.Poll = 500 * time.Millisecond
	}
	if o.Shards < 1 || o.Shards > twitch.MaxConduitShards {
		return Ensured{}, fmt.Errorf("conduit shard count %d outside 1..%d", o.Shards, twitch.MaxConduitShards)
	}
	for {
		l, ok, err := o.Records.AcquireLease(ctx, leaseLifecycle, o.Owner, o.LeaseTTL)
		if err != nil {
			return Ensured{}, fmt.Errorf("ensure conduit: %w", err)
		}
		if ok {
			out, err := ensureLocked(ctx, o)
			// A fresh context: the release must happen even when ctx just ended.
			rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			if rerr := o.Records.ReleaseLease(rctx, l); rerr != nil {
				o.Logger.Warn("conduit lifecycle lease not released; it expires by itself", "error", rerr, "ttl", o.LeaseTTL.String())
			}
			cancel()
			return out, err
		}
		o.Logger.Info("waiting for another instance to find or create the conduit", "holder", l.Owner, "until", l.Until)
		select {
		case <-ctx.Done():
			return Ensured{}, fmt.Errorf("ensure conduit: waiting for the lifecycle lease held by %s: %w", l.Owner, ctx.Err())
		case <-time.After(o.Poll):
		}
	}
}

func ensureLocked(ctx context.Context, o LifecycleOptions) (Ensured, error) {
	api, records, shards, log := o.API, o.Records, o.Shards, o.Logger
	rec, known, err := records.LoadConduit(ctx)
	if err != nil {
		return Ensured{}, fmt.Errorf("ensure conduit: %w", err)
	}
	var found *twitch.Conduit
	if known {
		list, err := api.GetConduits(ctx)
		if err != nil {
			return Ensured{}, fmt.Errorf("ensure conduit: %w", err)
		}
		for i := range list {
			if list[i].ID == rec.ID {
				found = &list[i]
			}
		}
		if found == nil {
			log.Warn("the recorded conduit no longer exists on Twitch; creating a new one (its subscriptions are recreated by the reconciler)",
				"conduitId", rec.ID)
		}
	}
	out := Ensured{}
	if found == nil {
		c, err := api.CreateConduit(ctx, shards)
		if err != nil {
			return Ensured{}, fmt.Errorf("ensure conduit: %w", err)
		}
		found, out.Created = c, true
		log.Info("conduit created", "conduitId", c.ID, "shards", c.ShardCount)
	}
	if found.ShardCount < shards {
		c, err := api.UpdateConduit(ctx, found.ID, shards)
		if err != nil {
			return Ensured{}, fmt.Errorf("ensure conduit: grow %s from %d to %d shards: %w", found.ID, found.ShardCount, shards, err)
		}
		log.Info("conduit grown", "conduitId", c.ID, "from", found.ShardCount, "to", c.ShardCount)
		found, out.Grown = c, true
	} else if found.ShardCount > shards {
		log.Info("conduit has more shards than configured; keeping them (shards are never dropped while they may be in use)",
			"conduitId", found.ID, "shards", found.ShardCount, "configured", shards)
	}
	out.Conduit = *found
	if out.Created || out.Grown || rec.ShardCount != found.ShardCount {
		if err := records.SaveConduit(ctx, store.ConduitRecord{ID: found.ID, ShardCount: found.ShardCount}); err != nil {
			return Ensured{}, fmt.Errorf("ensure conduit: %w", err)
		}
	}
	return out, nil
}
