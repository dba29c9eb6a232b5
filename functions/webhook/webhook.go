// Package webhook is the EventSubWebhook function: the webhook transport of EventSub
// (a conduit's webhook shard, or a plain webhook subscription). Twitch POSTs each
// message to it; it checks Twitch's signature, answers the callback verification,
// publishes notifications to the raw topic in the shape the connector forwards from
// the WebSocket, and records revocations (with a status event). Twitch retries what is not answered 2xx
// within a few seconds, so every wait here is bounded and a repeat message id is
// acknowledged without publishing again.
package webhook

import (
	"context"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/bitbrat/twitch-edge/shared/config"
	"github.com/bitbrat/twitch-edge/shared/store"
)

// Pending is a publish in flight (*bus.Result).
type Pending interface {
	Ready() <-chan struct{}
	Get(ctx context.Context) (string, error)
}

// Publisher starts a publish and returns at once.
type Publisher interface {
	PublishAsync(ctx context.Context, topic string, data []byte, attrs map[string]string) Pending
}

// Claims dedupe message ids (store.WebhookMessages).
type Claims interface {
	Claim(ctx context.Context, messageID, owner string, lease time.Duration) (store.Claim, error)
	Complete(ctx context.Context, messageID, owner, result string) error
	Release(ctx context.Context, messageID, owner string) error
}

// Revocations records revoked subscriptions (store.ConnectorState, as the connector
// records the revocations it reads on the WebSocket).
type Revocations interface {
	SaveSubscription(ctx context.Context, sub store.Subscription) error
}

// ConduitRevocations records revocations of conduit subscriptions
// (store.ConduitStore), which the conduit reconciler does not recreate.
type ConduitRevocations interface {
	RecordRevocation(ctx context.Context, r store.Revocation) error
}

// Service is the function's logic; its zero durations take the defaults below.
type Service struct {
	Secret      config.Secret
	Pub         Publisher
	Claims      Claims
	Revocations Revocations
	// ConduitRevocations, when set, also records final revocations of conduit
	// subscriptions for the conduit reconciler.
	ConduitRevocations ConduitRevocations
	// RawTopic is the raw notification topic (prefix applied).
	RawTopic string
	// IngressTopic is internal.ingress.v1 (prefix applied), where a revocation's
	// connector.status.changed event goes; "" publishes none.
	IngressTopic string
	// PublishWait bounds the wait for Pub/Sub's acknowledgement (default 3 s): Twitch
	// gives a callback a few seconds, and a 5xx makes it retry.
	PublishWait time.Duration
	// StoreWait bounds each Firestore call (default 1.5 s).
	StoreWait time.Duration
	// Lease is how long a claim keeps other requests for the same message id away
	// (default 30 s; a claim's holder answers within PublishWait plus StoreWaits).
	Lease time.Duration
	// Owner names this instance in claims; each request adds a unique suffix.
	Owner string
	Now   func() time.Time
	Log   *slog.Logger

	mu sync.Mutex
	// inflight are publishes that outlived their request's wait: a retry of the same
	// message on this instance waits for that publish instead of publishing again.
	inflight map[string]Pending
}

func (s *Service) publishWait() time.Duration { return orDefault(s.PublishWait, 3*time.Second) }
func (s *Service) storeWait() time.Duration   { return orDefault(s.StoreWait, 1500*time.Millisecond) }
func (s *Service) lease() time.Duration       { return orDefault(s.Lease, 30*time.Second) }

func orDefault(d, def time.Duration) time.Duration {
	if d > 0 {
		return d
	}
	return def
}

// ServeHTTP answers one request from Twitch.
func (s *Service) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	m, err := Read(r, w, []byte(s.Secret.Reveal()), s.Now())
	if err != nil {
		rf, _ := err.(*Refusal)
		if rf == nil {
			rf = &Refusal{Status: http.StatusBadRequest, Reason: err.Error()}
		}
		s.Log.WarnContext(ctx, "webhook: request refused", "status", rf.Status, "reason", rf.Reason,
			"remote", r.RemoteAddr, "messageType", r.Header.Get(HeaderMessageType))
		http.Error(w, http.StatusText(rf.Status), rf.Status)
		return
	}
	log := s.Log.With("eventsubMessageId", m.ID, "messageType", m.Type, "subscriptionType", m.SubscriptionType, "retry", m.Retry)
	switch m.Type {
	case TypeVerification:
		s.verify(ctx, w, m, log)
	case TypeNotification:
		s.notification(ctx, w, m, log)
	case TypeRevocation:
		s.revocation(ctx, w, m, log)
	default:
		// Signed by Twitch, so not an attack: a message type this code does not know.
		// Failing it would only make Twitch retry and revoke the callback.
		log.WarnContext(ctx, "webhook: unknown message type, acknowledged and ignored")
		w.WriteHeader(http.StatusNoContent)
	}
}

func (s *Service) verify(ctx context.Context, w http.ResponseWriter, m *Message, log *slog.Logger) {
	challenge, err := m.Challenge()
	if err != nil {
		log.WarnContext(ctx, "webhook: verification refused", "reason", err.Error())
		http.Error(w, http.StatusText(http.StatusBadRequest), http.StatusBadRequest)
		return
	}
	log.InfoContext(ctx, "webhook: callback verification answered")
	w.Header().Set("Content-Type", "text/plain")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write([]byte(challenge))
}

// notification publishes one notification once: claim the message id (one
// create-if-absent write), publish, wait a bounded time for the acknowledgement, mark
// the claim done. Anything that cannot finish in time answers 503 so Twitch retries.
func (s *Service) notification(ctx context.Context, w http.ResponseWriter, m *Message, log *slog.Logger) {
	frame, err := Frame(m)
	var attrs map[string]string
	if err == nil {
		attrs, err = Attributes(frame)
	}
	if err != nil {
		log.WarnContext(ctx, "webhook: notification refused, not a readable frame", "error", err.Error())
		http.Error(w, http.StatusText(http.StatusBadRequest), http.StatusBadRequest)
		return
	}
	owner := s.Owner + "/" + uuid.NewString()
	cctx, cancel := context.WithTimeout(ctx, s.storeWait())
	claim, err := s.Claims.Claim(cctx, m.ID, owner, s.lease())
	cancel()
	if err != nil {
		log.ErrorContext(ctx, "webhook: cannot claim the message id, answering 503 so Twitch retries", "error", err.Error())
		unavailable(w)
		return
	}
	switch claim.State {
	case store.Completed:
		log.InfoContext(ctx, "webhook: duplicate notification, already published", "rawMessageId", claim.Result)
		w.WriteHeader(http.StatusNoContent)
		return
	case store.Held:
		log.WarnContext(ctx, "webhook: notification being published by another request, answering 503 so Twitch retries",
			"holder", claim.Owner, "leaseUntil", claim.LeaseUntil.Format(time.RFC3339))
		unavailable(w)
		return
	}
	p := s.startPublish(m.ID, frame, attrs)
	timer := time.NewTimer(s.publishWait())
	defer timer.Stop()
	select {
	case <-p.Ready():
	case <-timer.C:
		log.ErrorContext(ctx, "webhook: Pub/Sub did not acknowledge in time, answering 503 so Twitch retries",
			"wait", s.publishWait().String(), "topic", s.RawTopic)
		s.release(ctx, m.ID, owner, log)
		go s.watch(m.ID, p, log)
		unavailable(w)
		return
	case <-ctx.Done():
		log.WarnContext(ctx, "webhook: request ended while waiting for Pub/Sub", "error", ctx.Err().Error())
		s.release(ctx, m.ID, owner, log)
		go s.watch(m.ID, p, log)
		return
	}
	s.forget(m.ID, p)
	id, err := p.Get(ctx)
	if err != nil {
		log.ErrorContext(ctx, "webhook: publish failed, answering 503 so Twitch retries", "error", err.Error(), "topic", s.RawTopic)
		s.release(ctx, m.ID, owner, log)
		unavailable(w)
		return
	}
	cctx, cancel = context.WithTimeout(context.WithoutCancel(ctx), s.storeWait())
	defer cancel()
	if err := s.Claims.Complete(cctx, m.ID, owner, id); err != nil {
		// Published: acknowledge. A redelivery after the lease would publish again,
		// which Normalize's own ledger dedupes by the same message id.
		log.WarnContext(ctx, "webhook: published but the claim could not be completed", "error", err.Error())
	}
	log.DebugContext(ctx, "webhook: notification published", "rawMessageId", id)
	w.WriteHeader(http.StatusNoContent)
}

// startPublish publishes the frame, or returns the publish of the same message that
// an earlier request on this instance left in flight.
func (s *Service) startPublish(messageID string, frame []byte, attrs map[string]string) Pending {
	s.mu.Lock()
	defer s.mu.Unlock()
	if p, ok := s.inflight[messageID]; ok {
		return p
	}
	if s.inflight == nil {
		s.inflight = map[string]Pending{}
	}
	// The publish is not tied to the request: the client keeps sending it after a
	// 503, and the watch or a retry collects its result.
	p := s.Pub.PublishAsync(context.Background(), s.RawTopic, frame, attrs)
	s.inflight[messageID] = p
	return p
}

func (s *Service) forget(messageID string, p Pending) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.inflight[messageID] == p {
		delete(s.inflight, messageID)
	}
}

// watchLimit bounds how long a publish that outlived its request is watched (the
// Pub/Sub client gives up on its own before: its publish timeout is 60 s).
const watchLimit = 2 * time.Minute

// watch waits for a publish that outlived its request: when it is acknowledged, the
// message id is marked done, so that Twitch's retry (on any instance) does not
// publish it again.
func (s *Service) watch(messageID string, p Pending, log *slog.Logger) {
	log.Info("webhook: waiting for a publish that outlived its request", "limit", watchLimit.String())
	timer := time.NewTimer(watchLimit)
	defer timer.Stop()
	select {
	case <-p.Ready():
	case <-timer.C:
		log.Error("webhook: publish still unacknowledged, no longer watched", "limit", watchLimit.String())
		s.forget(messageID, p)
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), s.storeWait())
	defer cancel()
	id, err := p.Get(ctx)
	if err != nil {
		s.forget(messageID, p)
		log.Warn("webhook: late publish failed; Twitch's retry publishes again", "error", err.Error())
		return
	}
	// Kept a while: a retry that claimed the message before the Complete below
	// finds this publish done instead of publishing a second copy.
	time.AfterFunc(s.lease(), func() { s.forget(messageID, p) })
	if err := s.Claims.Complete(ctx, messageID, s.Owner+"/late", id); err != nil {
		log.Warn("webhook: late publish acknowledged but not recorded", "error", err.Error(), "rawMessageId", id)
		return
	}
	log.Info("webhook: late publish acknowledged", "rawMessageId", id)
}

func (s *Service) release(ctx context.Context, messageID, owner string, log *slog.Logger) {
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.storeWait())
	defer cancel()
	if err := s.Claims.Release(cctx, messageID, owner); err != nil {
		log.WarnContext(ctx, "webhook: cannot release the claim; Twitch's retry waits for its lease", "error", err.Error(),
			"lease", s.lease().String())
	}
}

func unavailable(w http.ResponseWriter) {
	w.Header().Set("Retry-After", "1")
	http.Error(w, http.StatusText(http.StatusServiceUnavailable), http.StatusServiceUnavailable)
}
