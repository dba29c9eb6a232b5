package store

import (
	"context"
	"fmt"
	"time"

	"cloud.google.com/go/firestore"
)

// CollectionSpill holds the notifications the connector could not keep in memory
// while Pub/Sub was down (and those left unpublished at shutdown), until they are
// replayed, by this instance or the next. A Cloud Run disk is not durable; Firestore
// is.
const CollectionSpill = "connector_spill"

// spillRetention bounds how long a spilled notification waits (Firestore's TTL
// policy on expireAt); Normalize refuses older ones anyway.
const spillRetention = 7 * 24 * time.Hour

// Spilled is one spilled notification frame. ID orders the spill: time first, so
// that replay follows the order frames were spilled, across instances too.
type Spilled struct {
	ID               string
	Data             []byte
	MessageID        string
	MessageTimestamp time.Time
	Received         time.Time
	// Overlap: the frame was read during a hand-off's overlap (eventsub.Frame's
	// Overlap). Its replay must carry the mark too, or Normalize would claim the
	// published copy by content and the replayed one by message id, and publish both.
	Overlap bool
}

// SpillID is the document id of the seq-th frame spilled by instance at t.
func SpillID(t time.Time, instance string, seq uint64) string {
	return fmt.Sprintf("%019d-%s-%010d", t.UnixNano(), DocID(instance), seq)
}

type spillDoc struct {
	Data             []byte    `firestore:"data"`
	MessageID        string    `firestore:"messageId"`
	MessageTimestamp time.Time `firestore:"messageTimestamp"`
	Received         time.Time `firestore:"received"`
	Overlap          bool      `firestore:"overlap,omitempty"`
	SpilledAt        time.Time `firestore:"spilledAt"`
	ExpireAt         time.Time `firestore:"expireAt"`
}

// Spill is the durable overflow of the connector's relay.
type Spill struct {
	c *firestore.Client
}

// NewSpill returns the spill in client's database.
func NewSpill(client *firestore.Client) *Spill { return &Spill{c: client} }

// Write stores frames; it returns nil only when every one is stored (a retry writes
// the same ids again, which is harmless).
func (s *Spill) Write(ctx context.Context, frames []Spilled) error {
	if len(frames) == 0 {
		return nil
	}
	bw := s.c.BulkWriter(ctx)
	now := time.Now()
	jobs := make([]*firestore.BulkWriterJob, 0, len(frames))
	for _, f := range frames {
		j, err := bw.Set(s.c.Collection(CollectionSpill).Doc(f.ID), spillDoc{
			Data: f.Data, MessageID: f.MessageID, MessageTimestamp: f.MessageTimestamp, Received: f.Received,
			Overlap: f.Overlap, SpilledAt: now, ExpireAt: now.Add(spillRetention),
		})
		if err != nil {
			bw.End()
			return classify(err, "spill %d notifications", len(frames))
		}
		jobs = append(jobs, j)
	}
	bw.End()
	for _, j := range jobs {
		if _, err := j.Results(); err != nil {
			return classify(err, "spill %d notifications", len(frames))
		}
	}
	return nil
}

// Read returns up to limit spilled frames with after < ID <= upTo, in ID order
// (after "" reads from the start).
func (s *Spill) Read(ctx context.Context, after, upTo string, limit int) ([]Spilled, error) {
	q := s.c.Collection(CollectionSpill).OrderBy(firestore.DocumentID, firestore.Asc)
	if after != "" {
		q = q.StartAfter(after)
	}
	snaps, err := q.EndAt(upTo).Limit(limit).Documents(ctx).GetAll()
	if err != nil {
		return nil, classify(err, "read spilled notifications")
	}
	out := make([]Spilled, 0, len(snaps))
	for _, sn := range snaps {
		var d spillDoc
		if err := sn.DataTo(&d); err != nil {
			return nil, classify(err, "decode spilled notification %s", sn.Ref.ID)
		}
		out = append(out, Spilled{ID: sn.Ref.ID, Data: d.Data, MessageID: d.MessageID,
			MessageTimestamp: d.MessageTimestamp, Received: d.Received, Overlap: d.Overlap})
	}
	return out, nil
}

// Delete removes replayed frames.
func (s *Spill) Delete(ctx context.Context, ids []string) error {
	if len(ids) == 0 {
		return nil
	}
	bw := s.c.BulkWriter(ctx)
	jobs := make([]*firestore.BulkWriterJob, 0, len(ids))
	for _, id := range ids {
		j, err := bw.Delete(s.c.Collection(CollectionSpill).Doc(id))
		if err != nil {
			bw.End()
			return classify(err, "delete %d replayed notifications", len(ids))
		}
		jobs = append(jobs, j)
	}
	bw.End()
	for _, j := range jobs {
		if _, err := j.Results(); err != nil {
			return classify(err, "delete %d replayed notifications", len(ids))
		}
	}
	return nil
}
