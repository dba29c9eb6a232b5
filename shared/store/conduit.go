package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"cloud.google.com/go/firestore"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/bitbrat/twitch-edge/shared/fault"
)

// CollectionConduits holds one document per conduit deployment
// (conduits/{name}: the conduit id), with its leases and recorded revocations in
// subcollections.
const CollectionConduits = "conduits"

// CodeLeaseLost is the fault code of a lease renewal or release refused because
// another owner (or a later generation) holds the lease now.
const CodeLeaseLost = "LEASE_LOST"

// ErrLeaseLost is in the chain of every CodeLeaseLost error.
var ErrLeaseLost = errors.New("lease held by another owner")

// ConduitStore keeps a conduit deployment's state: the conduit id and shard count,
// the leases instances take on shards and on reconciling, and the subscriptions
// Twitch revoked.
type ConduitStore struct {
	client *firestore.Client
	doc    *firestore.DocumentRef
	now    func() time.Time
}

// ConduitName is the edge's one conduit record, conduits/twitch: the connector in
// conduit mode, EventSubReconcile and EventSubWebhook must all name the same one.
const ConduitName = "twitch"

// NewConduitStore keeps the state of deployment name in conduits/{name}. now may be
// nil (time.Now); leases are judged by it.
func NewConduitStore(client *firestore.Client, name string, now func() time.Time) *ConduitStore {
	if now == nil {
		now = time.Now
	}
	return &ConduitStore{client: client, doc: client.Collection(CollectionConduits).Doc(DocID(name)), now: now}
}

// ConduitRecord is the conduit this deployment uses.
type ConduitRecord struct {
	ID         string    `firestore:"conduitId"`
	ShardCount int       `firestore:"shardCount"`
	UpdatedAt  time.Time `firestore:"updatedAt"`
}

// LoadConduit reads the recorded conduit; ok is false when none is recorded.
func (s *ConduitStore) LoadConduit(ctx context.Context) (ConduitRecord, bool, error) {
	snap, err := s.doc.Get(ctx)
	if status.Code(err) == codes.NotFound {
		return ConduitRecord{}, false, nil
	}
	if err != nil {
		return ConduitRecord{}, false, classify(err, "load conduit record")
	}
	var r ConduitRecord
	if err := snap.DataTo(&r); err != nil {
		return ConduitRecord{}, false, classify(err, "decode conduit record")
	}
	return r, r.ID != "", nil
}

// SaveConduit records the conduit in use.
func (s *ConduitStore) SaveConduit(ctx context.Context, r ConduitRecord) error {
	r.UpdatedAt = s.now()
	_, err := s.doc.Set(ctx, map[string]any{"conduitId": r.ID, "shardCount": r.ShardCount, "updatedAt": r.UpdatedAt}, firestore.MergeAll)
	return classify(err, "save conduit record %s", r.ID)
}

// Lease is a time-bounded exclusive right (on a shard, on reconciling). Generation
// grows by one with every change of owner: it fences a former owner whose renewal
// comes late, since a renewal must name the generation it holds.
type Lease struct {
	Name       string    `firestore:"-"`
	Owner      string    `firestore:"owner"`
	Generation int64     `firestore:"generation"`
	Until      time.Time `firestore:"until"`
}

func (s *ConduitStore) leaseRef(name string) *firestore.DocumentRef {
	return s.doc.Collection("leases").Doc(DocID(name))
}

// AcquireLease takes lease name for owner for ttl if it is free, expired or already
// owner's (then it is renewed at the same generation). ok is false when another
// owner holds it; the returned Lease is then the holder's.
func (s *ConduitStore) AcquireLease(ctx context.Context, name, owner string, ttl time.Duration) (Lease, bool, error) {
	ref := s.leaseRef(name)
	var out Lease
	var ok bool
	err := s.client.RunTransaction(ctx, func(ctx context.Context, tx *firestore.Transaction) error {
		now := s.now()
		cur, exists, err := readLease(tx, ref)
		if err != nil {
			return err
		}
		if exists && cur.Owner != owner && cur.Until.After(now) {
			out, ok = cur, false
			return nil
		}
		next := Lease{Owner: owner, Generation: cur.Generation, Until: now.Add(ttl)}
		if !exists || cur.Owner != owner {
			next.Generation++
		}
		out, ok = next, true
		return tx.Set(ref, next)
	})
	out.Name = name
	if err != nil {
		return Lease{}, false, classify(err, "acquire lease %s for %s", name, owner)
	}
	return out, ok, nil
}

// RenewLease extends l for ttl from now if l's owner still holds l's generation and
// it has not expired; CodeLeaseLost (ErrLeaseLost) otherwise.
func (s *ConduitStore) RenewLease(ctx context.Context, l Lease, ttl time.Duration) (Lease, error) {
	ref := s.leaseRef(l.Name)
	var out Lease
	err := s.client.RunTransaction(ctx, func(ctx context.Context, tx *firestore.Transaction) error {
		now := s.now()
		cur, exists, err := readLease(tx, ref)
		if err != nil {
			return err
		}
		if !exists || cur.Owner != l.Owner || cur.Generation != l.Generation || !cur.Until.After(now) {
			return fault.Wrap(fault.Permanent, CodeLeaseLost, ErrLeaseLost, "lease %s generation %d of %s", l.Name, l.Generation, l.Owner)
		}
		out = Lease{Name: l.Name, Owner: l.Owner, Generation: l.Generation, Until: now.Add(ttl)}
		return tx.Set(ref, out)
	})
	if err != nil {
		return Lease{}, classify(err, "renew lease %s", l.Name)
	}
	return out, nil
}

// ReleaseLease frees l at once (for the next owner) if l still holds it; a lease
// held by someone else is left alone.
func (s *ConduitStore) ReleaseLease(ctx context.Context, l Lease) error {
	ref := s.leaseRef(l.Name)
	err := s.client.RunTransaction(ctx, func(ctx context.Context, tx *firestore.Transaction) error {
		cur, exists, err := readLease(tx, ref)
		if err != nil || !exists || cur.Owner != l.Owner || cur.Generation != l.Generation {
			return err
		}
		// Kept with its generation, so the next owner's generation is still higher.
		return tx.Set(ref, Lease{Owner: "", Generation: cur.Generation, Until: time.Time{}})
	})
	return classify(err, "release lease %s", l.Name)
}

// GetLease reads lease name (zero Lease when it never existed).
func (s *ConduitStore) GetLease(ctx context.Context, name string) (Lease, error) {
	snap, err := s.leaseRef(name).Get(ctx)
	if status.Code(err) == codes.NotFound {
		return Lease{Name: name}, nil
	}
	if err != nil {
		return Lease{}, classify(err, "get lease %s", name)
	}
	var l Lease
	if err := snap.DataTo(&l); err != nil {
		return Lease{}, classify(err, "decode lease %s", name)
	}
	l.Name = name
	return l, nil
}

func readLease(tx *firestore.Transaction, ref *firestore.DocumentRef) (Lease, bool, error) {
	snap, err := tx.Get(ref)
	if status.Code(err) == codes.NotFound {
		return Lease{}, false, nil
	}
	if err != nil {
		return Lease{}, false, err
	}
	var l Lease
	if err := snap.DataTo(&l); err != nil {
		return Lease{}, false, fmt.Errorf("decode lease %s: %w", ref.ID, err)
	}
	return l, true, nil
}

// Revocation is a subscription Twitch revoked; the reconciler does not recreate it
// while the record exists (an operator deletes the record once the cause is fixed,
// e.g. the broadcaster authorized the app again).
type Revocation struct {
	Key       string    `firestore:"key"`
	Type      string    `firestore:"type"`
	Reason    string    `firestore:"reason"`
	RevokedAt time.Time `firestore:"revokedAt"`
}

func (s *ConduitStore) revocations() *firestore.CollectionRef { return s.doc.Collection("revocations") }

// RecordRevocation records r (keyed by r.Key; a repeat overwrites).
func (s *ConduitStore) RecordRevocation(ctx context.Context, r Revocation) error {
	if r.RevokedAt.IsZero() {
		r.RevokedAt = s.now()
	}
	_, err := s.revocations().Doc(DocID(r.Key)).Set(ctx, r)
	return classify(err, "record revocation of %s", r.Key)
}

// ClearRevocation removes the record of key, so the subscription is created again.
func (s *ConduitStore) ClearRevocation(ctx context.Context, key string) error {
	_, err := s.revocations().Doc(DocID(key)).Delete(ctx)
	return classify(err, "clear revocation of %s", key)
}

// Revocations reads every recorded revocation by key.
func (s *ConduitStore) Revocations(ctx context.Context) (map[string]Revocation, error) {
	snaps, err := s.revocations().Documents(ctx).GetAll()
	if err != nil {
		return nil, classify(err, "read revocations")
	}
	out := make(map[string]Revocation, len(snaps))
	for _, sn := range snaps {
		var r Revocation
		if err := sn.DataTo(&r); err != nil {
			return nil, classify(err, "decode revocation %s", sn.Ref.ID)
		}
		out[r.Key] = r
	}
	return out, nil
}
