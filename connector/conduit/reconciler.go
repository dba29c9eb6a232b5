package conduit

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/bitbrat/twitch-edge/connector/eventsub"
	"github.com/bitbrat/twitch-edge/shared/fault"
	"github.com/bitbrat/twitch-edge/shared/store"
	"github.com/bitbrat/twitch-edge/shared/twitch"
)

// SubscriptionAPI is what the reconciler needs from Helix (app access token).
type SubscriptionAPI interface {
	CreateEventSubSubscription(ctx context.Context, r twitch.CreateSubscriptionRequest) (*twitch.CreatedSubscription, error)
	ListConduitSubscriptions(ctx context.Context, conduitID string, f twitch.ListSubscriptionsFilter) (*twitch.SubscriptionList, error)
	DeleteConduitSubscription(ctx context.Context, id string) error
}

// ChannelSource lists the channels served at runtime (store.Channels).
type ChannelSource interface {
	List(ctx context.Context) ([]store.Channel, error)
}

// RevocationStore keeps the subscriptions Twitch revoked (store.ConduitStore).
type RevocationStore interface {
	Revocations(ctx context.Context) (map[string]store.Revocation, error)
	RecordRevocation(ctx context.Context, r store.Revocation) error
}

// ReconcilerOptions configure a Reconciler.
type ReconcilerOptions struct {
	API         SubscriptionAPI
	Channels    ChannelSource
	Revocations RevocationStore
	Leases      LeaseStore
	// Owner names this instance in the reconciler lease.
	Owner string
	// LeaseTTL of the reconciler lease, renewed every TTL/3 during a round. Default
	// DefaultLeaseTTL.
	LeaseTTL time.Duration
	// ConduitID returns the conduit in use (it changes when the conduit is recreated).
	ConduitID func() string
	// StaticChannels are broadcaster ids from configuration, served besides the
	// channels collection.
	StaticChannels []string
	// Types are the subscription types per channel.
	Types []eventsub.TypeVersion
	// Fixed are further subscriptions not tied to a channel (conduit.shard.disabled
	// for this conduit), built for the conduit in use. Optional.
	Fixed func(conduitID string) []eventsub.Spec
	// OnCreateFailed is told each subscription Twitch refused to create (other than
	// over the budget), for status events. Optional.
	OnCreateFailed func(s eventsub.Spec, err error)
	// OnResult is told every round's outcome in Run (readiness, status events).
	// Optional.
	OnResult func(Result, error)
	// ModeratorUserID fills moderator_user_id for types that need one (channel.follow).
	ModeratorUserID string
	// Budget caps the total cost this reconciler spends; 0 means Twitch's
	// max_total_cost.
	Budget int
	// Concurrency bounds parallel Helix calls. Default 8.
	Concurrency int
	// Every is the round interval of Run. Default 30 s (a channel change takes effect
	// within it).
	Every  time.Duration
	Logger *slog.Logger
}

// Reconciler keeps the conduit's subscriptions equal to channels × types. Only the
// instance holding the reconciler lease works; the others' rounds are skipped.
type Reconciler struct {
	o ReconcilerOptions
}

// NewReconciler returns a reconciler; call Run (or Round in tests).
func NewReconciler(o ReconcilerOptions) *Reconciler {
	if o.LeaseTTL <= 0 {
		o.LeaseTTL = DefaultLeaseTTL
	}
	if o.Concurrency <= 0 {
		o.Concurrency = 8
	}
	if o.Every <= 0 {
		o.Every = 30 * time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return &Reconciler{o: o}
}

// leaseReconciler is the lease one instance holds to reconcile.
const leaseReconciler = "reconciler"

// Result is one round's outcome.
type Result struct {
	// Skipped: another instance holds the reconciler lease.
	Skipped bool
	// Desired counts channels × types; Existing what was already there and wanted.
	Desired, Existing int
	Created, Deleted  int
	// Revoked counts wanted subscriptions not created because Twitch revoked them
	// (recorded; cleared by an operator once the cause is fixed).
	Revoked int
	// Failed counts creates and deletes that failed (retried next round).
	Failed int
	// OverBudget lists the keys that did not fit in the cost budget.
	OverBudget []string
	// TotalCost and MaxTotalCost are Twitch's figures after the round.
	TotalCost, MaxTotalCost int
	Errors                  []string
}

func (r Result) String() string {
	if r.Skipped {
		return "skipped (another instance reconciles)"
	}
	return fmt.Sprintf("desired %d, existing %d, created %d, deleted %d, revoked %d, failed %d, over budget %d, cost %d/%d",
		r.Desired, r.Existing, r.Created, r.Deleted, r.Revoked, r.Failed, len(r.OverBudget), r.TotalCost, r.MaxTotalCost)
}

// Run reconciles every Every until ctx ends, then frees the lease.
func (r *Reconciler) Run(ctx context.Context) error {
	t := time.NewTicker(r.o.Every)
	defer t.Stop()
	for {
		res, err := r.Round(ctx)
		if r.o.OnResult != nil && ctx.Err() == nil {
			r.o.OnResult(res, err)
		}
		switch {
		case err != nil && ctx.Err() == nil:
			r.o.Logger.Warn("conduit reconcile round failed; next round retries", "error", err)
		case !res.Skipped:
			r.o.Logger.Info("conduit subscriptions reconciled", "result", res.String(), "overBudget", len(res.OverBudget))
		}
		select {
		case <-ctx.Done():
			rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), r.o.LeaseTTL/3)
			if l, ok, err := r.o.Leases.AcquireLease(rctx, leaseReconciler, r.o.Owner, time.Millisecond); err == nil && ok {
				_ = r.o.Leases.ReleaseLease(rctx, l)
			}
			cancel()
			return nil
		case <-t.C:
		}
	}
}

// Revoked records a revocation Twitch sent on a shard, so the next round neither
// counts nor recreates it.
func (r *Reconciler) Revoked(ctx context.Context, sub twitch.Subscription) {
	if !twitch.RevocationIsFinal(sub.Status) {
		return
	}
	key := eventsub.Spec{Type: sub.Type, Version: sub.Version, Condition: sub.Condition}.Key()
	if err := r.o.Revocations.RecordRevocation(ctx, store.Revocation{Key: key, Type: sub.Type, Reason: sub.Status}); err != nil {
		r.o.Logger.Warn("revocation not recorded; the next round records it from the subscription list", "key", key, "error", err)
	}
}

// Round reconciles once if this instance holds (or takes) the reconciler lease.
func (r *Reconciler) Round(ctx context.Context) (Result, error) {
	l, ok, err := r.o.Leases.AcquireLease(ctx, leaseReconciler, r.o.Owner, r.o.LeaseTTL)
	if err != nil {
		return Result{}, fmt.Errorf("reconcile: %w", err)
	}
	if !ok {
		return Result{Skipped: true}, nil
	}
	rctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	stop := r.keepLease(rctx, cancel, l)
	defer stop()
	res, err := r.round(rctx)
	if cause := context.Cause(rctx); err != nil && errors.Is(cause, store.ErrLeaseLost) {
		return res, fmt.Errorf("reconcile stopped: %w", cause)
	}
	return res, err
}

// keepLease renews the lease every TTL/3 during a round (a round of thousands of
// creates outlasts a TTL) and cancels the round when it is lost.
func (r *Reconciler) keepLease(ctx context.Context, cancel context.CancelCauseFunc, l store.Lease) func() {
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(r.o.LeaseTTL / 3)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-ctx.Done():
				return
			case <-t.C:
			}
			cctx, c := context.WithTimeout(ctx, r.o.LeaseTTL/3)
			nl, err := r.o.Leases.RenewLease(cctx, l, r.o.LeaseTTL)
			c()
			if errors.Is(err, store.ErrLeaseLost) {
				cancel(err)
				return
			}
			if err == nil {
				l = nl
			}
		}
	}()
	return func() { close(done); wg.Wait() }
}

// desired builds channels × types, by key.
func (r *Reconciler) desired(ctx context.Context, conduitID string) (map[string]eventsub.Spec, error) {
	ids := slices.Clone(r.o.StaticChannels)
	if r.o.Channels != nil {
		chs, err := r.o.Channels.List(ctx)
		if err != nil {
			return nil, err
		}
		for _, ch := range chs {
			ids = append(ids, ch.BroadcasterID)
		}
	}
	out := map[string]eventsub.Spec{}
	for _, id := range ids {
		if id == "" {
			continue
		}
		for _, tv := range r.o.Types {
			cond := map[string]string{"broadcaster_user_id": id}
			if tv.Type == twitch.TypeChannelFollow {
				cond["moderator_user_id"] = r.o.ModeratorUserID
			}
			s := eventsub.Spec{Type: tv.Type, Version: tv.Version, Condition: cond}
			out[s.Key()] = s
		}
	}
	if r.o.Fixed != nil {
		for _, s := range r.o.Fixed(conduitID) {
			out[s.Key()] = s
		}
	}
	return out, nil
}

func (r *Reconciler) round(ctx context.Context) (Result, error) {
	conduitID := r.o.ConduitID()
	if conduitID == "" {
		return Result{}, errors.New("reconcile: no conduit yet")
	}
	want, err := r.desired(ctx, conduitID)
	if err != nil {
		return Result{}, fmt.Errorf("reconcile: desired state: %w", err)
	}
	revoked, err := r.o.Revocations.Revocations(ctx)
	if err != nil {
		return Result{}, fmt.Errorf("reconcile: %w", err)
	}
	list, err := r.o.API.ListConduitSubscriptions(ctx, conduitID, twitch.ListSubscriptionsFilter{})
	if err != nil {
		return Result{}, fmt.Errorf("reconcile: %w", err)
	}
	res := Result{Desired: len(want), MaxTotalCost: list.MaxTotalCost}
	have := map[string]bool{}
	var doomed []twitch.Subscription
	cost := list.TotalCost
	for _, s := range list.Subscriptions {
		key := eventsub.Spec{Type: s.Type, Version: s.Version, Condition: s.Condition}.Key()
		switch {
		case twitch.RevocationIsFinal(s.Status):
			if _, known := revoked[key]; !known {
				rv := store.Revocation{Key: key, Type: s.Type, Reason: s.Status}
				if err := r.o.Revocations.RecordRevocation(ctx, rv); err != nil {
					return res, fmt.Errorf("reconcile: %w", err)
				}
				revoked[key] = rv
				r.o.Logger.Warn("conduit subscription revoked; not recreated until its record is cleared", "key", key, "reason", s.Status)
			}
			doomed = append(doomed, s)
		case have[key]:
			doomed = append(doomed, s) // a duplicate
		case want[key].Type == "":
			doomed = append(doomed, s) // no longer wanted
		default:
			have[key] = true
			res.Existing++
		}
	}
	var missing []string
	for key := range want {
		switch {
		case have[key]:
		case revoked[key].Key != "":
			res.Revoked++
		default:
			missing = append(missing, key)
		}
	}
	slices.Sort(missing)

	var mu sync.Mutex
	fail := func(format string, args ...any) {
		mu.Lock()
		defer mu.Unlock()
		res.Failed++
		if len(res.Errors) < 10 {
			res.Errors = append(res.Errors, fmt.Sprintf(format, args...))
		}
	}
	r.parallel(ctx, len(doomed), func(i int) {
		s := doomed[i]
		err := r.o.API.DeleteConduitSubscription(ctx, s.ID)
		if err != nil && fault.CodeOf(err, "") != twitch.CodeNotFound {
			fail("delete %s: %v", s.ID, err)
			return
		}
		mu.Lock()
		res.Deleted++
		if s.Status == twitch.StatusEnabled {
			cost -= s.Cost // Twitch's total counts enabled subscriptions only
		}
		mu.Unlock()
	})

	budget := list.MaxTotalCost
	if r.o.Budget > 0 && (budget == 0 || r.o.Budget < budget) {
		budget = r.o.Budget
	}
	full := false
	r.parallel(ctx, len(missing), func(i int) {
		key := missing[i]
		mu.Lock()
		// A create may cost 1 (Twitch says how much only after): reserve 1.
		if full || (budget > 0 && cost+1 > budget) {
			res.OverBudget = append(res.OverBudget, key)
			mu.Unlock()
			return
		}
		cost++
		mu.Unlock()
		s := want[key]
		created, err := r.o.API.CreateEventSubSubscription(ctx, twitch.CreateSubscriptionRequest{
			Type: s.Type, Version: s.Version, Condition: s.Condition, Transport: twitch.ConduitTransport(conduitID)})
		mu.Lock()
		defer mu.Unlock()
		switch code := fault.CodeOf(err, ""); {
		case err == nil:
			res.Created++
			cost += created.Cost - 1
		case code == twitch.CodeSubscriptionExists:
			res.Existing++
			cost--
		case code == twitch.CodeTotalCostLimit || code == twitch.CodeSubscriptionCountLimit:
			full = true
			cost--
			res.OverBudget = append(res.OverBudget, key)
		default:
			cost--
			res.Failed++
			if len(res.Errors) < 10 {
				res.Errors = append(res.Errors, fmt.Sprintf("create %s: %v", key, err))
			}
			if r.o.OnCreateFailed != nil {
				r.o.OnCreateFailed(s, err)
			}
		}
	})
	slices.Sort(res.OverBudget)
	res.TotalCost = cost
	if len(res.OverBudget) > 0 {
		r.o.Logger.Warn("conduit subscriptions over the cost budget; not created", "count", len(res.OverBudget),
			"budget", budget, "first", res.OverBudget[0])
	}
	return res, ctx.Err()
}

// parallel runs f(0..n-1) on at most Concurrency goroutines, stopping early when
// ctx ends.
func (r *Reconciler) parallel(ctx context.Context, n int, f func(i int)) {
	sem := make(chan struct{}, r.o.Concurrency)
	var wg sync.WaitGroup
	for i := 0; i < n && ctx.Err() == nil; i++ {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			f(i)
		}()
	}
	wg.Wait()
}
