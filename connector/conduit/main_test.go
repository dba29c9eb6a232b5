package conduit

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"sync"
	"testing"
	"time"

	"cloud.google.com/go/firestore"

	"github.com/bitbrat/twitch-edge/shared/emulators"
	"github.com/bitbrat/twitch-edge/shared/logging"
	"github.com/bitbrat/twitch-edge/shared/store"
	"github.com/bitbrat/twitch-edge/shared/twitch"
	"github.com/bitbrat/twitch-edge/shared/twitch/twitchtest"
)

func TestMain(m *testing.M) { os.Exit(emulators.RunTests(m, emulators.Firestore)) }

// patience bounds every condition wait; it is generous, since the machine is shared.
const patience = 60 * time.Second

// fixture is the real Firestore emulator (a fresh project per test) and the fake
// Twitch, with a Helix client holding an app token issued by the fake.
type fixture struct {
	fake   *twitchtest.Server
	fs     *firestore.Client
	client *twitch.Client
}

func newFixture(t *testing.T, fo twitchtest.Options) *fixture {
	t.Helper()
	fake, err := twitchtest.New(fo)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(fake.Close)
	fs, err := store.NewClient(context.Background(), emulators.ProjectID(t), "", store.WithEmulator(emulators.Host(emulators.Firestore)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { fs.Close() })
	log := testLogger(t)
	oauth := twitch.NewOAuth(twitch.OAuthOptions{BaseURL: fake.AuthBaseURL(), ClientID: fake.ClientID(), ClientSecret: fake.ClientSecret(), Logger: log})
	apps, err := twitch.NewAppTokenProvider(twitch.AppTokenProviderOptions{Store: store.NewAppTokenStore(fs), OAuth: oauth, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	client := twitch.NewClient(twitch.Options{APIBaseURL: fake.APIBaseURL(), AuthBaseURL: fake.AuthBaseURL(), ClientID: fake.ClientID(),
		AppTokens: apps, Logger: log})
	return &fixture{fake: fake, fs: fs, client: client}
}

// testLogger keeps the logs in memory and prints them when the test fails.
func testLogger(t *testing.T) *slog.Logger {
	t.Helper()
	w := &lockedBuffer{}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("logs:\n%s", w.String())
		}
	})
	return logging.New(w, slog.LevelInfo, "connector")
}

type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// waitFor polls cond until it holds or patience runs out, naming what it waits for.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(patience)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", patience, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// clock is a settable clock shared by the stores and lease managers of a test.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time          { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Advance(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }
