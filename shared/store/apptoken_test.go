package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bitbrat/twitch-edge/shared/twitch"
	"github.com/bitbrat/twitch-edge/shared/twitch/twitchtest"
)

func TestAppTokenStoreLease(t *testing.T) {
	fs := tokenFirestore(t)
	s := NewAppTokenStore(fs)
	now := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	s.now = func() time.Time { return now }
	ctx := context.Background()
	if _, err := s.LoadAppToken(ctx); !errors.Is(err, twitch.ErrTokenNotFound) {
		t.Fatalf("missing document: %v", err)
	}
	steps := []struct {
		name    string
		holder  string
		advance time.Duration
		want    bool
	}{
		{"first holder takes it", "a", 0, true},
		{"other holder refused", "b", 0, false},
		{"taken over after expiry", "b", 31 * time.Second, true},
	}
	for _, st := range steps {
		now = now.Add(st.advance)
		ok, err := s.AcquireAppTokenLease(ctx, st.holder, 30*time.Second)
		if err != nil || ok != st.want {
			t.Fatalf("%s: got %v %v, want %v", st.name, ok, err, st.want)
		}
	}
	if err := s.SaveAppToken(ctx, "a", twitch.AppToken{AccessToken: "from-a"}); !errors.Is(err, twitch.ErrLeaseLost) {
		t.Fatalf("save without the lease: %v", err)
	}
	obtained := time.UnixMilli(now.UnixMilli())
	want := twitch.AppToken{AccessToken: "from-b", ClientID: "cid", ObtainedAt: obtained, ExpiresAt: obtained.Add(time.Hour)}
	if err := s.SaveAppToken(ctx, "b", want); err != nil {
		t.Fatal(err)
	}
	got, err := s.LoadAppToken(ctx)
	if err != nil || got.AccessToken != want.AccessToken || got.ClientID != "cid" || !got.ObtainedAt.Equal(obtained) || !got.ExpiresAt.Equal(want.ExpiresAt) {
		t.Fatalf("loaded %v %v", got, err)
	}
	if _, ok := tokenDoc(t, fs, "app", "issueLease"); ok {
		t.Error("save should release the lease")
	}
	if ok, _ := s.AcquireAppTokenLease(ctx, "c", time.Minute); !ok {
		t.Fatal("free lease not acquired")
	}
	if err := s.ReleaseAppTokenLease(ctx, "d"); err != nil {
		t.Fatal(err)
	}
	if ok, _ := s.AcquireAppTokenLease(ctx, "d", time.Minute); ok {
		t.Fatal("release by a non-holder freed the lease")
	}
	if err := s.ReleaseAppTokenLease(ctx, "c"); err != nil {
		t.Fatal(err)
	}
	// The user token documents are untouched by the app token.
	if _, ok := tokenDoc(t, fs, twitch.RoleBot, "token"); ok {
		t.Error("app token store wrote a user token document")
	}
}

// TestAppTokenAcrossProcesses runs three "processes" (app token providers with their
// own holder id and Helix client) against one Firestore emulator and the fake Twitch:
// concurrent first uses cause one client-credentials grant and everyone is served;
// when Twitch then rejects that token (401) everywhere at once, one new token is
// issued and everyone is served again. No token value reaches the logs.
func TestAppTokenAcrossProcesses(t *testing.T) {
	fake, err := twitchtest.New(twitchtest.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer fake.Close()
	fs := tokenFirestore(t)
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	httpc := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	var logs bytes.Buffer
	var logMu sync.Mutex
	logger := slog.New(slog.NewJSONHandler(writerFunc(func(p []byte) (int, error) {
		logMu.Lock()
		defer logMu.Unlock()
		return logs.Write(p)
	}), &slog.HandlerOptions{Level: slog.LevelDebug}))
	var clients []*twitch.Client
	for i := 0; i < 3; i++ {
		oauth := twitch.NewOAuth(twitch.OAuthOptions{BaseURL: fake.AuthBaseURL(), ClientID: fake.ClientID(),
			ClientSecret: fake.ClientSecret(), HTTPClient: httpc, Logger: logger})
		p, err := twitch.NewAppTokenProvider(twitch.AppTokenProviderOptions{Store: NewAppTokenStore(fs), OAuth: oauth,
			Holder: fmt.Sprintf("instance-%d", i), PollInterval: 10 * time.Millisecond, Logger: logger})
		if err != nil {
			t.Fatal(err)
		}
		clients = append(clients, twitch.NewClient(twitch.Options{APIBaseURL: fake.APIBaseURL(), ClientID: fake.ClientID(),
			HTTPClient: httpc, AppTokens: p, Logger: logger}))
	}
	burst := func() {
		var wg sync.WaitGroup
		for i := 0; i < 12; i++ {
			wg.Add(1)
			go func(c *twitch.Client) {
				defer wg.Done()
				if _, err := c.GetConduits(context.Background()); err != nil {
					t.Error(err)
				}
			}(clients[i%3])
		}
		wg.Wait()
	}
	burst()
	if n := fake.AppTokenCount(); n != 1 {
		t.Fatalf("first use: %d app tokens issued, want exactly 1", n)
	}
	doc, _ := tokenDoc(t, fs, "app", "token")
	first, _ := doc["accessToken"].(string)
	if first == "" || doc["clientId"] != fake.ClientID() {
		t.Fatalf("app token document: clientId=%v, has token=%v", doc["clientId"], first != "")
	}
	fake.ExpireToken(first)
	burst()
	if n := fake.AppTokenCount(); n != 2 {
		t.Fatalf("after a 401 everywhere: %d app tokens issued, want exactly 2", n)
	}
	doc, _ = tokenDoc(t, fs, "app", "token")
	second, _ := doc["accessToken"].(string)
	if second == "" || second == first {
		t.Fatal("reissued token not stored")
	}
	if _, ok := tokenDoc(t, fs, "app", "issueLease"); ok {
		t.Error("lease left behind")
	}
	logMu.Lock()
	defer logMu.Unlock()
	if strings.Contains(logs.String(), first) || strings.Contains(logs.String(), second) {
		t.Error("an app token appears in the logs")
	}
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }
