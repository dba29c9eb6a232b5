package twitch

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bitbrat/twitch-edge/shared/fault"
	"github.com/bitbrat/twitch-edge/shared/twitch/twitchtest"
)

func usersBody(id string) string {
	return `{"data":[{"id":"` + id + `","login":"l` + id + `","display_name":"L"}]}`
}

func TestRateLimitHeadroomAndWaits(t *testing.T) {
	now := time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)
	ctx := context.Background()

	t.Run("headroom is exposed", func(t *testing.T) {
		f := newFixture(t, twitchtest.Options{RateLimit: 50})
		if _, err := f.client.GetUsers(ctx, []string{"brat"}, nil); err != nil {
			t.Fatal(err)
		}
		limit, remaining, reset := f.client.RateLimit()
		if limit != 50 || remaining != 49 || reset.IsZero() {
			t.Fatalf("RateLimit() = %d %d %v", limit, remaining, reset)
		}
	})

	t.Run("empty bucket waits for reset before the next call", func(t *testing.T) {
		f := newFixture(t, twitchtest.Options{})
		f.client.now = func() time.Time { return now }
		h := jsonHeaderWith("Ratelimit-Limit", "800", "Ratelimit-Remaining", "0", "Ratelimit-Reset", epoch(now.Add(5*time.Second)))
		f.fake.Script("GET", "/helix/users", twitchtest.Response{Status: 200, Header: h, Body: usersBody("70001")})
		if _, err := f.client.GetUsers(ctx, nil, []string{"70001"}); err != nil {
			t.Fatal(err)
		}
		if got := f.slept(); len(got) != 0 {
			t.Fatalf("slept before any empty bucket: %v", got)
		}
		if _, err := f.client.GetUsers(ctx, []string{"brat"}, nil); err != nil {
			t.Fatal(err)
		}
		if got := f.slept(); len(got) != 1 || got[0] != 5*time.Second {
			t.Fatalf("slept %v, want one 5s wait", got)
		}
	})

	t.Run("bucket 429 waits and retries once", func(t *testing.T) {
		f := newFixture(t, twitchtest.Options{})
		f.client.now = func() time.Time { return now }
		f.fake.Script("GET", "/helix/users", twitchtest.RateLimitedResponse(800, now.Add(3*time.Second), "Too Many Requests"))
		if _, err := f.client.GetUsers(ctx, []string{"brat"}, nil); err != nil {
			t.Fatal(err)
		}
		if got := f.slept(); len(got) != 1 || got[0] != 3*time.Second {
			t.Fatalf("slept %v, want 3s", got)
		}
		if n := len(f.fake.RequestsTo("GET", "/helix/users")); n != 2 {
			t.Fatalf("requests = %d, want 2", n)
		}
	})

	t.Run("reset too far: no wait, RateLimited with RetryAt", func(t *testing.T) {
		f := newFixture(t, twitchtest.Options{})
		f.client.now = func() time.Time { return now }
		reset := now.Add(2 * time.Minute)
		f.fake.Script("GET", "/helix/users", twitchtest.RateLimitedResponse(800, reset, "Too Many Requests"))
		_, err := f.client.GetUsers(ctx, []string{"brat"}, nil)
		checkErr(t, err, fault.RateLimited, CodeRateLimited)
		if got := fault.RetryAfter(err, now); got != 2*time.Minute {
			t.Errorf("RetryAfter = %v", got)
		}
		// The next call does not hammer: it fails fast without a request.
		_, err = f.client.GetUsers(ctx, []string{"viewer"}, nil)
		checkErr(t, err, fault.RateLimited, CodeRateLimited)
		if n := len(f.fake.RequestsTo("GET", "/helix/users")); n != 1 {
			t.Errorf("requests = %d, want 1", n)
		}
	})

	t.Run("wait honours context", func(t *testing.T) {
		f := newFixture(t, twitchtest.Options{})
		f.client.now = func() time.Time { return now }
		f.client.sleep = sleepCtx
		f.client.rlKnown, f.client.rlRemaining, f.client.rlReset = true, 0, now.Add(10*time.Second)
		cctx, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
		defer cancel()
		_, err := f.client.GetUsers(cctx, []string{"brat"}, nil)
		if !errors.Is(err, context.DeadlineExceeded) || !fault.Retryable(err) {
			t.Fatalf("want retryable deadline error, got %v", err)
		}
	})

	t.Run("fake's own bucket runs dry", func(t *testing.T) {
		clk := &testClock{t: now}
		f := newFixture(t, twitchtest.Options{RateLimit: 2, RateLimitWindow: 5 * time.Second, Now: clk.Now})
		f.client.now = clk.Now
		var waits []time.Duration
		f.client.sleep = func(_ context.Context, d time.Duration) error { waits = append(waits, d); clk.Advance(d); return nil }
		for i := 0; i < 5; i++ {
			if _, err := f.client.GetUsers(ctx, nil, []string{strconv.Itoa(i + 1)}); err != nil {
				t.Fatalf("call %d: %v", i, err)
			}
		}
		// Never a 429: the client waited for each reset instead.
		if n := len(f.fake.RequestsTo("GET", "/helix/users")); n != 5 {
			t.Errorf("requests = %d, want 5 (no 429 retries)", n)
		}
		if len(waits) != 2 {
			t.Errorf("waits = %v, want 2 (after calls 2 and 4)", waits)
		}
	})
}

func jsonHeaderWith(kv ...string) http.Header {
	h := http.Header{"Content-Type": {"application/json"}}
	for i := 0; i+1 < len(kv); i += 2 {
		h.Set(kv[i], kv[i+1])
	}
	return h
}

func TestRefreshOn401IsSingleFlight(t *testing.T) {
	f := newFixture(t, twitchtest.Options{})
	ctx := context.Background()
	// Validate first so that the concurrent calls below are only about the 401.
	if _, err := f.client.GetUsers(ctx, []string{"brat"}, nil); err != nil {
		t.Fatal(err)
	}
	f.fake.ExpireToken(botAccess)
	const n = 25
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			f.fake.AddUser(twitchtest.User{ID: strconv.Itoa(80000 + i), Login: "x" + strconv.Itoa(i)})
			_, err := f.client.GetUsers(ctx, nil, []string{strconv.Itoa(80000 + i)})
			errs <- err
		}(i)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if got := f.fake.RefreshCount(); got != 1 {
		t.Fatalf("refreshes = %d, want exactly 1", got)
	}
	latest, _ := f.fake.LatestToken(botID)
	stored, _ := f.store.LoadToken(ctx, RoleBot)
	if stored.AccessToken != latest.AccessToken || stored.RefreshToken != latest.RefreshToken || stored.RefreshToken == botRefresh {
		t.Fatalf("rotated token not stored: %v", stored)
	}
	if stored.UpdatedAt.IsZero() || stored.UserID != botID {
		t.Errorf("stored token = %v", stored)
	}
}

func TestRefreshAcrossProcessesSharesOneRefresh(t *testing.T) {
	f := newFixture(t, twitchtest.Options{})
	ctx := context.Background()
	f.fake.ExpireToken(botAccess)
	// Three "processes": separate providers and clients over one store.
	var clients []*Client
	for i := 0; i < 3; i++ {
		p, err := NewProvider(ProviderOptions{Store: f.store, OAuth: f.oauth, Holder: fmt.Sprintf("proc-%d", i),
			PollInterval: time.Millisecond, ValidateEvery: -1})
		if err != nil {
			t.Fatal(err)
		}
		clients = append(clients, NewClient(Options{APIBaseURL: f.fake.APIBaseURL(), ClientID: f.fake.ClientID(), Tokens: p}))
	}
	var wg sync.WaitGroup
	for i, c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := c.GetUsers(ctx, []string{"brat"}, nil); err != nil {
				t.Errorf("process %d: %v", i, err)
			}
		}()
	}
	wg.Wait()
	if got := f.fake.RefreshCount(); got != 1 {
		t.Fatalf("refreshes = %d, want 1 across processes", got)
	}
}

func TestRefreshFailuresSayWhy(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name  string
		setup func(f *fixture)
		kind  fault.Kind
		code  string
	}{
		{name: "revoked refresh token", setup: func(f *fixture) { f.fake.RevokeToken(botAccess) },
			kind: fault.Auth, code: CodeTokenRevoked},
		{name: "token endpoint down", setup: func(f *fixture) {
			f.fake.ExpireToken(botAccess)
			f.fake.Script("POST", "/oauth2/token", twitchtest.ErrorResponse(503, "Service Unavailable"))
		}, kind: fault.Transient, code: CodeTokenRefreshFailed},
		{name: "wrong client secret", setup: func(f *fixture) {
			f.fake.ExpireToken(botAccess)
			f.oauth.secret = "wrong-secret-value"
		}, kind: fault.Auth, code: CodeTokenRefreshRejected},
		{name: "no refresh token stored", setup: func(f *fixture) {
			f.fake.ExpireToken(botAccess)
			f.store.tok.RefreshToken = ""
		}, kind: fault.Auth, code: CodeTokenNotRefreshable},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, twitchtest.Options{})
			f.provider.o.ValidateEvery = -1
			tc.setup(f)
			_, err := f.client.GetUsers(ctx, []string{"brat"}, nil)
			checkErr(t, err, tc.kind, tc.code)
			// The Helix 401 stays reachable for diagnostics.
			if !strings.Contains(err.Error(), "401") {
				t.Errorf("error should mention the 401 that led to the refresh: %v", err)
			}
		})
	}
}

func TestProviderProactiveRefreshAndHourlyValidation(t *testing.T) {
	clk := &testClock{t: time.Now()}
	f := newFixture(t, twitchtest.Options{})
	f.provider.o.Now = clk.Now
	ctx := context.Background()
	if _, err := f.provider.Token(ctx); err != nil {
		t.Fatal(err)
	}
	if n := len(f.fake.RequestsTo("GET", "/oauth2/validate")); n != 1 {
		t.Fatalf("validations at start = %d, want 1", n)
	}
	clk.Advance(30 * time.Minute)
	if _, err := f.provider.Token(ctx); err != nil {
		t.Fatal(err)
	}
	if n := len(f.fake.RequestsTo("GET", "/oauth2/validate")); n != 1 {
		t.Fatalf("validated again within the hour: %d", n)
	}
	clk.Advance(31 * time.Minute)
	if _, err := f.provider.Token(ctx); err != nil {
		t.Fatal(err)
	}
	if n := len(f.fake.RequestsTo("GET", "/oauth2/validate")); n != 2 {
		t.Fatalf("validations after an hour = %d, want 2", n)
	}
	// Near expiry (4 h lifetime, 5 min skew): refresh before Twitch says 401.
	clk.Advance(3*time.Hour + 56*time.Minute)
	tok, err := f.provider.Token(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if tok == botAccess || f.fake.RefreshCount() != 1 {
		t.Fatalf("token not refreshed near expiry (refreshes %d)", f.fake.RefreshCount())
	}
}

func TestValidationFailureTriggersRefresh(t *testing.T) {
	f := newFixture(t, twitchtest.Options{})
	f.fake.ExpireToken(botAccess)
	tok, err := f.provider.Token(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if tok == botAccess || f.fake.RefreshCount() != 1 {
		t.Fatalf("401 at /validate should refresh")
	}
}

func TestStaticTokenSource(t *testing.T) {
	f := newFixture(t, twitchtest.Options{})
	ctx := context.Background()
	_, err := NewStaticTokenSource(ctx, f.client, "not-a-token")
	checkErr(t, err, fault.Auth, CodeTokenInvalid)
	_, err = NewStaticTokenSource(ctx, f.client, "")
	checkErr(t, err, fault.Auth, CodeNoToken)

	ts, err := NewStaticTokenSource(ctx, f.client, botAccess)
	if err != nil {
		t.Fatal(err)
	}
	if v := ts.Validation(); v.UserID != botID || !v.HasScope("user:write:chat") {
		t.Fatalf("validation = %+v", v)
	}
	c := NewClient(Options{APIBaseURL: f.fake.APIBaseURL(), ClientID: f.fake.ClientID(), Tokens: ts})
	if _, err := c.SendChatMessage(ctx, broadcasterID, botID, "static hello", ""); err != nil {
		t.Fatal(err)
	}
	f.fake.ExpireToken(botAccess)
	_, err = c.SendChatMessage(ctx, broadcasterID, botID, "static again", "")
	checkErr(t, err, fault.Auth, CodeTokenNotRefreshable)
	if f.fake.RefreshCount() != 0 {
		t.Error("a static token must never be refreshed")
	}
}

func TestMissingTokenDocument(t *testing.T) {
	f := newFixture(t, twitchtest.Options{})
	f.store.has = false
	_, err := f.client.GetUsers(context.Background(), []string{"brat"}, nil)
	checkErr(t, err, fault.Auth, CodeNoToken)
	if !errors.Is(err, ErrTokenNotFound) {
		t.Errorf("want ErrTokenNotFound in chain: %v", err)
	}
}

// TestNoSecretsInLogsOrErrors drives the failure paths with debug logging on and
// scans every log line and error string for any token or the client secret.
func TestNoSecretsInLogsOrErrors(t *testing.T) {
	f := newFixture(t, twitchtest.Options{})
	ctx := context.Background()
	var errs []string
	note := func(err error) {
		if err != nil {
			errs = append(errs, err.Error(), fmt.Sprintf("%+v", err), fmt.Sprintf("%#v", err))
		}
	}
	f.logger.Info("stored token", "tok", f.store.tok) // a Token logged by mistake
	f.logger.Info("token struct", "value", fmt.Sprintf("%v %+v %#v", f.store.tok, f.store.tok, f.store.tok))

	// 401 → refresh (rotates tokens) → retry.
	f.fake.ExpireToken(botAccess)
	_, err := f.client.SendChatMessage(ctx, broadcasterID, botID, "one", "")
	note(err)
	// Scripted failures of every kind.
	f.fake.Script("POST", "/helix/chat/messages",
		twitchtest.ErrorResponse(400, "bad"), twitchtest.ErrorResponse(403, "no"),
		twitchtest.RateLimitedResponse(800, time.Now().Add(time.Hour), "Too Many Requests"),
		twitchtest.ErrorResponse(500, "boom"), twitchtest.ChatDroppedResponse("msg_rejected", "automod"))
	for i := 0; i < 5; i++ {
		_, err = f.client.SendChatMessage(ctx, broadcasterID, botID, "msg "+strconv.Itoa(i), "")
		note(err)
	}
	f.client.rlKnown = false
	// Refresh failures: transient, then revoked.
	cur, _ := f.fake.LatestToken(botID)
	f.fake.ExpireToken(cur.AccessToken)
	f.fake.Script("POST", "/oauth2/token", twitchtest.ErrorResponse(502, "bad gateway"))
	note(f.client.SendWhisper(ctx, botID, viewerID, "psst"))
	f.fake.RevokeToken(cur.AccessToken)
	note(f.client.SendWhisper(ctx, botID, viewerID, "psst"))
	// Validation failures and a static token.
	_, err = f.client.ValidateToken(ctx, cur.AccessToken)
	note(err)
	_, err = NewStaticTokenSource(ctx, f.oauth, cur.AccessToken)
	note(err)
	// Wrong secret.
	f.oauth.secret = "another-secret-abc123"
	_, err = f.oauth.RefreshToken(ctx, cur.RefreshToken)
	note(err)
	_, err = f.oauth.AppToken(ctx)
	note(err)
	// Network failure.
	dead := NewOAuth(OAuthOptions{BaseURL: "http://127.0.0.1:1/oauth2", ClientID: "x", ClientSecret: f.fake.ClientSecret()})
	_, err = dead.RefreshToken(ctx, cur.RefreshToken)
	note(err)

	secrets := []string{botAccess, botRefresh, f.fake.ClientSecret(), "another-secret-abc123", cur.AccessToken, cur.RefreshToken}
	if latest, ok := f.fake.LatestToken(botID); ok {
		secrets = append(secrets, latest.AccessToken, latest.RefreshToken)
	}
	logs := f.logs.String()
	if !strings.Contains(logs, "twitch token refreshed") {
		t.Fatalf("expected refresh logs, got:\n%s", logs)
	}
	for _, s := range secrets {
		if s == "" {
			continue
		}
		if strings.Contains(logs, s) {
			t.Errorf("secret %q found in logs", s[:6])
		}
		for _, e := range errs {
			if strings.Contains(e, s) {
				t.Errorf("secret %q found in error %q", s[:6], e)
			}
		}
	}
	if len(errs) < 10 {
		t.Errorf("only %d error strings checked", len(errs))
	}
}
