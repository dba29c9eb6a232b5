package store

import (
	"context"
	"errors"
	"fmt"
	"math"
	"time"

	"cloud.google.com/go/firestore"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/bitbrat/twitch-edge/shared/twitch"
)

// Token documents live at oauth/twitch/{role}/token (CONTRACT.md), written first by
// upstream's OAuth flow. The refresh lease is a sibling document,
// oauth/twitch/{role}/refreshLease, so the token document keeps exactly the contract's
// fields.
const (
	tokenCollection = "oauth"
	tokenProvider   = "twitch"
	tokenDocID      = "token"
	tokenLeaseDocID = "refreshLease"
)

// Field names of the token document (CONTRACT.md, exact casing).
const (
	tokenFieldAccess     = "accessToken"
	tokenFieldRefresh    = "refreshToken"
	tokenFieldScope      = "scope"
	tokenFieldExpiresIn  = "expiresIn"
	tokenFieldObtainedAt = "obtainmentTimestamp"
	tokenFieldUserID     = "userId"
	tokenFieldUpdatedAt  = "updatedAt"
)

// TokenStore is the Firestore implementation of twitch.TokenStore. Leases are
// transactions on the lease document, so two instances never refresh the same token
// at once; the token write and the lease release happen in one transaction, so a
// process that lost its lease (it took longer than the TTL) cannot overwrite the
// newer token of the process that took over.
type TokenStore struct {
	c   *firestore.Client
	now func() time.Time
}

var _ twitch.TokenStore = (*TokenStore)(nil)

// NewTokenStore returns a TokenStore on client.
func NewTokenStore(client *firestore.Client) *TokenStore {
	return &TokenStore{c: client, now: time.Now}
}

func (s *TokenStore) tokenRef(role twitch.Role) *firestore.DocumentRef {
	return s.c.Collection(tokenCollection).Doc(tokenProvider).Collection(string(role)).Doc(tokenDocID)
}

func (s *TokenStore) leaseRef(role twitch.Role) *firestore.DocumentRef {
	return s.c.Collection(tokenCollection).Doc(tokenProvider).Collection(string(role)).Doc(tokenLeaseDocID)
}

// LoadToken implements twitch.TokenStore.
func (s *TokenStore) LoadToken(ctx context.Context, role twitch.Role) (twitch.Token, error) {
	snap, err := s.tokenRef(role).Get(ctx)
	if status.Code(err) == codes.NotFound {
		return twitch.Token{}, fmt.Errorf("%s: %w", s.tokenRef(role).Path, twitch.ErrTokenNotFound)
	}
	if err != nil {
		return twitch.Token{}, classify(err, "load twitch %s token", role)
	}
	return tokenFromData(snap.Data())
}

// tokenFromData reads the document leniently: upstream writes numbers from
// JavaScript, which the Firestore SDK stores as integers or doubles depending on the
// value, and expiresIn may be null for a token that does not expire.
func tokenFromData(d map[string]any) (twitch.Token, error) {
	t := twitch.Token{}
	t.AccessToken, _ = d[tokenFieldAccess].(string)
	t.RefreshToken, _ = d[tokenFieldRefresh].(string)
	t.UserID, _ = d[tokenFieldUserID].(string)
	switch sc := d[tokenFieldScope].(type) {
	case []any:
		for _, v := range sc {
			if s, ok := v.(string); ok {
				t.Scopes = append(t.Scopes, s)
			}
		}
	case string:
		t.Scopes = []string{sc}
	}
	if n, ok := tokenNumber(d[tokenFieldExpiresIn]); ok {
		t.ExpiresIn = int(n)
	}
	t.ObtainedAt = tokenTime(d[tokenFieldObtainedAt])
	t.UpdatedAt = tokenTime(d[tokenFieldUpdatedAt])
	if t.AccessToken == "" {
		return twitch.Token{}, fmt.Errorf("twitch token document has no %s: %w", tokenFieldAccess, twitch.ErrTokenNotFound)
	}
	return t, nil
}

func tokenNumber(v any) (float64, bool) {
	switch n := v.(type) {
	case int64:
		return float64(n), true
	case float64:
		if math.IsNaN(n) || math.IsInf(n, 0) {
			return 0, false
		}
		return n, true
	}
	return 0, false
}

// tokenTime reads epoch milliseconds (the contract), tolerating a Firestore timestamp.
func tokenTime(v any) time.Time {
	if t, ok := v.(time.Time); ok {
		return t
	}
	if ms, ok := tokenNumber(v); ok && ms > 0 {
		return time.UnixMilli(int64(ms))
	}
	return time.Time{}
}

// AcquireRefreshLease implements twitch.TokenStore.
func (s *TokenStore) AcquireRefreshLease(ctx context.Context, role twitch.Role, holder string, ttl time.Duration) (bool, error) {
	acquired, err := acquireDocLease(ctx, s.c, s.leaseRef(role), holder, ttl, s.now)
	if err != nil {
		return false, classify(err, "acquire twitch %s token refresh lease", role)
	}
	return acquired, nil
}

// SaveRefreshedToken implements twitch.TokenStore.
func (s *TokenStore) SaveRefreshedToken(ctx context.Context, role twitch.Role, holder string, tok twitch.Token) error {
	lease, ref := s.leaseRef(role), s.tokenRef(role)
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
		scopes := tok.Scopes
		if scopes == nil {
			scopes = []string{}
		}
		updated := tok.UpdatedAt
		if updated.IsZero() {
			updated = s.now()
		}
		// Merge, so fields upstream's OAuth flow may add survive our refresh.
		if err := tx.Set(ref, map[string]any{
			tokenFieldAccess:     tok.AccessToken,
			tokenFieldRefresh:    tok.RefreshToken,
			tokenFieldScope:      scopes,
			tokenFieldExpiresIn:  int64(tok.ExpiresIn),
			tokenFieldObtainedAt: tok.ObtainedAt.UnixMilli(),
			tokenFieldUserID:     tok.UserID,
			tokenFieldUpdatedAt:  updated.UnixMilli(),
		}, firestore.MergeAll); err != nil {
			return err
		}
		return tx.Delete(lease)
	})
	if errors.Is(err, errLost) {
		return fmt.Errorf("save twitch %s token: %w", role, twitch.ErrLeaseLost)
	}
	if err != nil {
		return classify(err, "save twitch %s token", role)
	}
	return nil
}

// ReleaseRefreshLease implements twitch.TokenStore.
func (s *TokenStore) ReleaseRefreshLease(ctx context.Context, role twitch.Role, holder string) error {
	return classify(releaseDocLease(ctx, s.c, s.leaseRef(role), holder), "release twitch %s token refresh lease", role)
}
