package store

import (
	"context"
	"time"

	"cloud.google.com/go/firestore"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// CollectionSeenUsers holds one document per Twitch user id seen on
// internal.ingress.v1 (a follower, a chatter): when it was last seen. EgressWhisper
// may refuse to whisper users not seen recently, so that a publisher on the egress
// topics cannot make the bot whisper arbitrary users.
const CollectionSeenUsers = "seenUsers"

// SeenUsers records and answers "was this user seen since then".
type SeenUsers struct {
	client    *firestore.Client
	retention time.Duration
}

// NewSeenUsers returns the record on client; documents carry expireAt = last seen +
// retention.
func NewSeenUsers(client *firestore.Client, retention time.Duration) *SeenUsers {
	return &SeenUsers{client: client, retention: retention}
}

type seenDoc struct {
	LastSeen time.Time `firestore:"lastSeen"`
	ExpireAt time.Time `firestore:"expireAt"`
}

// Mark records userID as seen at at.
func (s *SeenUsers) Mark(ctx context.Context, userID string, at time.Time) error {
	_, err := s.client.Collection(CollectionSeenUsers).Doc(DocID(userID)).Set(ctx, seenDoc{LastSeen: at, ExpireAt: at.Add(s.retention)})
	return classify(err, "mark user %s seen", userID)
}

// SeenSince reports whether userID was seen at or after since.
func (s *SeenUsers) SeenSince(ctx context.Context, userID string, since time.Time) (bool, error) {
	snap, err := s.client.Collection(CollectionSeenUsers).Doc(DocID(userID)).Get(ctx)
	if status.Code(err) == codes.NotFound {
		return false, nil
	}
	if err != nil {
		return false, classify(err, "read seen user %s", userID)
	}
	var d seenDoc
	if err := snap.DataTo(&d); err != nil {
		return false, classify(err, "decode seen user %s", userID)
	}
	return !d.LastSeen.Before(since), nil
}
