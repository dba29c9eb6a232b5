package webhook

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"sort"
	"strings"
	"time"

	"github.com/bitbrat/twitch-edge/shared/event"
	"github.com/bitbrat/twitch-edge/shared/store"
	"github.com/bitbrat/twitch-edge/shared/twitch"
)

// revocation records a revoked subscription as the connector records the ones it
// reads on the WebSocket (connector/eventsub/subscriptions/{key}, status = Twitch's
// reason), and, for a conduit subscription revoked for good, as the conduit
// reconciler records the ones it reads on a shard (conduits/{name}/revocations), so
// that it is not recreated in a loop. It logs it at WARNING and publishes a
// connector.status.changed event (subject "subscription", CONNECTED → ERROR) to
// internal.ingress.v1. Twitch sends a revocation once: a Firestore or Pub/Sub
// failure answers 503 so that it is retried rather than lost (a retry writes the
// same records again and may repeat the status event).
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
	log = log.With("subscription", key, "subscriptionId", sub.ID, "reason", sub.Status, "transport", sub.Transport.Method)
	log.WarnContext(ctx, "webhook: subscription revoked")
	if err := s.recordRevocation(ctx, key, sub); err != nil {
		log.ErrorContext(ctx, "webhook: cannot record the revocation, answering 503 so Twitch retries", "error", err.Error())
		unavailable(w)
		return
	}
	if err := s.publishStatus(ctx, revokedStatus(s.Owner, sub, s.Now())); err != nil {
		log.ErrorContext(ctx, "webhook: cannot publish the revocation's status event, answering 503 so Twitch retries",
			"error", err.Error(), "topic", s.IngressTopic)
		unavailable(w)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *Service) recordRevocation(ctx context.Context, key string, sub twitch.Subscription) error {
	cctx, cancel := context.WithTimeout(ctx, s.storeWait())
	defer cancel()
	err := s.Revocations.SaveSubscription(cctx, store.Subscription{
		Key: key, ID: sub.ID, Type: sub.Type, Version: sub.Version, Condition: sub.Condition,
		SessionID: sub.Transport.SessionID, Status: sub.Status, Reason: "revoked by Twitch (webhook)", UpdatedAt: s.Now(),
	})
	if err != nil {
		return err
	}
	if s.ConduitRevocations == nil || sub.Transport.Method != "conduit" || !twitch.RevocationIsFinal(sub.Status) {
		return nil
	}
	cctx, cancel = context.WithTimeout(ctx, s.storeWait())
	defer cancel()
	return s.ConduitRevocations.RecordRevocation(cctx, store.Revocation{Key: key, Type: sub.Type, Reason: sub.Status, RevokedAt: s.Now()})
}

// revokedStatus is the status event of a revocation: the subscription went from
// serving (CONNECTED) to revoked (ERROR).
func revokedStatus(instance string, sub twitch.Subscription, at time.Time) event.ConnectorStatus {
	st := event.NewConnectorStatus(instance, "subscription", event.StateConnected, event.StateError, at)
	st.SubscriptionID, st.SubscriptionType = sub.ID, sub.Type
	st.BroadcasterID = sub.Condition["broadcaster_user_id"]
	st.Reason = sub.Status
	st.Details = map[string]any{"transport": sub.Transport.Method, "version": sub.Version, "via": "webhook"}
	if sub.Transport.ConduitID != "" {
		st.Details["conduitId"] = sub.Transport.ConduitID
	}
	return st
}

// publishStatus publishes a status event to internal.ingress.v1 and waits, bounded,
// for Pub/Sub's acknowledgement. Without an IngressTopic it does nothing.
func (s *Service) publishStatus(ctx context.Context, st event.ConnectorStatus) error {
	if s.IngressTopic == "" {
		return nil
	}
	data, err := json.Marshal(st)
	if err != nil {
		return fmt.Errorf("encode status event: %w", err)
	}
	cctx, cancel := context.WithTimeout(ctx, s.publishWait())
	defer cancel()
	p := s.Pub.PublishAsync(cctx, s.IngressTopic, data, event.StatusAttributes())
	select {
	case <-p.Ready():
	case <-cctx.Done():
		return fmt.Errorf("status event not acknowledged within %s: %w", s.publishWait(), cctx.Err())
	}
	if _, err := p.Get(cctx); err != nil {
		return fmt.Errorf("publish status event: %w", err)
	}
	return nil
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
