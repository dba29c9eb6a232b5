package store

import (
	"context"
	"time"

	"cloud.google.com/go/firestore"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Handoff is the connector's make-before-break hand-off record,
// `connector/{name}-handoff`: the lease holder, told to stop, asks for a successor
// (Request); a standby that sees it opens its own EventSub session, subscribes, and
// says so (Ready); the holder lets go only then. The lease itself stays exclusive:
// the record only shortens the time without a subscribed socket to zero.
type Handoff struct {
	client *firestore.Client
	doc    *firestore.DocumentRef
	now    func() time.Time
}

// NewHandoff keeps the record of the connector named name. now may be nil.
func NewHandoff(client *firestore.Client, name string, now func() time.Time) *Handoff {
	if now == nil {
		now = time.Now
	}
	return &Handoff{client: client, doc: client.Collection(CollectionConnector).Doc(DocID(name + "-handoff")), now: now}
}

// HandoffState is the record as read.
type HandoffState struct {
	RequestedBy string    `firestore:"requestedBy"`
	RequestedAt time.Time `firestore:"requestedAt"`
	// AckBy: a standby has seen the request and is opening its session.
	AckBy        string    `firestore:"ackBy"`
	ReadyBy      string    `firestore:"readyBy"`
	ReadySession string    `firestore:"readySession"`
	ReadyAt      time.Time `firestore:"readyAt"`
}

// ReadyFor reports whether a successor other than by is ready for by's request made
// at requestedAt.
func (s HandoffState) ReadyFor(by string, requestedAt time.Time) bool {
	return s.RequestedBy == by && s.RequestedAt.Equal(requestedAt) && s.ReadyBy != "" && s.ReadyBy != by
}

// AckedFor reports whether a standby other than by has seen by's request made at
// requestedAt.
func (s HandoffState) AckedFor(by string, requestedAt time.Time) bool {
	return s.RequestedBy == by && s.RequestedAt.Equal(requestedAt) && s.AckBy != "" && s.AckBy != by
}

// Request records that by wants to hand its session over, replacing any earlier
// request; it returns the request's time, which identifies it.
func (h *Handoff) Request(ctx context.Context, by string) (time.Time, error) {
	at := h.now().UTC().Truncate(time.Microsecond) // Firestore keeps microseconds
	_, err := h.doc.Set(ctx, HandoffState{RequestedBy: by, RequestedAt: at})
	return at, classify(err, "record hand-off request")
}

// Ack records that by has seen the request made at requestedAt and is opening its
// session; a record that names another request by now is left alone.
func (h *Handoff) Ack(ctx context.Context, requestedAt time.Time, by string) error {
	return h.answer(ctx, requestedAt, "record hand-off acknowledgement", func(st *HandoffState) { st.AckBy = by })
}

// Ready records that by holds a subscribed session for the request made at
// requestedAt.
func (h *Handoff) Ready(ctx context.Context, requestedAt time.Time, by, sessionID string) error {
	return h.answer(ctx, requestedAt, "record hand-off readiness", func(st *HandoffState) {
		st.ReadyBy, st.ReadySession, st.ReadyAt = by, sessionID, h.now().UTC()
		if st.AckBy == "" {
			st.AckBy = by
		}
	})
}

func (h *Handoff) answer(ctx context.Context, requestedAt time.Time, what string, set func(*HandoffState)) error {
	err := h.client.RunTransaction(ctx, func(ctx context.Context, tx *firestore.Transaction) error {
		snap, err := tx.Get(h.doc)
		if err != nil {
			return err
		}
		st, err := decodeHandoff(snap)
		if err != nil || !st.RequestedAt.Equal(requestedAt) {
			return err
		}
		set(&st)
		return tx.Set(h.doc, st)
	})
	return classify(err, "%s", what)
}

// Withdraw ends by's request made at requestedAt (the hand-off is over, with or
// without a successor), so that a standby starting later does not answer it.
func (h *Handoff) Withdraw(ctx context.Context, by string, requestedAt time.Time) error {
	return h.answer(ctx, requestedAt, "withdraw hand-off request", func(st *HandoffState) {
		if st.RequestedBy == by {
			*st = HandoffState{}
		}
	})
}

// Get reads the record (zero when there is none).
func (h *Handoff) Get(ctx context.Context) (HandoffState, error) {
	snap, err := h.doc.Get(ctx)
	if status.Code(err) == codes.NotFound {
		return HandoffState{}, nil
	}
	if err != nil {
		return HandoffState{}, classify(err, "read hand-off record")
	}
	return decodeHandoff(snap)
}

// Watch calls fn with the record now and on every change until ctx ends or the
// listener fails (the error is returned; the caller retries).
func (h *Handoff) Watch(ctx context.Context, fn func(HandoffState)) error {
	it := h.doc.Snapshots(ctx)
	defer it.Stop()
	for {
		snap, err := it.Next()
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return classify(err, "watch hand-off record")
		}
		if !snap.Exists() {
			fn(HandoffState{})
			continue
		}
		st, err := decodeHandoff(snap)
		if err != nil {
			return err
		}
		fn(st)
	}
}

func decodeHandoff(snap *firestore.DocumentSnapshot) (HandoffState, error) {
	var st HandoffState
	if err := snap.DataTo(&st); err != nil {
		return HandoffState{}, classify(err, "decode hand-off record")
	}
	return st, nil
}
