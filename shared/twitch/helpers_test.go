package twitch

import (
	"context"
	"log/slog"
	"net/http"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/bitbrat/twitch-edge/shared/fault"
	"github.com/bitbrat/twitch-edge/shared/logging"
	"github.com/bitbrat/twitch-edge/shared/logging/logtest"
	"github.com/bitbrat/twitch-edge/shared/twitch/twitchtest"
)

// Fixed identities registered in every fixture.
const (
	broadcasterID = "1001"
	botID         = "2002"
	viewerID      = "3003"
	botAccess     = "bot-access-initial-7c1f"
	botRefresh    = "bot-refresh-initial-9e2a"
)

var botScopes = []string{"moderator:read:followers", "user:manage:whispers", "user:write:chat"}

// memStore is an in-memory TokenStore with the same lease rules as the Firestore one.
type memStore struct {
	mu         sync.Mutex
	tok        Token
	has        bool
	leaseOwner string
	leaseUntil time.Time
	saves      int
}

func (m *memStore) LoadToken(_ context.Context, _ Role) (Token, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if !m.has {
		return Token{}, ErrTokenNotFound
	}
	return m.tok, nil
}

func (m *memStore) AcquireRefreshLease(_ context.Context, _ Role, holder string, ttl time.Duration) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.leaseOwner != "" && m.leaseOwner != holder && time.Now().Before(m.leaseUntil) {
		return false, nil
	}
	m.leaseOwner, m.leaseUntil = holder, time.Now().Add(ttl)
	return true, nil
}

func (m *memStore) SaveRefreshedToken(_ context.Context, _ Role, holder string, tok Token) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.leaseOwner != holder {
		return ErrLeaseLost
	}
	m.tok, m.has, m.leaseOwner = tok, true, ""
	m.saves++
	return nil
}

func (m *memStore) ReleaseRefreshLease(_ context.Context, _ Role, holder string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.leaseOwner == holder {
		m.leaseOwner = ""
	}
	return nil
}

type fixture struct {
	fake     *twitchtest.Server
	store    *memStore
	oauth    *OAuth
	provider *Provider
	client   *Client
	logs     *logtest.Buffer
	logger   *slog.Logger
	// sleeps records the rate-limit waits the client asked for (they are not spent).
	sleepMu sync.Mutex
	sleeps  []time.Duration
}

func (f *fixture) slept() []time.Duration {
	f.sleepMu.Lock()
	defer f.sleepMu.Unlock()
	return append([]time.Duration(nil), f.sleeps...)
}

func newFixture(t *testing.T, fo twitchtest.Options) *fixture {
	t.Helper()
	fake, err := twitchtest.New(fo)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(fake.Close)
	fake.AddUser(twitchtest.User{ID: broadcasterID, Login: "brat", DisplayName: "Brat"})
	fake.AddUser(twitchtest.User{ID: botID, Login: "bratbot", DisplayName: "BratBot"})
	fake.AddUser(twitchtest.User{ID: viewerID, Login: "viewer", DisplayName: "Viewer"})
	fake.AddModerator(broadcasterID, botID)
	fake.AddToken(twitchtest.Token{AccessToken: botAccess, RefreshToken: botRefresh, UserID: botID, Scopes: botScopes})

	f := &fixture{fake: fake, logs: &logtest.Buffer{}}
	f.logger = logging.New(f.logs, slog.LevelDebug, "twitch-test")
	httpc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{}}
	t.Cleanup(httpc.CloseIdleConnections)
	f.store = &memStore{tok: Token{AccessToken: botAccess, RefreshToken: botRefresh, Scopes: botScopes,
		ExpiresIn: 14400, ObtainedAt: time.Now(), UserID: botID}, has: true}
	f.oauth = NewOAuth(OAuthOptions{BaseURL: fake.AuthBaseURL(), ClientID: fake.ClientID(),
		ClientSecret: fake.ClientSecret(), HTTPClient: httpc, Logger: f.logger})
	f.provider, err = NewProvider(ProviderOptions{Store: f.store, OAuth: f.oauth, Logger: f.logger,
		PollInterval: 5 * time.Millisecond, Holder: "test-process"})
	if err != nil {
		t.Fatal(err)
	}
	f.client = NewClient(Options{APIBaseURL: fake.APIBaseURL(), AuthBaseURL: fake.AuthBaseURL(),
		ClientID: fake.ClientID(), HTTPClient: httpc, Tokens: f.provider, Logger: f.logger})
	f.client.sleep = func(ctx context.Context, d time.Duration) error {
		f.sleepMu.Lock()
		f.sleeps = append(f.sleeps, d)
		f.sleepMu.Unlock()
		return ctx.Err()
	}
	return f
}

// checkErr asserts err's classification; want "" means success.
func checkErr(t *testing.T, err error, kind fault.Kind, code string) {
	t.Helper()
	if code == "" {
		if err != nil {
			t.Fatalf("unexpected error: %v", err)
		}
		return
	}
	if err == nil {
		t.Fatalf("want error %s (%s), got nil", code, kind)
	}
	if got := fault.KindOf(err); got != kind {
		t.Errorf("kind = %s, want %s (err: %v)", got, kind, err)
	}
	if got := fault.CodeOf(err, ""); got != code {
		t.Errorf("code = %s, want %s (err: %v)", got, code, err)
	}
}

func epoch(t time.Time) string { return strconv.FormatInt(t.Unix(), 10) }

// testClock is a settable clock.
type testClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *testClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}
