package store

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sort"
	"sync"
	"testing"
	"time"

	"cloud.google.com/go/firestore"

	"github.com/bitbrat/twitch-edge/shared/emulators"
	"github.com/bitbrat/twitch-edge/shared/twitch"
	"github.com/bitbrat/twitch-edge/shared/twitch/twitchtest"
)

func tokenFirestore(t *testing.T) *firestore.Client {
	t.Helper()
	c, err := NewClient(context.Background(), emulators.ProjectID(t), "", WithEmulator(emulators.Host(emulators.Firestore)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// tokenSeed writes a token document the way upstream's OAuth flow (JavaScript) does:
// numbers may arrive as doubles, plus a field we do not know.
func tokenSeed(t *testing.T, fs *firestore.Client, role twitch.Role, access, refresh string, obtained time.Time) {
	t.Helper()
	_, err := fs.Collection("oauth").Doc("twitch").Collection(string(role)).Doc("token").Set(context.Background(), map[string]any{
		"accessToken":         access,
		"refreshToken":        refresh,
		"scope":               []any{"moderator:read:followers", "user:write:chat", "user:manage:whispers"},
		"expiresIn":           float64(14400),
		"obtainmentTimestamp": obtained.UnixMilli(),
		"userId":              "2002",
		"upstreamExtra":       "kept",
	})
	if err != nil {
		t.Fatal(err)
	}
}

func tokenDoc(t *testing.T, fs *firestore.Client, role twitch.Role, id string) (map[string]any, bool) {
	t.Helper()
	snap, err := fs.Collection("oauth").Doc("twitch").Collection(string(role)).Doc(id).Get(context.Background())
	if err != nil {
		return nil, false
	}
	return snap.Data(), true
}

func TestTokenStoreLoad(t *testing.T) {
	fs := tokenFirestore(t)
	s := NewTokenStore(fs)
	ctx := context.Background()
	if _, err := s.LoadToken(ctx, twitch.RoleBot); !errors.Is(err, twitch.ErrTokenNotFound) {
		t.Fatalf("missing document: %v", err)
	}
	obtained := time.UnixMilli(time.Now().UnixMilli())
	tokenSeed(t, fs, twitch.RoleBroadcaster, "a-1", "r-1", obtained)
	tok, err := s.LoadToken(ctx, twitch.RoleBroadcaster)
	if err != nil {
		t.Fatal(err)
	}
	if tok.AccessToken != "a-1" || tok.RefreshToken != "r-1" || tok.ExpiresIn != 14400 || !tok.ObtainedAt.Equal(obtained) ||
		tok.UserID != "2002" || len(tok.Scopes) != 3 || !tok.ExpiresAt().Equal(obtained.Add(4*time.Hour)) {
		t.Fatalf("token = %v (obtained %v)", tok, tok.ObtainedAt)
	}
	if _, err := s.LoadToken(ctx, twitch.RoleBot); !errors.Is(err, twitch.ErrTokenNotFound) {
		t.Fatalf("roles are separate documents: %v", err)
	}
}

func TestTokenStoreLease(t *testing.T) {
	fs := tokenFirestore(t)
	s := NewTokenStore(fs)
	now := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)
	s.now = func() time.Time { return now }
	ctx := context.Background()
	steps := []struct {
		name    string
		holder  string
		advance time.Duration
		want    bool
	}{
		{"first holder takes it", "a", 0, true},
		{"other holder refused", "b", 0, false},
		{"holder renews", "a", 10 * time.Second, true},
		{"still refused inside ttl", "b", 20 * time.Second, false},
		{"taken over after expiry", "b", 15 * time.Second, true},
		{"old holder refused now", "a", 0, false},
	}
	for _, st := range steps {
		now = now.Add(st.advance)
		ok, err := s.AcquireRefreshLease(ctx, twitch.RoleBot, st.holder, 30*time.Second)
		if err != nil || ok != st.want {
			t.Fatalf("%s: got %v %v, want %v", st.name, ok, err, st.want)
		}
	}
	// "a" lost the lease: its save must not land, "b"'s does and frees the lease.
	tokenSeed(t, fs, twitch.RoleBot, "a-0", "r-0", now)
	err := s.SaveRefreshedToken(ctx, twitch.RoleBot, "a", twitch.Token{AccessToken: "from-a"})
	if !errors.Is(err, twitch.ErrLeaseLost) {
		t.Fatalf("save without lease: %v", err)
	}
	obtained := time.UnixMilli(now.UnixMilli())
	if err := s.SaveRefreshedToken(ctx, twitch.RoleBot, "b", twitch.Token{AccessToken: "from-b", RefreshToken: "r-b",
		Scopes: []string{"user:write:chat"}, ExpiresIn: 3600, ObtainedAt: obtained, UserID: "2002", UpdatedAt: obtained}); err != nil {
		t.Fatal(err)
	}
	if _, ok := tokenDoc(t, fs, twitch.RoleBot, "refreshLease"); ok {
		t.Error("save should release the lease")
	}
	doc, _ := tokenDoc(t, fs, twitch.RoleBot, "token")
	var keys []string
	for k := range doc {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	want := "[accessToken expiresIn obtainmentTimestamp refreshToken scope updatedAt upstreamExtra userId]"
	if fmt.Sprint(keys) != want {
		t.Errorf("fields = %v, want %s", keys, want)
	}
	if doc["accessToken"] != "from-b" || doc["refreshToken"] != "r-b" || doc["expiresIn"] != int64(3600) ||
		doc["obtainmentTimestamp"] != obtained.UnixMilli() || doc["updatedAt"] != obtained.UnixMilli() {
		t.Errorf("document = %v", doc)
	}
	// Release is a no-op for a non-holder and frees the lease for the holder.
	if ok, _ := s.AcquireRefreshLease(ctx, twitch.RoleBot, "c", time.Minute); !ok {
		t.Fatal("free lease not acquired")
	}
	if err := s.ReleaseRefreshLease(ctx, twitch.RoleBot, "d"); err != nil {
		t.Fatal(err)
	}
	if ok, _ := s.AcquireRefreshLease(ctx, twitch.RoleBot, "d", time.Minute); ok {
		t.Fatal("release by a non-holder freed the lease")
	}
	if err := s.ReleaseRefreshLease(ctx, twitch.RoleBot, "c"); err != nil {
		t.Fatal(err)
	}
	if ok, _ := s.AcquireRefreshLease(ctx, twitch.RoleBot, "d", time.Minute); !ok {
		t.Fatal("released lease not acquired")
	}
}

// TestTokenRefreshAcrossProcesses runs three "processes" (providers with their own
// holder id and client) against one Firestore and the fake Twitch: concurrent 401s
// everywhere cause exactly one refresh, and the rotated refresh token is persisted.
func TestTokenRefreshAcrossProcesses(t *testing.T) {
	fake, err := twitchtest.New(twitchtest.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer fake.Close()
	fake.AddUser(twitchtest.User{ID: "2002", Login: "bratbot"})
	fake.AddToken(twitchtest.Token{AccessToken: "bot-access-0", RefreshToken: "bot-refresh-0", UserID: "2002",
		Scopes: []string{"user:write:chat"}})
	fs := tokenFirestore(t)
	tokenSeed(t, fs, twitch.RoleBot, "bot-access-0", "bot-refresh-0", time.Now())
	fake.ExpireToken("bot-access-0")

	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	httpc := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	oauth := twitch.NewOAuth(twitch.OAuthOptions{BaseURL: fake.AuthBaseURL(), ClientID: fake.ClientID(),
		ClientSecret: fake.ClientSecret(), HTTPClient: httpc})
	var clients []*twitch.Client
	for i := 0; i < 3; i++ {
		p, err := twitch.NewProvider(twitch.ProviderOptions{Store: NewTokenStore(fs), OAuth: oauth,
			Holder: fmt.Sprintf("instance-%d", i), PollInterval: 10 * time.Millisecond, ValidateEvery: -1})
		if err != nil {
			t.Fatal(err)
		}
		clients = append(clients, twitch.NewClient(twitch.Options{APIBaseURL: fake.APIBaseURL(),
			ClientID: fake.ClientID(), HTTPClient: httpc, Tokens: p}))
	}
	var wg sync.WaitGroup
	for i := 0; i < 12; i++ {
		wg.Add(1)
		go func(c *twitch.Client) {
			defer wg.Done()
			if _, err := c.GetUsers(context.Background(), []string{"bratbot"}, nil); err != nil {
				t.Error(err)
			}
		}(clients[i%3])
	}
	wg.Wait()
	if n := fake.RefreshCount(); n != 1 {
		t.Fatalf("refreshes = %d, want exactly 1", n)
	}
	latest, _ := fake.LatestToken("2002")
	doc, _ := tokenDoc(t, fs, twitch.RoleBot, "token")
	if doc["accessToken"] != latest.AccessToken || doc["refreshToken"] != latest.RefreshToken || doc["refreshToken"] == "bot-refresh-0" {
		t.Fatalf("rotated token not persisted: access=%v", doc["accessToken"] == latest.AccessToken)
	}
	if u, _ := doc["updatedAt"].(int64); u == 0 || doc["upstreamExtra"] != "kept" {
		t.Errorf("updatedAt/extra fields: %v %v", doc["updatedAt"], doc["upstreamExtra"])
	}
	if _, ok := tokenDoc(t, fs, twitch.RoleBot, "refreshLease"); ok {
		t.Error("lease left behind")
	}
}
