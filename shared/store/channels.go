package store

import (
	"context"
	"time"

	"cloud.google.com/go/firestore"
)

// CollectionChannels lists the channels served in conduit mode, one document per
// broadcaster (document id: the broadcaster's user id). Operators add and remove
// documents at runtime; the conduit reconciler reads the collection every round.
const CollectionChannels = "channels"

// Channel is one served channel.
type Channel struct {
	BroadcasterID string    `firestore:"broadcasterId"`
	Login         string    `firestore:"login,omitempty"`
	AddedAt       time.Time `firestore:"addedAt"`
}

// Channels reads and writes the channels collection.
type Channels struct {
	client *firestore.Client
	now    func() time.Time
}

// NewChannels returns the channels collection; now may be nil (time.Now).
func NewChannels(client *firestore.Client, now func() time.Time) *Channels {
	if now == nil {
		now = time.Now
	}
	return &Channels{client: client, now: now}
}

// Add adds (or re-adds) a channel.
func (c *Channels) Add(ctx context.Context, ch Channel) error {
	if ch.AddedAt.IsZero() {
		ch.AddedAt = c.now()
	}
	_, err := c.client.Collection(CollectionChannels).Doc(DocID(ch.BroadcasterID)).Set(ctx, ch)
	return classify(err, "add channel %s", ch.BroadcasterID)
}

// AddAll adds many channels in batched writes (at most 500 per batch, Firestore's
// limit).
func (c *Channels) AddAll(ctx context.Context, chs []Channel) error {
	for start := 0; start < len(chs); start += 500 {
		end := min(start+500, len(chs))
		bw := c.client.BulkWriter(ctx)
		jobs := make([]*firestore.BulkWriterJob, 0, end-start)
		for _, ch := range chs[start:end] {
			if ch.AddedAt.IsZero() {
				ch.AddedAt = c.now()
			}
			job, err := bw.Set(c.client.Collection(CollectionChannels).Doc(DocID(ch.BroadcasterID)), ch)
			if err != nil {
				bw.End()
				return classify(err, "add channel %s", ch.BroadcasterID)
			}
			jobs = append(jobs, job)
		}
		bw.End()
		for i, job := range jobs {
			if _, err := job.Results(); err != nil {
				return classify(err, "add channel %s", chs[start+i].BroadcasterID)
			}
		}
	}
	return nil
}

// Remove removes a channel (no error when it is not there).
func (c *Channels) Remove(ctx context.Context, broadcasterID string) error {
	_, err := c.client.Collection(CollectionChannels).Doc(DocID(broadcasterID)).Delete(ctx)
	return classify(err, "remove channel %s", broadcasterID)
}

// List reads every channel.
func (c *Channels) List(ctx context.Context) ([]Channel, error) {
	snaps, err := c.client.Collection(CollectionChannels).Documents(ctx).GetAll()
	if err != nil {
		return nil, classify(err, "list channels")
	}
	out := make([]Channel, 0, len(snaps))
	for _, sn := range snaps {
		var ch Channel
		if err := sn.DataTo(&ch); err != nil {
			return nil, classify(err, "decode channel %s", sn.Ref.ID)
		}
		if ch.BroadcasterID == "" {
			ch.BroadcasterID = sn.Ref.ID
		}
		out = append(out, ch)
	}
	return out, nil
}
