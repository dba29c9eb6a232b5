package store

import (
	"context"
	"time"

	"cloud.google.com/go/firestore"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// CollectionWebhookMessages holds one claim per EventSub message id the webhook
// function received, so that a redelivery Twitch sends (same message id) is not
// published to the raw topic again. Each carries expireAt for the TTL policy.
const CollectionWebhookMessages = "eventsub_webhook_messages"

// WebhookMessages are the webhook function's claims: a create-if-absent document per
// message id. Unlike Claims.Acquire (a transaction: a read and a write), the common
// case — a message seen for the first time — costs one write, which matters on a path
// that must answer Twitch within a few seconds.
type WebhookMessages struct {
	client    *firestore.Client
	retention time.Duration
	now       func() time.Time
}

// NewWebhookMessages returns the claims, kept for retention after their last write
// (longer than Twitch retries a message). now may be nil (time.Now).
func NewWebhookMessages(client *firestore.Client, retention time.Duration, now func() time.Time) *WebhookMessages {
	if now == nil {
		now = time.Now
	}
	return &WebhookMessages{client: client, retention: retention, now: now}
}

func (w *WebhookMessages) doc(messageID string) *firestore.DocumentRef {
	return w.client.Collection(CollectionWebhookMessages).Doc(DocID(messageID))
}

type webhookClaimDoc struct {
	State      string    `firestore:"state"`
	Owner      string    `firestore:"owner"`
	LeaseUntil time.Time `firestore:"leaseUntil"`
	Result     string    `firestore:"result,omitempty"`
	UpdatedAt  time.Time `firestore:"updatedAt"`
	ExpireAt   time.Time `firestore:"expireAt"`
}

// Claim claims messageID for owner for lease. Acquired: the caller publishes, then
// Completes or Releases. Completed: published before (Result is the Pub/Sub message
// id). Held: another request holds an unexpired claim (it may be publishing now).
// A pending claim whose lease ran out (its holder died) is taken over with a write
// conditioned on the document being unchanged, so two take-overs cannot both win.
func (w *WebhookMessages) Claim(ctx context.Context, messageID, owner string, lease time.Duration) (Claim, error) {
	ref := w.doc(messageID)
	now := w.now()
	d := webhookClaimDoc{State: claimPending, Owner: owner, LeaseUntil: now.Add(lease), UpdatedAt: now, ExpireAt: now.Add(w.retention)}
	_, err := ref.Create(ctx, d)
	if err == nil {
		return Claim{State: Acquired, Owner: owner, LeaseUntil: d.LeaseUntil, Attempts: 1}, nil
	}
	if status.Code(err) != codes.AlreadyExists {
		return Claim{}, classify(err, "claim webhook message %s", messageID)
	}
	snap, err := ref.Get(ctx)
	if status.Code(err) == codes.NotFound {
		// Released between our create and this read: the caller retries (Twitch does).
		return Claim{State: Held, Owner: "", LeaseUntil: now}, nil
	}
	if err != nil {
		return Claim{}, classify(err, "read webhook message claim %s", messageID)
	}
	var cur webhookClaimDoc
	if err := snap.DataTo(&cur); err != nil {
		return Claim{}, classify(err, "decode webhook message claim %s", messageID)
	}
	switch {
	case cur.State == claimDone:
		return Claim{State: Completed, Owner: cur.Owner, Result: cur.Result}, nil
	case cur.LeaseUntil.After(now):
		return Claim{State: Held, Owner: cur.Owner, LeaseUntil: cur.LeaseUntil}, nil
	}
	_, err = ref.Update(ctx, []firestore.Update{
		{Path: "state", Value: d.State}, {Path: "owner", Value: d.Owner}, {Path: "leaseUntil", Value: d.LeaseUntil},
		{Path: "updatedAt", Value: d.UpdatedAt}, {Path: FieldExpireAt, Value: d.ExpireAt},
	}, firestore.LastUpdateTime(snap.UpdateTime))
	switch status.Code(err) {
	case codes.OK:
		return Claim{State: Acquired, Owner: owner, LeaseUntil: d.LeaseUntil, Attempts: 2}, nil
	case codes.FailedPrecondition, codes.Aborted:
		return Claim{State: Held, Owner: cur.Owner, LeaseUntil: cur.LeaseUntil}, nil
	}
	return Claim{}, classify(err, "take over webhook message claim %s", messageID)
}

// Complete marks messageID published (result: the Pub/Sub message id). Whoever
// holds the claim now, recording a publish that happened is always right.
func (w *WebhookMessages) Complete(ctx context.Context, messageID, owner, result string) error {
	now := w.now()
	_, err := w.doc(messageID).Set(ctx, webhookClaimDoc{State: claimDone, Owner: owner, LeaseUntil: now,
		Result: result, UpdatedAt: now, ExpireAt: now.Add(w.retention)})
	return classify(err, "complete webhook message claim %s", messageID)
}

// Release gives up owner's pending claim so that Twitch's retry can publish at once.
// A claim completed or taken over by someone else is left alone.
func (w *WebhookMessages) Release(ctx context.Context, messageID, owner string) error {
	ref := w.doc(messageID)
	snap, err := ref.Get(ctx)
	if status.Code(err) == codes.NotFound {
		return nil
	}
	if err != nil {
		return classify(err, "read webhook message claim %s", messageID)
	}
	var cur webhookClaimDoc
	if err := snap.DataTo(&cur); err != nil {
		return classify(err, "decode webhook message claim %s", messageID)
	}
	if cur.State != claimPending || cur.Owner != owner {
		return nil
	}
	_, err = ref.Delete(ctx, firestore.LastUpdateTime(snap.UpdateTime))
	if c := status.Code(err); c == codes.FailedPrecondition || c == codes.NotFound {
		return nil // changed meanwhile: no longer ours to release
	}
	return classify(err, "release webhook message claim %s", messageID)
}
