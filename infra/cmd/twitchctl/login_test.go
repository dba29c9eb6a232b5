package main

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bitbrat/twitch-edge/shared/emulators"
	"github.com/bitbrat/twitch-edge/shared/store"
	"github.com/bitbrat/twitch-edge/shared/twitch"
	"github.com/bitbrat/twitch-edge/shared/twitch/twitchtest"
)

type testClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *testClock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// twitchctl login against the fake's device-code endpoints and the Firestore
// emulator: the user's answer (approve, approve fewer scopes, deny, let it expire)
// happens on the fake between polls; the poller's sleeps advance a shared clock.
func TestLogin(t *testing.T) {
	for _, tc := range []struct {
		name string
		// user acts before poll n on the pending user code.
		user      func(f *twitchtest.Server, code string, n int) error
		tooFast   bool // the second sleep is short: the fake answers slow_down
		code      int
		out, err  string
		stored    bool
		wantScope []string
	}{
		{name: "approved", user: approveAt(2), code: 0, stored: true, wantScope: twitch.BotScopes(),
			out: "scopes missing: none"},
		{name: "approved with fewer scopes", user: func(f *twitchtest.Server, code string, n int) error {
			if n == 1 {
				return f.ApproveDevice(code, "900", "user:write:chat")
			}
			return nil
		}, code: 0, stored: true, wantScope: []string{"user:write:chat"},
			out: "scopes missing: moderator:read:followers user:manage:whispers user:read:moderated_channels"},
		{name: "denied", user: func(f *twitchtest.Server, code string, n int) error {
			if n == 2 {
				return f.DenyDevice(code)
			}
			return nil
		}, code: 1, err: "DEVICE_ACCESS_DENIED"},
		{name: "expired", user: func(f *twitchtest.Server, code string, n int) error {
			if n == 3 {
				return f.ExpireDevice(code)
			}
			return nil
		}, code: 1, err: "DEVICE_CODE_EXPIRED"},
		{name: "slow_down", tooFast: true, user: approveAt(3), code: 0, stored: true, wantScope: twitch.BotScopes(),
			out: "Twitch asked to poll more slowly; now every 10s"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			clock := &testClock{now: time.Now()}
			f, err := twitchtest.New(twitchtest.Options{Now: clock.Now})
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			f.AddUser(twitchtest.User{ID: "900", Login: "bitbrat_bot"})
			project := emulators.ProjectID(t)
			sleeps := 0
			h := hooks{poll: twitch.DevicePoll{Now: clock.Now, Sleep: func(_ context.Context, d time.Duration) error {
				sleeps++
				if tc.tooFast && sleeps == 2 {
					d /= 2
				}
				clock.advance(d)
				pending := f.PendingDevices()
				if len(pending) == 1 {
					if err := tc.user(f, pending[0].UserCode, sleeps); err != nil {
						return err
					}
				}
				if sleeps > 50 {
					return errors.New("the poller did not stop")
				}
				return nil
			}}}
			var out, errOut strings.Builder
			code := runWith([]string{"login", "--client-id", f.ClientID(), "--auth-url", f.AuthBaseURL(),
				"--firestore", emulators.Host(emulators.Firestore), "--project", project}, &out, &errOut, h)
			if code != tc.code {
				t.Fatalf("exit %d, want %d\nstdout: %s\nstderr: %s", code, tc.code, out.String(), errOut.String())
			}
			if !strings.Contains(out.String(), "enter the code ") || !strings.Contains(out.String(), "waiting up to 30m0s") {
				t.Errorf("stdout does not show the code and the bounded wait:\n%s", out.String())
			}
			if !strings.Contains(out.String(), tc.out) || !strings.Contains(errOut.String(), tc.err) {
				t.Errorf("stdout lacks %q or stderr lacks %q\nstdout: %s\nstderr: %s", tc.out, tc.err, out.String(), errOut.String())
			}

			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			fs, err := store.NewClient(ctx, project, "", store.WithEmulator(emulators.Host(emulators.Firestore)))
			if err != nil {
				t.Fatal(err)
			}
			defer fs.Close()
			got, err := store.NewTokenStore(fs).LoadToken(ctx, twitch.RoleBot)
			if !tc.stored {
				if !errors.Is(err, twitch.ErrTokenNotFound) {
					t.Errorf("a token was stored after a failed login: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			issued, ok := f.LatestToken("900")
			if !ok || got.AccessToken != issued.AccessToken || got.RefreshToken != issued.RefreshToken || got.UserID != "900" ||
				!slices.Equal(got.Scopes, tc.wantScope) || got.ExpiresIn <= 0 || got.ObtainedAt.IsZero() {
				t.Errorf("stored token: user %s scopes %v expiresIn %d (matches the issued one: %v)", got.UserID, got.Scopes, got.ExpiresIn,
					ok && got.AccessToken == issued.AccessToken)
			}
			for _, secret := range []string{issued.AccessToken, issued.RefreshToken} {
				if strings.Contains(out.String()+errOut.String(), secret) {
					t.Error("login printed a token")
				}
			}
			if !strings.Contains(out.String(), "authorized as bitbrat_bot (user id 900)") || !strings.Contains(out.String(), "stored in oauth/twitch/bot/token") {
				t.Errorf("stdout:\n%s", out.String())
			}
		})
	}
}

func approveAt(n int) func(*twitchtest.Server, string, int) error {
	return func(f *twitchtest.Server, code string, at int) error {
		if at == n {
			return f.ApproveDevice(code, "900")
		}
		return nil
	}
}
