package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"cloud.google.com/go/firestore"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/bitbrat/twitch-edge/shared/twitch"
)

// The app access token is ours, not upstream's (CONTRACT.md's token documents are user
// tokens): it lives beside them at oauth/twitch/app/token, with its issue lease at
// oauth/twitch/app/issueLease.
const (
	appTokenRole    = "app"
	appTokenDocID   = "token"
	appTokenLeaseID = "issueLease"
)

// AppTokenStore is the Firestore implementation of twitch.AppTokenStore, with the
// lease discipline of TokenStore: the lease is a transaction on its own document, and
// the token write and the lease release are one transaction, so an instance whose
// lease expired cannot overwrite the token of the one that took over.
type AppTokenStore struct {
	c   *firestore.Client
	now func() time.Time
}

var _ twitch.AppTokenStore = (*AppTokenStore)(nil)

// NewAppTokenStore returns an AppTokenStore on client.
func NewAppTokenStore(client *firestore.Client) *AppTokenStore {
	return &AppTokenStore{c: client, now: time.Now}
}

func (s *AppTokenStore) doc(id string) *firestore.DocumentRef {
	return s.c.Collection(tokenCollection).Doc(tokenProvider).Collection(appTokenRole).Doc(id)
}

// LoadAppToken implements twitch.AppTokenStore.
func (s *AppTokenStore) LoadAppToken(ctx context.Context) (twitch.AppToken, error) {
	ref := s.doc(appTokenDocID)
	snap, err := ref.Get(ctx)
	if status.Code(err) == codes.NotFound {
		return twitch.AppToken{}, fmt.Errorf("%s: %w", ref.Path, twitch.ErrTokenNotFound)
	}
	if err != nil {
		return twitch.AppToken{}, classify(err, "load twitch app token")
	}
	d := snap.Data()
	t := twitch.AppToken{}
	t.AccessToken, _ = d[tokenFieldAccess].(string)
	t.ClientID, _ = d["clientId"].(string)
	t.ObtainedAt = tokenTime(d[tokenFieldObtainedAt])
	t.ExpiresAt = tokenTime(d["expiresAt"])
	if t.AccessToken == "" {
		return twitch.AppToken{}, fmt.Errorf("twitch app token document has no %s: %w", tokenFieldAccess, twitch.ErrTokenNotFound)
	}
	return t, nil
}

// AcquireAppTokenLease implements twitch.AppTokenStore.
func (s *AppTokenStore) AcquireAppTokenLease(ctx context.Context, holder string, ttl time.Duration) (bool, error) {
	acquired, err := acquireDocLease(ctx, s.c, s.doc(appTokenLeaseID), holder, ttl, s.now)
	if err != nil {
		return false, classify(err, "acquire twitch app token lease")
	}
	return acquired, nil
}

// SaveAppToken implements twitch.AppTokenStore.
func (s *AppTokenStore) SaveAppToken(ctx context.Context, holder string, tok twitch.AppToken) error {
	lease, ref := s.doc(appTokenLeaseID), s.doc(appTokenDocID)
	errLost := twitch.ErrLeaseLost
	err := s.c.RunTransaction(ctx, func(ctx context.Context, tx *firestore.Transaction) error {
		snap, err := tx.Get(lease)
		if status.Code(err) == codes.NotFound {
			return errLost
		}
		if err != nil {
			return err
		}
		if h, _ := snap.Data()["holder"].(string); h != holder {
			return errLost
		}
		d := map[string]any{
			tokenFieldAccess:     tok.AccessToken,
			"clientId":           tok.ClientID,
			tokenFieldObtainedAt: tok.ObtainedAt.UnixMilli(),
			"expiresAt":          int64(0),
			tokenFieldUpdatedAt:  s.now().UnixMilli(),
		}
		if !tok.ExpiresAt.IsZero() {
			d["expiresAt"] = tok.ExpiresAt.UnixMilli()
		}
		if err := tx.Set(ref, d); err != nil {
			return err
		}
		return tx.Delete(lease)
	})
	if errors.Is(err, errLost) {
		return fmt.Errorf("save twitch app token: %w", twitch.ErrLeaseLost)
	}
	if err != nil {
		return classify(err, "save twitch app token")
	}
	return nil
}

// ReleaseAppTokenLease implements twitch.AppTokenStore.
func (s *AppTokenStore) ReleaseAppTokenLease(ctx context.Context, holder string) error {
	return classify(releaseDocLease(ctx, s.c, s.doc(appTokenLeaseID), holder), "release twitch app token lease")
}
