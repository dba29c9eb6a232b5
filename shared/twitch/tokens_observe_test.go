package twitch

import (
	"context"
	"sync"
	"testing"

	"github.com/bitbrat/twitch-edge/shared/twitch/twitchtest"
)

// Each refresh's outcome reaches OnRefresh (the token-refresh metric): "ok", or the
// error's code.
func TestRefreshOutcomesAreReported(t *testing.T) {
	for _, tc := range []struct {
		name  string
		setup func(f *fixture)
		want  string
	}{
		{"refreshed", func(f *fixture) { f.fake.ExpireToken(botAccess) }, "ok"},
		{"revoked refresh token", func(f *fixture) { f.fake.RevokeToken(botAccess) }, CodeTokenRevoked},
		{"no refresh token stored", func(f *fixture) {
			f.fake.ExpireToken(botAccess)
			f.store.tok.RefreshToken = ""
		}, CodeTokenNotRefreshable},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, twitchtest.Options{})
			f.provider.o.ValidateEvery = -1
			var (
				mu  sync.Mutex
				got []string
			)
			f.provider.o.OnRefresh = func(_ context.Context, outcome string) {
				mu.Lock()
				got = append(got, outcome)
				mu.Unlock()
			}
			tc.setup(f)
			_, _ = f.client.GetUsers(context.Background(), []string{"brat"}, nil)
			mu.Lock()
			defer mu.Unlock()
			if len(got) != 1 || got[0] != tc.want {
				t.Errorf("outcomes %v, want [%s]", got, tc.want)
			}
		})
	}
}
