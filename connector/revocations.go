package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/bitbrat/twitch-edge/connector/eventsub"
	"github.com/bitbrat/twitch-edge/shared/store"
	"github.com/bitbrat/twitch-edge/shared/twitch"
)

// loadRevoked reads the subscriptions an earlier instance recorded as revoked for
// good, so that a restart does not ask Twitch for them again at once.
func (a *App) loadRevoked(ctx context.Context) map[string]string {
	ctx, cancel := context.WithTimeout(ctx, preloadTimeout)
	defer cancel()
	subs, err := a.state.Subscriptions(ctx)
	if err != nil {
		a.log.Warn("connector: could not read recorded revocations", "host", firestoreHost(a.cfg), "error", err.Error())
		return nil
	}
	known := make(map[string]bool, len(a.specs))
	for _, sp := range a.specs {
		known[sp.Key()] = true
	}
	out := map[string]string{}
	for _, sub := range subs {
		if known[sub.Key] && twitch.RevocationIsFinal(sub.Status) {
			out[sub.Key] = sub.Status
		}
	}
	if len(out) > 0 {
		a.log.Warn("connector: subscriptions revoked earlier are not requested until the retry or a new token",
			"count", len(out), "retryEvery", a.cfg.RevokedRetry.String())
	}
	return out
}

// watchToken tells the session when the bot's token document changes (someone
// re-authorized): revoked subscriptions are worth trying again then.
func (a *App) watchToken(ctx context.Context, s *eventsub.Session) {
	tokens := store.NewTokenStore(a.deps.Firestore)
	last := ""
	t := time.NewTicker(a.cfg.TokenCheck)
	defer t.Stop()
	for first := true; ; first = false {
		tctx, cancel := context.WithTimeout(ctx, a.cfg.TokenCheck)
		tok, err := tokens.LoadToken(tctx, twitch.RoleBot)
		cancel()
		if err == nil {
			sum := sha256.Sum256([]byte(tok.AccessToken))
			fp := hex.EncodeToString(sum[:])
			if !first && fp != last {
				a.log.Info("connector: the bot's token changed; retrying revoked subscriptions")
				s.RetryRevoked()
			}
			last = fp
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func revokedSummary(revoked map[string]string) string {
	reasons := map[string]int{}
	for _, r := range revoked {
		reasons[r]++
	}
	parts := make([]string, 0, len(reasons))
	for r, n := range reasons {
		parts = append(parts, fmt.Sprintf("%d %s", n, r))
	}
	sort.Strings(parts)
	return strings.Join(parts, ", ")
}
