package twitch

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/bitbrat/twitch-edge/shared/fault"
	"github.com/google/uuid"
)

// TokenSource supplies the access token for Helix calls.
type TokenSource interface {
	// Token returns a usable access token.
	Token(ctx context.Context) (string, error)
	// Refresh is called after Twitch rejected failed with a 401. It returns a token
	// that is not failed: a newer one someone else already obtained, or a refreshed
	// one. It fails when no refresh is possible.
	Refresh(ctx context.Context, failed string) (string, error)
}

// Role names a credential document: the bot account or the broadcaster.
type Role string

// The roles of CONTRACT.md (documents oauth/twitch/{role}/token).
const (
	RoleBot         Role = "bot"
	RoleBroadcaster Role = "broadcaster"
)

// Token is a stored user token (CONTRACT.md's document fields).
type Token struct {
	AccessToken  string
	RefreshToken string
	Scopes       []string
	// ExpiresIn is the lifetime in seconds from ObtainedAt; 0 when unknown.
	ExpiresIn  int
	ObtainedAt time.Time
	UserID     string
	// UpdatedAt is set by refreshes.
	UpdatedAt time.Time
}

// ExpiresAt is when the access token expires; zero when unknown.
func (t Token) ExpiresAt() time.Time {
	if t.ExpiresIn <= 0 || t.ObtainedAt.IsZero() {
		return time.Time{}
	}
	return t.ObtainedAt.Add(time.Duration(t.ExpiresIn) * time.Second)
}

// String describes the token without its secrets, so that printing one by mistake
// leaks nothing.
func (t Token) String() string {
	return fmt.Sprintf("twitch.Token{userId:%s scopes:%v expiresAt:%s}", t.UserID, t.Scopes, t.ExpiresAt().Format(time.RFC3339))
}

// GoString keeps %#v as safe as %v.
func (t Token) GoString() string { return t.String() }

// LogValue keeps slog from writing the secrets.
func (t Token) LogValue() slog.Value {
	return slog.GroupValue(slog.String("userId", t.UserID), slog.Any("scopes", t.Scopes), slog.Time("expiresAt", t.ExpiresAt()))
}

// Errors a TokenStore returns (possibly wrapped).
var (
	// ErrTokenNotFound: the credential document does not exist.
	ErrTokenNotFound = errors.New("twitch token document not found")
	// ErrLeaseLost: the refresh lease expired and another holder took it.
	ErrLeaseLost = errors.New("twitch token refresh lease lost")
)

// TokenStore keeps credential documents and arbitrates refreshes between processes:
// only the holder of a role's lease may refresh that role's token, because two
// concurrent refreshes with the same refresh token can invalidate each other.
type TokenStore interface {
	// LoadToken reads the role's token (ErrTokenNotFound when absent).
	LoadToken(ctx context.Context, role Role) (Token, error)
	// AcquireRefreshLease takes the role's refresh lease for ttl if it is free or
	// expired (or already held by holder); false when someone else holds it.
	AcquireRefreshLease(ctx context.Context, role Role, holder string, ttl time.Duration) (bool, error)
	// SaveRefreshedToken writes tok if holder still holds the lease, and releases it
	// (ErrLeaseLost otherwise, nothing written).
	SaveRefreshedToken(ctx context.Context, role Role, holder string, tok Token) error
	// ReleaseRefreshLease frees the lease if holder holds it.
	ReleaseRefreshLease(ctx context.Context, role Role, holder string) error
}

// ProviderOptions configure a Provider.
type ProviderOptions struct {
	// Store holds the token documents. Required.
	Store TokenStore
	// Role selects the document. Default RoleBot.
	Role Role
	// OAuth refreshes and validates; it must carry the client secret. Required.
	OAuth *OAuth
	// Logger receives refresh and validation outcomes (never token values).
	Logger *slog.Logger
	// Now is the clock. Default time.Now.
	Now func() time.Time
	// RefreshSkew: refresh proactively when the token expires within this. Default
	// 5 min. Twitch prefers reactive refreshes (on 401), which happen regardless.
	RefreshSkew time.Duration
	// ValidateEvery is how often the token is checked with /validate (Twitch requires
	// at start and hourly). Default 1 h; negative disables.
	ValidateEvery time.Duration
	// LeaseTTL bounds how long a refresh may hold the cross-process lease; a crashed
	// holder blocks others at most this long. Default 30 s.
	LeaseTTL time.Duration
	// PollInterval is how often a process waiting for another's refresh re-reads the
	// document. Default 250 ms.
	PollInterval time.Duration
	// Holder identifies this process in leases. Default: a random UUID.
	Holder string
	// OnRefresh, when set, is told each refresh's outcome: "ok" or the error's code
	// (for the token-refresh metric).
	OnRefresh func(ctx context.Context, outcome string)
}

// Provider is a TokenSource backed by a TokenStore. Within a process refreshes are
// single-flight (N concurrent 401s cause one refresh); across processes the store's
// lease ensures one refresh at a time and the others adopt its result.
type Provider struct {
	o   ProviderOptions
	log *slog.Logger

	mu          sync.Mutex
	cur         *Token
	validatedAt time.Time
	validating  bool
	flight      *refreshFlight
}

type refreshFlight struct {
	done chan struct{}
	tok  Token
	err  error
}

// NewProvider returns a Provider. It reads nothing until the first Token call.
func NewProvider(o ProviderOptions) (*Provider, error) {
	if o.Store == nil || o.OAuth == nil {
		return nil, errors.New("twitch token provider: Store and OAuth are required")
	}
	if o.Role == "" {
		o.Role = RoleBot
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.RefreshSkew == 0 {
		o.RefreshSkew = 5 * time.Minute
	}
	if o.ValidateEvery == 0 {
		o.ValidateEvery = time.Hour
	}
	if o.LeaseTTL <= 0 {
		o.LeaseTTL = 30 * time.Second
	}
	if o.PollInterval <= 0 {
		o.PollInterval = 250 * time.Millisecond
	}
	if o.Holder == "" {
		o.Holder = uuid.NewString()
	}
	return &Provider{o: o, log: o.Logger.With("tokenRole", string(o.Role))}, nil
}

// Token returns the current access token: loaded from the store on first use,
// refreshed when it is about to expire, validated with Twitch when validation is due.
func (p *Provider) Token(ctx context.Context) (string, error) {
	p.mu.Lock()
	cur := p.cur
	p.mu.Unlock()
	if cur == nil {
		t, err := p.o.Store.LoadToken(ctx, p.o.Role)
		if err != nil {
			return "", p.storeError(err)
		}
		p.mu.Lock()
		if p.cur == nil {
			p.cur = &t
		}
		cur = p.cur
		p.mu.Unlock()
	}
	tok := cur.AccessToken
	if p.expiring(*cur) {
		p.log.Info("twitch token near expiry; refreshing", "expiresAt", cur.ExpiresAt())
		fresh, err := p.Refresh(ctx, tok)
		switch {
		case err == nil:
			tok = fresh
		case p.o.Now().Before(cur.ExpiresAt()):
			// An early refresh failed but the token still works: use it, and try again
			// on the next call (or on a 401).
			p.log.Warn("twitch token refresh failed before expiry; using the current token", "error", err.Error())
		default:
			return "", err
		}
	}
	if p.validationDue() {
		return p.validate(ctx, tok)
	}
	return tok, nil
}

func (p *Provider) expiring(t Token) bool {
	exp := t.ExpiresAt()
	return !exp.IsZero() && !p.o.Now().Before(exp.Add(-p.o.RefreshSkew))
}

// validationDue claims the next validation, so that concurrent callers do not all
// validate at once.
func (p *Provider) validationDue() bool {
	if p.o.ValidateEvery < 0 {
		return false
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.validating || (!p.validatedAt.IsZero() && p.o.Now().Sub(p.validatedAt) < p.o.ValidateEvery) {
		return false
	}
	p.validating = true
	return true
}

// validate checks tok with Twitch. A 401 means the token is gone: refresh it. Any
// other failure is logged and tolerated: a flaky /validate must not stop delivery,
// and a bad token shows up as a 401 on the next Helix call anyway.
func (p *Provider) validate(ctx context.Context, tok string) (string, error) {
	v, err := p.o.OAuth.ValidateToken(ctx, tok)
	p.mu.Lock()
	p.validating = false
	if err == nil || fault.CodeOf(err, "") == CodeTokenInvalid {
		p.validatedAt = p.o.Now()
	}
	p.mu.Unlock()
	switch {
	case err == nil:
		if p.o.OAuth.clientID != "" && v.ClientID != p.o.OAuth.clientID {
			p.log.Error("twitch token belongs to another client id; Helix will reject it", "tokenClientId", v.ClientID)
		}
		p.log.Debug("twitch token validated", "userId", v.UserID, "expiresIn", v.ExpiresIn)
		return tok, nil
	case fault.CodeOf(err, "") == CodeTokenInvalid:
		p.log.Warn("twitch token failed validation; refreshing")
		return p.Refresh(ctx, tok)
	default:
		p.log.Warn("twitch token validation failed; carrying on", "error", err.Error())
		return tok, nil
	}
}

// Refresh implements TokenSource.
func (p *Provider) Refresh(ctx context.Context, failed string) (string, error) {
	p.mu.Lock()
	if p.cur != nil && failed != "" && p.cur.AccessToken != failed && !p.expiring(*p.cur) {
		tok := p.cur.AccessToken
		p.mu.Unlock()
		return tok, nil
	}
	if f := p.flight; f != nil {
		p.mu.Unlock()
		return p.wait(ctx, f)
	}
	f := &refreshFlight{done: make(chan struct{})}
	p.flight = f
	p.mu.Unlock()

	// The refresh serves every waiter, so one caller's cancellation must not abort
	// it; it is bounded by the lease instead.
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*p.o.LeaseTTL+5*time.Second)
	f.tok, f.err = p.refreshShared(rctx, failed)
	cancel()
	if p.o.OnRefresh != nil {
		outcome := "ok"
		if f.err != nil {
			outcome = fault.CodeOf(f.err, "UNKNOWN")
		}
		p.o.OnRefresh(ctx, outcome)
	}

	p.mu.Lock()
	p.flight = nil
	if f.err == nil {
		t := f.tok
		p.cur = &t
		p.validatedAt = p.o.Now()
	}
	p.mu.Unlock()
	close(f.done)
	return p.wait(ctx, f)
}

func (p *Provider) wait(ctx context.Context, f *refreshFlight) (string, error) {
	select {
	case <-f.done:
		if f.err != nil {
			return "", f.err
		}
		return f.tok.AccessToken, nil
	case <-ctx.Done():
		return "", fault.Wrap(fault.Transient, CodeTokenRefreshFailed, ctx.Err(), "waiting for token refresh")
	}
}

// refreshShared refreshes across processes: re-read the document (another process
// may have refreshed already), take the lease, re-read under it, refresh, persist.
// A process that loses the race for the lease polls until the winner's token appears.
func (p *Provider) refreshShared(ctx context.Context, failed string) (Token, error) {
	usable := func(t Token) bool { return t.AccessToken != "" && t.AccessToken != failed && !p.expiring(t) }
	for {
		stored, err := p.o.Store.LoadToken(ctx, p.o.Role)
		if err != nil {
			return Token{}, p.storeError(err)
		}
		if usable(stored) {
			p.log.Info("twitch token already refreshed elsewhere; adopting it")
			return stored, nil
		}
		ok, err := p.o.Store.AcquireRefreshLease(ctx, p.o.Role, p.o.Holder, p.o.LeaseTTL)
		if err != nil {
			return Token{}, p.storeError(err)
		}
		if !ok {
			if err := sleepCtx(ctx, p.o.PollInterval); err != nil {
				return Token{}, fault.Wrap(fault.Transient, CodeTokenRefreshFailed, err, "waiting for another process's token refresh")
			}
			continue
		}
		return p.refreshUnderLease(ctx, usable)
	}
}

func (p *Provider) refreshUnderLease(ctx context.Context, usable func(Token) bool) (Token, error) {
	release := func() {
		// Best effort: an unreleased lease only delays others until it expires.
		if err := p.o.Store.ReleaseRefreshLease(context.WithoutCancel(ctx), p.o.Role, p.o.Holder); err != nil {
			p.log.Warn("release twitch token refresh lease", "error", err.Error())
		}
	}
	stored, err := p.o.Store.LoadToken(ctx, p.o.Role)
	if err != nil {
		release()
		return Token{}, p.storeError(err)
	}
	if usable(stored) {
		release()
		return stored, nil
	}
	if stored.RefreshToken == "" {
		release()
		return Token{}, fault.New(fault.Auth, CodeTokenNotRefreshable, "twitch %s token has no refresh token; re-authorize the account", p.o.Role)
	}
	resp, err := p.o.OAuth.RefreshToken(ctx, stored.RefreshToken)
	if err != nil {
		release()
		p.log.Error("twitch token refresh failed", "code", fault.CodeOf(err, ""), "kind", fault.KindOf(err).String())
		return Token{}, wrapf(err, "refresh twitch %s token", p.o.Role)
	}
	now := p.o.Now()
	nt := Token{
		AccessToken:  resp.AccessToken,
		RefreshToken: resp.RefreshToken,
		Scopes:       resp.Scope,
		ExpiresIn:    resp.ExpiresIn,
		ObtainedAt:   now,
		UserID:       stored.UserID,
		UpdatedAt:    now,
	}
	if nt.RefreshToken == "" {
		nt.RefreshToken = stored.RefreshToken
	}
	if nt.Scopes == nil {
		nt.Scopes = stored.Scopes
	}
	if err := p.o.Store.SaveRefreshedToken(ctx, p.o.Role, p.o.Holder, nt); err != nil {
		// Twitch issued the token, so it works here; but if the refresh token rotated
		// and was not stored, the next process to refresh will be told it is invalid.
		// That is worth an error line, not a failed call.
		p.log.Error("twitch token refreshed but not stored; other processes keep the old one", "error", err.Error())
		release()
		return nt, nil
	}
	p.log.Info("twitch token refreshed", "expiresAt", nt.ExpiresAt(), "refreshTokenRotated", nt.RefreshToken != stored.RefreshToken)
	return nt, nil
}

func (p *Provider) storeError(err error) error {
	if errors.Is(err, ErrTokenNotFound) {
		return fault.Wrap(fault.Auth, CodeNoToken, err, "twitch %s token", p.o.Role)
	}
	if fault.KindOf(err) != fault.Unknown {
		return err
	}
	return fault.Wrap(fault.Transient, "TOKEN_STORE_UNAVAILABLE", err, "twitch %s token store", p.o.Role)
}

// StaticTokenSource serves one fixed token (TWITCH_BOT_ACCESS_TOKEN, for quick local
// runs). It is validated when built and cannot be refreshed.
type StaticTokenSource struct {
	token string
	v     *Validation
}

// NewStaticTokenSource validates token with v and returns a source for it.
func NewStaticTokenSource(ctx context.Context, v TokenValidator, token string) (*StaticTokenSource, error) {
	if token == "" {
		return nil, fault.New(fault.Auth, CodeNoToken, "static twitch token is empty")
	}
	val, err := v.ValidateToken(ctx, token)
	if err != nil {
		return nil, wrapf(err, "validate static twitch token")
	}
	return &StaticTokenSource{token: token, v: val}, nil
}

// Token implements TokenSource.
func (s *StaticTokenSource) Token(context.Context) (string, error) { return s.token, nil }

// Refresh implements TokenSource: a static token cannot be refreshed.
func (s *StaticTokenSource) Refresh(context.Context, string) (string, error) {
	return "", fault.New(fault.Auth, CodeTokenNotRefreshable, "static twitch token was rejected and cannot be refreshed; supply a new one")
}

// Validation is what Twitch said about the token at start (user id, scopes).
func (s *StaticTokenSource) Validation() *Validation { return s.v }
