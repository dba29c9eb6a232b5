package store

import (
	"context"
	"time"

	"cloud.google.com/go/firestore"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Claims makes a side effect (publishing an event, sending a chat message) happen
// once per key across retries, redeliveries and instances. A worker Acquires the key
// before acting and Completes it after; a key left pending by a crashed worker can be
// taken over once its lease has run out. Each claim document carries expireAt so that
// Firestore's TTL policy removes it after the retention window.
//
// The guarantee is "at most once while the lease holds, at least once overall": a
// worker that acts and dies before Complete leaves the action to be redone after the
// lease. Consumers dedupe that rare case by the deterministic correlation id.
type Claims struct {
	client     *firestore.Client
	collection string
	retention  time.Duration
	now        func() time.Time
}

// NewClaims returns claims in collection, kept for retention after their last write.
// now may be nil (time.Now).
func NewClaims(client *firestore.Client, collection string, retention time.Duration, now func() time.Time) *Claims {
	if now == nil {
		now = time.Now
	}
	return &Claims{client: client, collection: collection, retention: retention, now: now}
}

// ClaimState is the outcome of Acquire.
type ClaimState int

const (
	// Acquired: the caller holds the claim and must act, then Complete or Release.
	Acquired ClaimState = iota + 1
	// Completed: the action was already done; Result holds what Complete stored.
	Completed
	// Held: another worker holds an unexpired lease; try again after LeaseUntil.
	Held
	// Taken (Begin only): another delivery of the same message, from another origin,
	// holds the claim; it acts, or its own redelivery does. The caller does nothing.
	Taken
)

func (s ClaimState) String() string {
	switch s {
	case Acquired:
		return "acquired"
	case Completed:
		return "completed"
	case Held:
		return "held"
	case Taken:
		return "taken"
	}
	return "unknown"
}

// Claim is what Acquire found or made.
type Claim struct {
	State      ClaimState
	Owner      string
	LeaseUntil time.Time
	// Attempts counts acquisitions, the first included (a take-over makes it > 1).
	Attempts int64
	// Result is what Complete stored (for Completed claims).
	Result string
	// Sending reports that an earlier holder marked the action as started
	// (ClaimSend with a slot) and never completed it: its outcome is unknown, so an action that
	// must not happen twice is not redone.
	Sending bool
	// Finalized is what Finish recorded: the claimed action's outcome was reported
	// (ClaimSend and Peek only).
	Finalized string
	// SlotAt is the time of the budget slot ClaimSend took with the claim (zero when
	// it took none): SendBudgets.Settle names the send by it.
	SlotAt time.Time
}

type claimDoc struct {
	State      string    `firestore:"state"`
	Owner      string    `firestore:"owner"`
	LeaseUntil time.Time `firestore:"leaseUntil"`
	Attempts   int64     `firestore:"attempts"`
	Result     string    `firestore:"result,omitempty"`
	Sending    bool      `firestore:"sending,omitempty"`
	Finalized  string    `firestore:"finalized,omitempty"`
	Origin     string    `firestore:"origin,omitempty"`
	CreatedAt  time.Time `firestore:"createdAt"`
	UpdatedAt  time.Time `firestore:"updatedAt"`
	ExpireAt   time.Time `firestore:"expireAt"`
}

// CodeInProgress is the fault code of work skipped because another worker holds its
// claim (a Held claim): retry after the lease.
const CodeInProgress = "IN_PROGRESS"

const (
	claimPending = "pending"
	claimDone    = "done"
)

func (c *Claims) doc(key string) *firestore.DocumentRef {
	return c.client.Collection(c.collection).Doc(DocID(key))
}

// Acquire claims key for owner for lease, in a transaction: exactly one of any
// number of concurrent callers with different owners gets Acquired. The owner that
// holds the claim gets Acquired again (that is how a lease is renewed), so callers
// that must exclude each other use distinct owners (one per attempt).
func (c *Claims) Acquire(ctx context.Context, key, owner string, lease time.Duration) (Claim, error) {
	ref := c.doc(key)
	var out Claim
	err := c.client.RunTransaction(ctx, func(ctx context.Context, tx *firestore.Transaction) error {
		now := c.now()
		d, exists, err := getIn[claimDoc](tx, ref)
		if err != nil {
			return err
		}
		if d.CreatedAt.IsZero() {
			d.CreatedAt = now
		}
		if exists {
			switch {
			case d.State == claimDone:
				out = Claim{State: Completed, Owner: d.Owner, Attempts: d.Attempts, Result: d.Result}
				return nil
			case d.Owner != owner && d.LeaseUntil.After(now):
				out = Claim{State: Held, Owner: d.Owner, LeaseUntil: d.LeaseUntil, Attempts: d.Attempts}
				return nil
			}
		}
		d.State, d.Owner, d.LeaseUntil = claimPending, owner, now.Add(lease)
		d.Attempts++
		d.UpdatedAt, d.ExpireAt = now, now.Add(c.retention)
		out = Claim{State: Acquired, Owner: owner, LeaseUntil: d.LeaseUntil, Attempts: d.Attempts, Sending: d.Sending}
		return tx.Set(ref, d)
	})
	if err != nil {
		return Claim{}, classify(err, "acquire claim %s/%s", c.collection, key)
	}
	return out, nil
}

// Begin claims key in one write and no read when the key is new (the happy path): a
// create that fails if the document exists. It is for an action whose done-ness the
// claim itself stands for, with no Complete: Normalize's publish. origin names the
// delivery the claim is for (the Pub/Sub message id of the raw frame).
//
// When the key is claimed already, Begin reads the claim (the only read) and says:
//   - Completed: completed (by Complete, as Acquire's callers do);
//   - Acquired (Attempts unchanged): claimed by owner itself inside its lease, which is
//     this call's own create landing before a retry of it (owners are unique per
//     attempt);
//   - Taken: claimed for another origin. That delivery acts, or, if its worker died,
//     its own redelivery does; the caller drops its duplicate;
//   - Held: claimed for this origin by a worker whose lease holds (a concurrent or
//     early redelivery of the same message): retry after LeaseUntil;
//   - Acquired (Attempts > 1): claimed for this origin and the lease ran out, so the
//     earlier worker died or failed without Release; the claim is taken over with a
//     write conditioned on the claim being unchanged, so two take-overs cannot both
//     win. Its action may have happened: at least once, with the same key.
//
// An empty origin, or a claim without one (written by Acquire), counts as this origin.
func (c *Claims) Begin(ctx context.Context, key, owner, origin string, lease time.Duration) (Claim, error) {
	ref := c.doc(key)
	now := c.now()
	d := claimDoc{State: claimPending, Owner: owner, LeaseUntil: now.Add(lease), Attempts: 1, Origin: origin,
		CreatedAt: now, UpdatedAt: now, ExpireAt: now.Add(c.retention)}
	_, err := ref.Create(ctx, d)
	if err == nil {
		return Claim{State: Acquired, Owner: owner, LeaseUntil: d.LeaseUntil, Attempts: 1}, nil
	}
	if status.Code(err) != codes.AlreadyExists {
		return Claim{}, classify(err, "claim %s/%s", c.collection, key)
	}
	snap, err := ref.Get(ctx)
	if status.Code(err) == codes.NotFound {
		// Released between the create and this read: its worker failed and the
		// message is retried; so may this delivery be.
		return Claim{State: Held, LeaseUntil: now}, nil
	}
	if err != nil {
		return Claim{}, classify(err, "read claim %s/%s", c.collection, key)
	}
	var cur claimDoc
	if err := snap.DataTo(&cur); err != nil {
		return Claim{}, classify(err, "decode claim %s/%s", c.collection, key)
	}
	switch {
	case cur.State == claimDone:
		return Claim{State: Completed, Owner: cur.Owner, Attempts: cur.Attempts, Result: cur.Result}, nil
	case cur.Owner == owner && cur.LeaseUntil.After(now):
		// This caller's own create: the client library retries a commit that failed
		// in transit (Unavailable, a timeout), and the retry finds the document the
		// first try wrote. Owners are unique per attempt, so it is ours: acquired.
		// Answering Held here left the claim to block every redelivery of the message
		// for the whole lease, and Pub/Sub dead-lettered it before the lease ran out.
		return Claim{State: Acquired, Owner: owner, LeaseUntil: cur.LeaseUntil, Attempts: cur.Attempts}, nil
	case origin != "" && cur.Origin != "" && cur.Origin != origin:
		return Claim{State: Taken, Owner: cur.Owner, LeaseUntil: cur.LeaseUntil, Attempts: cur.Attempts}, nil
	case cur.LeaseUntil.After(now):
		return Claim{State: Held, Owner: cur.Owner, LeaseUntil: cur.LeaseUntil, Attempts: cur.Attempts}, nil
	}
	d.Attempts = cur.Attempts + 1
	_, err = ref.Update(ctx, []firestore.Update{
		{Path: "state", Value: d.State}, {Path: "owner", Value: d.Owner}, {Path: "leaseUntil", Value: d.LeaseUntil},
		{Path: "attempts", Value: d.Attempts}, {Path: "updatedAt", Value: d.UpdatedAt}, {Path: FieldExpireAt, Value: d.ExpireAt},
	}, firestore.LastUpdateTime(snap.UpdateTime))
	switch status.Code(err) {
	case codes.OK:
		return Claim{State: Acquired, Owner: owner, LeaseUntil: d.LeaseUntil, Attempts: d.Attempts}, nil
	case codes.FailedPrecondition, codes.Aborted:
		return Claim{State: Held, Owner: cur.Owner, LeaseUntil: cur.LeaseUntil, Attempts: cur.Attempts}, nil
	}
	return Claim{}, classify(err, "take over claim %s/%s", c.collection, key)
}

// Complete marks key done with result. It does not check the owner: once the action
// has happened, recording it is always right, whoever holds the lease now.
func (c *Claims) Complete(ctx context.Context, key, owner, result string) error {
	now := c.now()
	_, err := c.doc(key).Set(ctx, map[string]any{
		"state":       claimDone,
		"owner":       owner,
		"result":      result,
		"updatedAt":   now,
		"completedAt": now,
		FieldExpireAt: now.Add(c.retention),
		"leaseUntil":  now,
	}, firestore.MergeAll)
	return classify(err, "complete claim %s/%s", c.collection, key)
}

// Release gives up owner's pending claim on key so that a retry can acquire it at
// once. A claim that is done, or held by someone else, is left alone.
func (c *Claims) Release(ctx context.Context, key, owner string) error {
	ref := c.doc(key)
	err := c.client.RunTransaction(ctx, func(ctx context.Context, tx *firestore.Transaction) error {
		d, exists, err := getIn[claimDoc](tx, ref)
		if err != nil || !exists {
			return err
		}
		if d.State != claimPending || d.Owner != owner {
			return nil
		}
		return tx.Delete(ref)
	})
	return classify(err, "release claim %s/%s", c.collection, key)
}
