package twitch

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bitbrat/twitch-edge/shared/fault"
	"github.com/bitbrat/twitch-edge/shared/twitch/twitchtest"
)

// memAppStore is an in-memory AppTokenStore with the Firestore one's lease rules.
type memAppStore struct {
	mu         sync.Mutex
	tok        AppToken
	has        bool
	leaseOwner string
	leaseUntil time.Time
	saves      int
}

func (m *memAppStore) LoadAppToken(context.Context) (AppToken, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if !m.has {
		return AppToken{}, ErrTokenNotFound
	}
	return m.tok, nil
}

func (m *memAppStore) AcquireAppTokenLease(_ context.Context, holder string, ttl time.Duration) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.leaseOwner != "" && m.leaseOwner != holder && time.Now().Before(m.leaseUntil) {
		return false, nil
	}
	m.leaseOwner, m.leaseUntil = holder, time.Now().Add(ttl)
	return true, nil
}

func (m *memAppStore) SaveAppToken(_ context.Context, holder string, tok AppToken) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.leaseOwner != holder {
		return ErrLeaseLost
	}
	m.tok, m.has, m.leaseOwner = tok, true, ""
	m.saves++
	return nil
}

func (m *memAppStore) ReleaseAppTokenLease(_ context.Context, holder string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.leaseOwner == holder {
		m.leaseOwner = ""
	}
	return nil
}

func newAppProvider(t *testing.T, f *fixture, store AppTokenStore, holder string, now func() time.Time) *AppTokenProvider {
	t.Helper()
	p, err := NewAppTokenProvider(AppTokenProviderOptions{Store: store, OAuth: f.oauth, Logger: f.logger, Now: now,
		PollInterval: 5 * time.Millisecond, Holder: holder})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestAppTokenProviderLifecycle(t *testing.T) {
	f := newFixture(t, twitchtest.Options{})
	clock := &testClock{t: time.Now()}
	store := &memAppStore{}
	p := newAppProvider(t, f, store, "a", clock.Now)
	ctx := context.Background()
	steps := []struct {
		name      string
		do        func() (string, error)
		wantIssue int // the fake's client-credentials grants so far
	}{
		{"first use issues one", func() (string, error) { return p.Token(ctx) }, 1},
		{"then it is cached", func() (string, error) { return p.Token(ctx) }, 1},
		{"another instance adopts the stored one", func() (string, error) {
			return newAppProvider(t, f, store, "b", clock.Now).Token(ctx)
		}, 1},
		{"reissued before expiry", func() (string, error) {
			clock.Advance(4*time.Hour - 30*time.Minute) // the fake's lifetime is 4 h, RenewBefore 1 h
			return p.Token(ctx)
		}, 2},
		{"reissued after a 401", func() (string, error) {
			cur, _ := p.Token(ctx)
			return p.Refresh(ctx, cur)
		}, 3},
		{"a 401 for an older token adopts the current one", func() (string, error) { return p.Refresh(ctx, "some-old-token") }, 3},
	}
	seen := map[string]bool{}
	for _, st := range steps {
		tok, err := st.do()
		if err != nil || tok == "" {
			t.Fatalf("%s: %q %v", st.name, tok, err)
		}
		seen[tok] = true
		if n := f.fake.AppTokenCount(); n != st.wantIssue {
			t.Fatalf("%s: %d app tokens issued, want %d", st.name, n, st.wantIssue)
		}
	}
	// Concurrent 401s of one token: one issue serves them all.
	cur, _ := p.Token(ctx)
	var wg sync.WaitGroup
	for i := 0; i < 20; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if tok, err := p.Refresh(ctx, cur); err != nil || tok == cur {
				t.Errorf("refresh: %q %v", tok, err)
			}
		}()
	}
	wg.Wait()
	if n := f.fake.AppTokenCount(); n != 4 {
		t.Fatalf("%d app tokens after 20 concurrent 401s, want 4", n)
	}
	logs := f.logs.String()
	for tok := range seen {
		if strings.Contains(logs, tok) {
			t.Fatal("an app token appears in the logs")
		}
	}
	if !strings.Contains(logs, "twitch app token issued") {
		t.Errorf("issue not logged:\n%s", logs)
	}
}

func TestAppTokenProviderErrors(t *testing.T) {
	f := newFixture(t, twitchtest.Options{})
	bad := NewOAuth(OAuthOptions{BaseURL: f.fake.AuthBaseURL(), ClientID: f.fake.ClientID(), ClientSecret: "wrong"})
	p, err := NewAppTokenProvider(AppTokenProviderOptions{Store: &memAppStore{}, OAuth: bad})
	if err != nil {
		t.Fatal(err)
	}
	_, err = p.Token(context.Background())
	checkErr(t, err, fault.Auth, CodeClientCredentials)

	f.fake.Script("POST", "/oauth2/token", twitchtest.ErrorResponse(503, "down"))
	p = newAppProvider(t, f, &memAppStore{}, "c", nil)
	_, err = p.Token(context.Background())
	checkErr(t, err, fault.Transient, CodeTokenRefreshFailed)

	// A stored token of another app is never used.
	store := &memAppStore{tok: AppToken{AccessToken: "other-app", ClientID: "someone-else"}, has: true}
	p = newAppProvider(t, f, store, "d", nil)
	if tok, err := p.Token(context.Background()); err != nil || tok == "other-app" {
		t.Fatalf("token %q %v", tok, err)
	}
	for _, o := range []AppTokenProviderOptions{{}, {Store: store}, {Store: store, OAuth: NewOAuth(OAuthOptions{ClientID: "x"})}} {
		if _, err := NewAppTokenProvider(o); err == nil {
			t.Errorf("options %+v accepted", o)
		}
	}
}
