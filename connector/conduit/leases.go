package conduit

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/bitbrat/twitch-edge/shared/store"
)

// LeaseStore holds fenced, expiring leases (store.ConduitStore).
type LeaseStore interface {
	AcquireLease(ctx context.Context, name, owner string, ttl time.Duration) (store.Lease, bool, error)
	RenewLease(ctx context.Context, l store.Lease, ttl time.Duration) (store.Lease, error)
	ReleaseLease(ctx context.Context, l store.Lease) error
}

// DefaultLeaseTTL is how long a shard lease lives without renewal: a dead
// instance's shard is taken over within it.
const DefaultLeaseTTL = 15 * time.Second

// ShardLeasesOptions configure ShardLeases.
type ShardLeasesOptions struct {
	Store LeaseStore
	// Owner is this instance's id (unique per process).
	Owner string
	// TTL of each lease. Rounds run every TTL/3, each call is bounded by TTL/3, and a
	// lease not renewed within ⅔ TTL is dropped by its holder, before anyone else can
	// take it at TTL. Default DefaultLeaseTTL.
	TTL time.Duration
	// Shards returns the conduit's current shard count. Required.
	Shards func() int
	// MaxHeld is how many shards one instance holds at a time. Default 1: the layout
	// rule (see the package doc) that keeps one instance's death from disabling more
	// than one shard.
	MaxHeld int
	// OnGain is called (from Round) when a shard's lease is taken: start its holder.
	OnGain func(shardID string, l store.Lease)
	// OnLose is called when a held lease is lost, overdue or released: stop the
	// holder at once (another instance may hold the shard soon).
	OnLose func(shardID, reason string)
	// ClaimEvery is how often an instance below MaxHeld looks for a free shard
	// between rounds: a standby must claim a shard released at SIGTERM while the old
	// holder still reads its socket (the hand-over). Default TTL/3 (no extra looks).
	ClaimEvery time.Duration
	// Now is the clock. Default time.Now.
	Now    func() time.Time
	Logger *slog.Logger
}

// ShardLeases claims conduit shards for this instance through Firestore leases.
type ShardLeases struct {
	o    ShardLeasesOptions
	mu   sync.Mutex
	held map[string]*heldLease
	// allTaken: the last round that looked for a shard found every one held (by this
	// instance or a live lease of another); a standby is then where it should be.
	allTaken bool
}

type heldLease struct {
	lease store.Lease
	// confirmed is when the last successful renewal was sent (not answered): the
	// conservative start of the lease's remaining life.
	confirmed time.Time
}

// NewShardLeases returns a lease manager; call Run (or Round in tests).
func NewShardLeases(o ShardLeasesOptions) *ShardLeases {
	if o.TTL <= 0 {
		o.TTL = DefaultLeaseTTL
	}
	if o.MaxHeld <= 0 {
		o.MaxHeld = 1
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.OnGain == nil {
		o.OnGain = func(string, store.Lease) {}
	}
	if o.OnLose == nil {
		o.OnLose = func(string, string) {}
	}
	return &ShardLeases{o: o, held: map[string]*heldLease{}}
}

// ShardLeaseName is the lease document of shard id.
func ShardLeaseName(id string) string { return "shard-" + id }

// Held lists the shards this instance holds, sorted.
func (m *ShardLeases) Held() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]string, 0, len(m.held))
	for id := range m.held {
		out = append(out, id)
	}
	slices.Sort(out)
	return out
}

// Run renews and claims every TTL/3 until ctx ends, then releases every lease so
// that another instance takes the shards over at once (a deploy's SIGTERM).
func (m *ShardLeases) Run(ctx context.Context) error {
	t := time.NewTicker(m.o.TTL / 3)
	defer t.Stop()
	claimEvery := m.o.ClaimEvery
	if claimEvery <= 0 || claimEvery > m.o.TTL/3 {
		claimEvery = m.o.TTL / 3
	}
	c := time.NewTicker(claimEvery)
	defer c.Stop()
	round := true
	for {
		var err error
		if round {
			err = m.Round(ctx)
		} else if len(m.Held()) < m.o.MaxHeld {
			err = m.claim(ctx)
		}
		if err != nil && ctx.Err() == nil {
			m.o.Logger.Warn("shard lease round failed; retrying next round", "error", err, "held", m.Held())
		}
		select {
		case <-ctx.Done():
			m.ReleaseAll(context.WithoutCancel(ctx))
			return nil
		case <-t.C:
			round = true
		case <-c.C:
			round = false
		}
	}
}

// Round renews the held leases (dropping lost and overdue ones), then claims free
// or expired shards up to MaxHeld. The error is the first failure to claim; renewal
// failures are handled (and logged) here.
func (m *ShardLeases) Round(ctx context.Context) error {
	for _, id := range m.Held() {
		_ = m.renew(ctx, id)
	}
	return m.claim(ctx)
}

// claim takes free or expired shards up to MaxHeld.
func (m *ShardLeases) claim(ctx context.Context) error {
	if len(m.Held()) >= m.o.MaxHeld {
		return nil
	}
	n := m.o.Shards()
	var firstErr error
	defer func() {
		m.mu.Lock()
		m.allTaken = firstErr == nil
		m.mu.Unlock()
	}()
	for i := 0; i < n && len(m.Held()) < m.o.MaxHeld; i++ {
		id := strconv.Itoa(i)
		if m.holds(id) {
			continue
		}
		cctx, cancel := context.WithTimeout(ctx, m.o.TTL/3)
		sent := m.o.Now()
		l, ok, err := m.o.Store.AcquireLease(cctx, ShardLeaseName(id), m.o.Owner, m.o.TTL)
		cancel()
		if err != nil {
			if firstErr == nil {
				firstErr = err
			}
			continue
		}
		if !ok {
			continue
		}
		m.mu.Lock()
		m.held[id] = &heldLease{lease: l, confirmed: sent}
		m.mu.Unlock()
		m.o.Logger.Info("conduit shard claimed", "shard", id, "generation", l.Generation, "owner", m.o.Owner)
		m.o.OnGain(id, l)
	}
	return firstErr
}

// EveryShardHeld reports whether the last round that looked for a free shard found
// none: every shard is held, by this instance or another. False before any round and
// after a round whose claims failed (Firestore away: unknown).
func (m *ShardLeases) EveryShardHeld() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.allTaken
}

// Fence renews shard id's lease and fails if this instance no longer holds it: a
// holder calls it right before it PATCHes the shard, so a former owner whose lease
// was taken over never points the shard at its own socket.
func (m *ShardLeases) Fence(ctx context.Context, id string) error {
	if !m.holds(id) {
		return store.ErrLeaseLost
	}
	return m.renew(ctx, id)
}

func (m *ShardLeases) holds(id string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.held[id] != nil
}

// renew extends shard id's lease; on a lost lease, or a failure when the last
// confirmation is ⅔ TTL old, the lease is dropped and OnLose called.
func (m *ShardLeases) renew(ctx context.Context, id string) error {
	m.mu.Lock()
	h := m.held[id]
	m.mu.Unlock()
	if h == nil {
		return store.ErrLeaseLost
	}
	cctx, cancel := context.WithTimeout(ctx, m.o.TTL/3)
	sent := m.o.Now()
	l, err := m.o.Store.RenewLease(cctx, h.lease, m.o.TTL)
	cancel()
	if err == nil {
		m.mu.Lock()
		if cur := m.held[id]; cur != nil && cur.lease.Generation == l.Generation {
			cur.lease, cur.confirmed = l, sent
		}
		m.mu.Unlock()
		return nil
	}
	switch {
	case errors.Is(err, store.ErrLeaseLost):
		m.drop(id, h, "lease lost to another instance")
	case m.o.Now().Sub(h.confirmed) >= 2*m.o.TTL/3:
		m.drop(id, h, "lease renewal overdue (not confirmed within 2/3 of the TTL)")
	default:
		m.o.Logger.Warn("shard lease renewal failed; retrying", "shard", id, "error", err,
			"confirmedAgo", m.o.Now().Sub(h.confirmed).String())
	}
	return err
}

func (m *ShardLeases) drop(id string, h *heldLease, reason string) {
	m.mu.Lock()
	if m.held[id] != h {
		m.mu.Unlock()
		return
	}
	delete(m.held, id)
	m.mu.Unlock()
	m.o.Logger.Warn("conduit shard given up", "shard", id, "generation", h.lease.Generation, "reason", reason)
	m.o.OnLose(id, reason)
}

// ReleaseAll stops holding every shard and frees the leases (each call bounded by
// TTL/3), so another instance need not wait for them to expire.
func (m *ShardLeases) ReleaseAll(ctx context.Context) {
	for _, id := range m.Held() {
		m.mu.Lock()
		h := m.held[id]
		m.mu.Unlock()
		if h == nil {
			continue
		}
		m.drop(id, h, "released")
		cctx, cancel := context.WithTimeout(ctx, m.o.TTL/3)
		if err := m.o.Store.ReleaseLease(cctx, h.lease); err != nil {
			m.o.Logger.Warn("shard lease not released; it expires by itself", "shard", id, "error", err)
		}
		cancel()
	}
}
