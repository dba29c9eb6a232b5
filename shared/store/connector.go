package store

import (
	"context"
	"time"

	"cloud.google.com/go/firestore"
)

// ConnectorState records the connector's EventSub session and subscriptions in
// `connector/{name}` and its `subscriptions` subcollection, for operators and for the
// next instance.
type ConnectorState struct {
	client *firestore.Client
	doc    *firestore.DocumentRef
	holder string
	now    func() time.Time
}

// NewConnectorState writes to connector/{name} on behalf of holder (this instance).
func NewConnectorState(client *firestore.Client, name, holder string, now func() time.Time) *ConnectorState {
	if now == nil {
		now = time.Now
	}
	return &ConnectorState{client: client, doc: client.Collection(CollectionConnector).Doc(DocID(name)), holder: holder, now: now}
}

// SessionStarted records the current session.
func (s *ConnectorState) SessionStarted(ctx context.Context, sessionID string, connectedAt time.Time) error {
	_, err := s.doc.Set(ctx, map[string]any{
		"sessionId": sessionID, "connectedAt": connectedAt, "holder": s.holder, "updatedAt": s.now(),
	}, firestore.MergeAll)
	return classify(err, "record connector session")
}

// Subscription is one subscription's record.
type Subscription struct {
	Key       string            `firestore:"key"`
	ID        string            `firestore:"id"`
	Type      string            `firestore:"type"`
	Version   string            `firestore:"version"`
	Condition map[string]string `firestore:"condition"`
	SessionID string            `firestore:"sessionId"`
	Status    string            `firestore:"status"`
	Reason    string            `firestore:"reason"`
	UpdatedAt time.Time         `firestore:"updatedAt"`
}

// SaveSubscription records one subscription's status.
func (s *ConnectorState) SaveSubscription(ctx context.Context, sub Subscription) error {
	_, err := s.doc.Collection("subscriptions").Doc(DocID(sub.Key)).Set(ctx, sub)
	return classify(err, "record subscription %s", sub.Key)
}

// Subscriptions reads every recorded subscription.
func (s *ConnectorState) Subscriptions(ctx context.Context) ([]Subscription, error) {
	snaps, err := s.doc.Collection("subscriptions").Documents(ctx).GetAll()
	if err != nil {
		return nil, classify(err, "read subscriptions")
	}
	out := make([]Subscription, 0, len(snaps))
	for _, sn := range snaps {
		var sub Subscription
		if err := sn.DataTo(&sub); err != nil {
			return nil, classify(err, "decode subscription %s", sn.Ref.ID)
		}
		out = append(out, sub)
	}
	return out, nil
}
