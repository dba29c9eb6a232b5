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

// AppToken is an app access token (client-credentials grant): the credential of
// conduits and of conduit and webhook subscriptions. It has no refresh token; a new
// one is issued when it nears expiry or Twitch rejects it.
type AppToken struct {
	AccessToken string
	// ClientID is the app the token was issued to; a stored token of another client
	// id is never used.
	ClientID   string
	ObtainedAt time.Time
	ExpiresAt  time.Time
}

// String describes the token without its secret.
func (t AppToken) String() string {
	return fmt.Sprintf("twitch.AppToken{clientId:%s expiresAt:%s}", t.ClientID, t.ExpiresAt.Format(time.RFC3339))
}

// GoString keeps %#v as safe as %v.
func (t AppToken) GoString() string { return t.String() }

// LogValue keeps slog from writing the secret.
func (t AppToken) LogValue() slog.Value {
	return slog.GroupValue(slog.String("clientId", t.ClientID), slog.Time("expiresAt", t.ExpiresAt))
}

// AppTokenStore shares the app token between every instance and arbitrates who
// issues the next one: only the lease holder asks Twitch, the others adopt its
// result, so N instances starting at once cost one client-credentials grant.
type AppTokenStore interface {
	// LoadAppToken reads the stored token (ErrTokenNotFound when there is none).
	LoadAppToken(ctx context.Context) (AppToken, error)
	// AcquireAppTokenLease takes the issue lease for ttl if it is free, expired or
	// already held by holder; false when someone else holds it.
	AcquireAppTokenLease(ctx context.Context, holder string, ttl time.Duration) (bool, error)
	// SaveAppToken writes tok if holder still holds the lease and releases it
	// (ErrLeaseLost otherwise, nothing written).
	SaveAppToken(ctx context.Context, holder string, tok AppToken) error
	// ReleaseAppTokenLease frees the lease if holder holds it.
	ReleaseAppTokenLease(ctx context.Context, holder string) error
}

// AppTokenProviderOptions configure an AppTokenProvider.
type AppTokenProviderOptions struct {
	// Store shares the token across instances. Required.
	Store AppTokenStore
	// OAuth issues tokens; it must carry the client id and secret. Required.
	OAuth *OAuth
	// Logger receives issue outcomes (never the token). Default: discard.
	Logger *slog.Logger
	// Now is the clock. Default time.Now.
	Now func() time.Time
	// RenewBefore: a new token is issued when the current one expires within this.
	// Default 1 h (Twitch's app tokens live about 60 days).
	RenewBefore time.Duration
	// LeaseTTL bounds how long an issue may hold the cross-instance lease; a crashed
	// holder blocks the others at most this long. Default 30 s.
	LeaseTTL time.Duration
	// PollInterval is how often an instance waiting for another's issue re-reads the
	// store. Default 250 ms.
	PollInterval time.Duration
	// Holder identifies this instance in leases. Default: a random UUID.
	Holder string
}

// AppTokenProvider is a TokenSource of app access tokens, obtained on first use,
// cached in the store for every instance and reissued before expiry or after a 401.
// Issues are single-flight within the process (one in flight, everyone waits for it)
// and across processes (the store's lease).
type AppTokenProvider struct {
	o   AppTokenProviderOptions
	log *slog.Logger

	mu     sync.Mutex
	cur    *AppToken
	flight *appFlight
}

type appFlight struct {
	done chan struct{}
	tok  AppToken
	err  error
}

// NewAppTokenProvider returns a provider. It reads nothing until the first Token call.
func NewAppTokenProvider(o AppTokenProviderOptions) (*AppTokenProvider, error) {
	if o.Store == nil || o.OAuth == nil {
		return nil, errors.New("twitch app token provider: Store and OAuth are required")
	}
	if o.OAuth.clientID == "" || o.OAuth.secret == "" {
		return nil, errors.New("twitch app token provider: OAuth needs the client id and secret")
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.RenewBefore <= 0 {
		o.RenewBefore = time.Hour
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
	return &AppTokenProvider{o: o, log: o.Logger.With("token", "app")}, nil
}

// usable reports whether t may be used instead of failed (the token Twitch just
// rejected, or "").
func (p *AppTokenProvider) usable(t AppToken, failed string) bool {
	return t.AccessToken != "" && t.AccessToken != failed && t.ClientID == p.o.OAuth.clientID &&
		(t.ExpiresAt.IsZero() || p.o.Now().Before(t.ExpiresAt.Add(-p.o.RenewBefore)))
}

// Token implements TokenSource.
func (p *AppTokenProvider) Token(ctx context.Context) (string, error) {
	p.mu.Lock()
	cur := p.cur
	p.mu.Unlock()
	if cur != nil && p.usable(*cur, "") {
		return cur.AccessToken, nil
	}
	return p.reissue(ctx, "")
}

// Refresh implements TokenSource: Twitch rejected failed, so a token other than it
// is needed — one another instance already stored, or a new one.
func (p *AppTokenProvider) Refresh(ctx context.Context, failed string) (string, error) {
	p.mu.Lock()
	cur := p.cur
	p.mu.Unlock()
	if cur != nil && p.usable(*cur, failed) {
		return cur.AccessToken, nil
	}
	return p.reissue(ctx, failed)
}

func (p *AppTokenProvider) reissue(ctx context.Context, failed string) (string, error) {
	p.mu.Lock()
	if f := p.flight; f != nil {
		p.mu.Unlock()
		return p.wait(ctx, f)
	}
	f := &appFlight{done: make(chan struct{})}
	p.flight = f
	p.mu.Unlock()

	// The issue serves every waiter, so one caller's cancellation must not abort it;
	// it is bounded by the lease instead.
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*p.o.LeaseTTL+5*time.Second)
	f.tok, f.err = p.obtainShared(rctx, failed)
	cancel()

	p.mu.Lock()
	p.flight = nil
	if f.err == nil {
		t := f.tok
		p.cur = &t
	}
	p.mu.Unlock()
	close(f.done)
	return p.wait(ctx, f)
}

func (p *AppTokenProvider) wait(ctx context.Context, f *appFlight) (string, error) {
	select {
	case <-f.done:
		if f.err != nil {
			return "", f.err
		}
		return f.tok.AccessToken, nil
	case <-ctx.Done():
		return "", fault.Wrap(fault.Transient, CodeTokenRefreshFailed, ctx.Err(), "waiting for the twitch app token")
	}
}

// obtainShared adopts a usable stored token, or takes the lease and issues one; an
// instance that loses the race for the lease polls until the winner's token appears.
func (p *AppTokenProvider) obtainShared(ctx context.Context, failed string) (AppToken, error) {
	waited := false
	for {
		stored, err := p.o.Store.LoadAppToken(ctx)
		if err != nil && !errors.Is(err, ErrTokenNotFound) {
			return AppToken{}, appStoreError(err)
		}
		if err == nil && p.usable(stored, failed) {
			p.log.Debug("twitch app token loaded from the store", "expiresAt", stored.ExpiresAt)
			return stored, nil
		}
		ok, err := p.o.Store.AcquireAppTokenLease(ctx, p.o.Holder, p.o.LeaseTTL)
		if err != nil {
			return AppToken{}, appStoreError(err)
		}
		if ok {
			return p.issueUnderLease(ctx, failed)
		}
		if !waited {
			p.log.Info("waiting for another instance to issue the twitch app token", "pollInterval", p.o.PollInterval.String())
			waited = true
		}
		if err := sleepCtx(ctx, p.o.PollInterval); err != nil {
			return AppToken{}, fault.Wrap(fault.Transient, CodeTokenRefreshFailed, err, "waiting for another instance's twitch app token")
		}
	}
}

func (p *AppTokenProvider) issueUnderLease(ctx context.Context, failed string) (AppToken, error) {
	release := func() {
		// Best effort: an unreleased lease only delays others until it expires.
		if err := p.o.Store.ReleaseAppTokenLease(context.WithoutCancel(ctx), p.o.Holder); err != nil {
			p.log.Warn("release twitch app token lease", "error", err.Error())
		}
	}
	stored, err := p.o.Store.LoadAppToken(ctx)
	if err == nil && p.usable(stored, failed) {
		release()
		return stored, nil
	}
	if err != nil && !errors.Is(err, ErrTokenNotFound) {
		release()
		return AppToken{}, appStoreError(err)
	}
	resp, err := p.o.OAuth.AppToken(ctx)
	if err != nil {
		release()
		p.log.Error("twitch app token request failed", "code", fault.CodeOf(err, ""), "kind", fault.KindOf(err).String())
		if fault.KindOf(err) == fault.Auth {
			// A rejected client-credentials grant is a configuration error (wrong
			// client id or secret), not a token to re-authorize.
			return AppToken{}, fault.Wrap(fault.Auth, CodeClientCredentials, err, "issue twitch app token")
		}
		return AppToken{}, wrapf(err, "issue twitch app token")
	}
	now := p.o.Now()
	nt := AppToken{AccessToken: resp.AccessToken, ClientID: p.o.OAuth.clientID, ObtainedAt: now}
	if resp.ExpiresIn > 0 {
		nt.ExpiresAt = now.Add(time.Duration(resp.ExpiresIn) * time.Second)
	}
	if err := p.o.Store.SaveAppToken(ctx, p.o.Holder, nt); err != nil {
		// Twitch issued it, so it works here; other instances issue their own.
		p.log.Error("twitch app token issued but not stored; other instances will issue their own", "error", err.Error())
		release()
		return nt, nil
	}
	p.log.Info("twitch app token issued", "expiresAt", nt.ExpiresAt)
	return nt, nil
}

func appStoreError(err error) error {
	if fault.KindOf(err) != fault.Unknown {
		return err
	}
	return fault.Wrap(fault.Transient, "TOKEN_STORE_UNAVAILABLE", err, "twitch app token store")
}
