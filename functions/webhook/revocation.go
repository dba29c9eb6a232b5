package webhook

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"sort"
	"strings"

	"github.com/bitbrat/twitch-edge/shared/store"
	"github.com/bitbrat/twitch-edge/shared/twitch"
)

// revocation records a revoked subscription as the connector records the ones it
// reads on the WebSocket (connector/eventsub/subscriptions/{key}, status = Twitch's
// reason) and logs it at WARNING. Twitch sends a revocation once: a Firestore failure
// answers 503 so that it is retried rather than lost.
func (s *Service) revocation(ctx context.Context, w http.ResponseWriter, m *Message, log *slog.Logger) {
	var p struct {
		Subscription twitch.Subscription `json:"subscription"`
	}
	if err := json.Unmarshal(m.Body, &p); err != nil || p.Subscription.Type == "" {
		log.WarnContext(ctx, "webhook: revocation without a readable subscription, acknowledged", "bodyBytes", len(m.Body))
		w.WriteHeader(http.StatusNoContent)
		return
	}
	sub := p.Subscription
	key := SubscriptionKey(sub.Type, sub.Version, sub.Condition)
	log.WarnContext(ctx, "webhook: subscription revoked", "subscription", key, "subscriptionId", sub.ID,
		"reason", sub.Status, "transport", sub.Transport.Method)
	cctx, cancel := context.WithTimeout(ctx, s.storeWait())
	defer cancel()
	err := s.Revocations.SaveSubscription(cctx, store.Subscription{
		Key: key, ID: sub.ID, Type: sub.Type, Version: sub.Version, Condition: sub.Condition,
		SessionID: sub.Transport.SessionID, Status: sub.Status, Reason: "revoked by Twitch (webhook)", UpdatedAt: s.Now(),
	})
	if err != nil {
		log.ErrorContext(ctx, "webhook: cannot record the revocation, answering 503 so Twitch retries", "error", err.Error())
		unavailable(w)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// SubscriptionKey is the connector's key of a subscription ("type@version k=v ...",
// condition keys sorted), so a revocation by either transport lands on one record.
func SubscriptionKey(typ, version string, condition map[string]string) string {
	keys := make([]string, 0, len(condition))
	for k := range condition {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	b.WriteString(typ + "@" + version)
	for _, k := range keys {
		b.WriteString(" " + k + "=" + condition[k])
	}
	return b.String()
}
