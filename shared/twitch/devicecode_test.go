package twitch

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/bitbrat/twitch-edge/shared/fault"
	"github.com/bitbrat/twitch-edge/shared/twitch/twitchtest"
)

// deviceClock is the fake's and the poller's clock; the poller's Sleep advances it,
// so Twitch's 5 s interval costs no time.
type deviceClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *deviceClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *deviceClock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// The device flow through the real client against the fake's /oauth2/device and
// device-code grant: each way it ends, as Twitch documents them.
func TestDeviceCodeFlow(t *testing.T) {
	for _, tc := range []struct {
		name string
		// act runs before poll n (1-based, counting sleeps): the user's side, on the fake.
		act func(t *testing.T, f *twitchtest.Server, code string, poll int)
		// short makes the poller's first sleep too short (a client polling too fast).
		short    bool
		wantCode string // fault code; "" = a token
		wantPoll int    // polls made
		wantWait []time.Duration
	}{
		{name: "approved after pending", act: func(t *testing.T, f *twitchtest.Server, code string, poll int) {
			if poll == 3 {
				mustDo(t, f.ApproveDevice(code, "900"))
			}
		}, wantPoll: 3, wantWait: []time.Duration{5 * time.Second, 5 * time.Second, 5 * time.Second}},
		{name: "denied", act: func(t *testing.T, f *twitchtest.Server, code string, poll int) {
			if poll == 2 {
				mustDo(t, f.DenyDevice(code))
			}
		}, wantCode: CodeDeviceDenied, wantPoll: 2},
		{name: "expired on Twitch", act: func(t *testing.T, f *twitchtest.Server, code string, poll int) {
			if poll == 2 {
				mustDo(t, f.ExpireDevice(code))
			}
		}, wantCode: CodeDeviceExpired, wantPoll: 2},
		{name: "never approved: expires locally", act: func(*testing.T, *twitchtest.Server, string, int) {},
			wantCode: CodeDeviceExpired, wantPoll: 359}, // 1800 s / 5 s, the last sleep reaches expiry
		{name: "slow_down widens the interval", short: true, act: func(t *testing.T, f *twitchtest.Server, code string, poll int) {
			if poll == 3 {
				mustDo(t, f.ApproveDevice(code, "900"))
			}
		}, wantPoll: 3, wantWait: []time.Duration{5 * time.Second, 5 * time.Second, 10 * time.Second}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			clock := &deviceClock{now: time.Date(2026, 12, 1, 20, 0, 0, 0, time.UTC)}
			f, err := twitchtest.New(twitchtest.Options{Now: clock.Now})
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			f.AddUser(twitchtest.User{ID: "900", Login: "bitbrat_bot"})
			a := NewOAuth(OAuthOptions{BaseURL: f.AuthBaseURL(), ClientID: f.ClientID()})
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()

			d, err := a.StartDeviceAuthorization(ctx, BotScopes())
			if err != nil {
				t.Fatal(err)
			}
			if d.Interval != 5 || d.ExpiresIn != 1800 || len(d.UserCode) != 8 || d.VerificationURI == "" {
				t.Fatalf("device authorization %+v", d)
			}
			var waits []time.Duration
			polls := 0
			tok, err := a.PollDeviceToken(ctx, d, DevicePoll{Now: clock.Now, Sleep: func(_ context.Context, w time.Duration) error {
				waits = append(waits, w)
				if tc.short && len(waits) == 2 {
					clock.advance(w / 2)
				} else {
					clock.advance(w)
				}
				polls++
				tc.act(t, f, d.UserCode, polls)
				return nil
			}})
			if got := f.DevicePolls(); got != tc.wantPoll {
				t.Errorf("%d polls reached the fake, want %d", got, tc.wantPoll)
			}
			if tc.wantWait != nil && !slices.Equal(waits, tc.wantWait) {
				t.Errorf("waits %v, want %v", waits, tc.wantWait)
			}
			if tc.wantCode != "" {
				var fe *fault.Error
				if !errors.As(err, &fe) || fe.Code != tc.wantCode || fe.Kind != fault.Auth || !IsDeviceFailure(err) {
					t.Fatalf("err %v, want Auth %s", err, tc.wantCode)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			v, err := a.ValidateToken(ctx, tok.AccessToken)
			if err != nil {
				t.Fatal(err)
			}
			if v.UserID != "900" || v.Login != "bitbrat_bot" || len(MissingScopes(BotScopes(), v.Scopes)) != 0 || tok.RefreshToken == "" {
				t.Errorf("validation %+v, refresh token set %v", v, tok.RefreshToken != "")
			}
			// The code is spent: a second poll is refused.
			if _, err := a.PollDeviceToken(ctx, d, DevicePoll{Now: clock.Now, Sleep: func(context.Context, time.Duration) error {
				clock.advance(5 * time.Second)
				return nil
			}}); !IsDeviceFailure(err) {
				t.Errorf("second redemption: %v, want DEVICE_CODE_EXPIRED", err)
			}
		})
	}
}

func TestMissingScopes(t *testing.T) {
	got := MissingScopes(BotScopes(), []string{"user:write:chat", "chat:read"})
	if !slices.Equal(got, []string{"moderator:read:followers", "user:manage:whispers", "user:read:moderated_channels"}) {
		t.Errorf("MissingScopes = %v", got)
	}
	if MissingScopes(BotScopes(), BotScopes()) != nil {
		t.Error("nothing should be missing")
	}
}

func mustDo(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Error(err)
	}
}
