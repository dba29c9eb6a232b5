package eventsub

import (
	"context"
	"sync"
	"time"

	"github.com/bitbrat/twitch-edge/shared/fault"
	"github.com/bitbrat/twitch-edge/shared/twitch"
)

// statusFailed marks a subscription the connector could not create.
const statusFailed = "failed"

// subscribeWindow is how long after a welcome subscriptions may still be created:
// Twitch closes an unused socket (4003) after ten seconds.
const subscribeWindow = 9 * time.Second

// subscribeAll creates every spec that is not revoked on the current session, at
// most four at a time, then removes orphaned subscriptions of earlier sessions. What
// failed is tried again with backoff for as long as the connection lives: a channel
// must not stay silent until the next reconnect.
func (s *Session) subscribeAll(ctx context.Context) {
	pending := s.subscribable()
	for round := 0; len(pending) > 0 && ctx.Err() == nil; round++ {
		if round > 0 {
			// 15 s, 30 s, 1 min, ... 5 min between rounds.
			wait := min(15*time.Second<<min(round-1, 5), 5*time.Minute)
			s.o.Log.Warn("eventsub: retrying failed subscriptions", "count", len(pending), "in", wait.String())
			select {
			case <-ctx.Done():
				return
			case <-time.After(wait):
			}
		}
		s.subscribeRound(ctx, pending, round == 0)
		pending = s.failed(pending)
	}
}

// subscribeRound creates specs on the current session. The first round must finish
// within Twitch's window; later ones have the connection's lifetime.
func (s *Session) subscribeRound(ctx context.Context, specs []Spec, first bool) {
	sessionID := s.currentSession()
	if sessionID == "" {
		return
	}
	if first {
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, s.o.Now().Add(subscribeWindow))
		defer cancel()
	}
	var (
		wg      sync.WaitGroup
		sem     = make(chan struct{}, 4)
		cleaned sync.Once
	)
	// On a limit error, also delete live subscriptions of ours on other sessions (a
	// zombie instance's): the lease says this instance is the only holder.
	// During a hand-off the other sessions' subscriptions are the other instance's.
	cleanup := func() { cleaned.Do(func() { s.cleanupOrphans(ctx, sessionID, !s.o.Overlap.Active()) }) }
	for _, sp := range specs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			s.subscribe(ctx, sessionID, sp, cleanup)
		}()
	}
	wg.Wait()
	if ctx.Err() != nil {
		return // the connection ended meanwhile
	}
	// Orphans (disabled subscriptions of dead sessions) count against Twitch's
	// limits until deleted; clear them now rather than when a limit is hit.
	cleaned.Do(func() { s.cleanupOrphans(ctx, sessionID, false) })
	st := s.Status()
	live := st.Live()
	s.o.Log.Info("eventsub: subscriptions created", "sessionId", sessionID, "ready", st.Ready,
		"count", live, "notLive", len(st.Subscriptions)-live)
}

// subscribable returns the specs not revoked for good.
func (s *Session) subscribable() []Spec {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Spec
	for _, sp := range s.o.Specs {
		if reason, revoked := s.revoked[sp.Key()]; revoked {
			s.o.Log.Warn("eventsub: not resubscribing a revoked subscription", "subscription", sp.Key(), "reason", reason)
			continue
		}
		out = append(out, sp)
	}
	return out
}

// nothingToSubscribe reports whether every spec is revoked for good.
func (s *Session) nothingToSubscribe() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.o.Specs) > 0 && len(s.revoked) >= len(s.o.Specs)
}

// failed returns those of specs whose last attempt failed (and are not revoked).
func (s *Session) failed(specs []Spec) []Spec {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Spec
	for _, sp := range specs {
		k := sp.Key()
		if _, revoked := s.revoked[k]; revoked {
			continue
		}
		if st, ok := s.subs[k]; !ok || st.Status == statusFailed {
			out = append(out, sp)
		}
	}
	return out
}

func (s *Session) currentSession() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.connected {
		return ""
	}
	return s.sessionID
}

// subscribe creates one subscription, retrying what can succeed within the window.
func (s *Session) subscribe(ctx context.Context, sessionID string, sp Spec, cleanup func()) {
	req := twitch.CreateSubscriptionRequest{
		Type: sp.Type, Version: sp.Version, Condition: sp.Condition,
		Transport: twitch.WebSocketTransport(sessionID),
	}
	for attempt := 1; ; attempt++ {
		res, err := s.o.Helix.CreateEventSubSubscription(ctx, req)
		if ctx.Err() != nil && err != nil {
			return // the connection (or the window) ended: nothing to record
		}
		if err == nil {
			s.mu.Lock()
			delete(s.retried, sp.Key())
			s.mu.Unlock()
			s.recordFor(sessionID, SubscriptionState{Key: sp.Key(), ID: res.ID, Type: sp.Type, Version: sp.Version,
				Condition: sp.Condition, SessionID: sessionID, Status: res.Status})
			s.o.Log.Info("eventsub: subscribed", "subscription", sp.Key(), "subscriptionId", res.ID,
				"status", res.Status, "totalCost", res.TotalCost, "maxTotalCost", res.MaxTotalCost)
			return
		}
		code := fault.CodeOf(err, "")
		switch {
		case code == twitch.CodeSubscriptionExists:
			// Same type and condition already on this session: it is there, which is
			// what we wanted.
			s.recordFor(sessionID, SubscriptionState{Key: sp.Key(), Type: sp.Type, Version: sp.Version,
				Condition: sp.Condition, SessionID: sessionID, Status: twitch.StatusEnabled})
			s.o.Log.Info("eventsub: subscription already exists", "subscription", sp.Key())
			return
		case (code == twitch.CodeTransportsLimit || code == twitch.CodeTotalCostLimit || code == twitch.CodeSubscriptionCountLimit) && attempt == 1:
			// Usually orphans of dead sessions: delete them and try once more.
			s.o.Log.Warn("eventsub: subscription limit hit, cleaning up orphaned subscriptions", "subscription", sp.Key(), "code", code)
			cleanup()
			continue
		case fault.Retryable(err) && attempt < 4:
			wait := fault.RetryAfter(err, s.o.Now())
			if wait == 0 {
				wait = time.Duration(attempt) * 300 * time.Millisecond
			}
			if dl, ok := ctx.Deadline(); ok && s.o.Now().Add(wait).After(dl) {
				break // no time left in the window: record the failure, a later round retries
			}
			select {
			case <-ctx.Done():
				return
			case <-time.After(wait):
				continue
			}
		}
		s.o.Metrics.SubscribeFailures.Inc()
		if s.revokedAgain(sp, err) {
			s.recordFor(sessionID, SubscriptionState{Key: sp.Key(), Type: sp.Type, Version: sp.Version, Condition: sp.Condition,
				SessionID: sessionID, Status: twitch.StatusAuthorizationRevoked, Reason: "still refused: " + err.Error()})
			s.o.Log.Warn("eventsub: revoked subscription still refused; next retry on the slow schedule or a new token",
				"subscription", sp.Key(), "code", code)
			return
		}
		s.recordFor(sessionID, SubscriptionState{Key: sp.Key(), Type: sp.Type, Version: sp.Version, Condition: sp.Condition,
			SessionID: sessionID, Status: statusFailed, Reason: err.Error()})
		s.o.Log.Error("eventsub: cannot subscribe", "subscription", sp.Key(), "code", code,
			"kind", fault.KindOf(err).String(), "error", err.Error(), "hint", hint(code))
		return
	}
}

// revokedAgain puts a spec back among the revoked when the retry of a revocation is
// refused for want of authorization: it waits for the slow schedule or a new token,
// not the quick rounds of ordinary failures.
func (s *Session) revokedAgain(sp Spec, err error) bool {
	k := fault.KindOf(err)
	if k != fault.Auth && k != fault.Permanent {
		return false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.retried[sp.Key()] {
		return false
	}
	delete(s.retried, sp.Key())
	s.revoked[sp.Key()] = twitch.StatusAuthorizationRevoked
	return true
}

// hint says what a person can do about a subscribe error.
func hint(code string) string {
	switch code {
	case twitch.CodeForbidden:
		return "the token lacks a scope or the bot is not a moderator of the channel (channel.follow needs moderator:read:followers)"
	case twitch.CodeUnauthorized:
		return "WebSocket subscriptions need a user access token; check TWITCH_CLIENT_ID matches the token"
	case twitch.CodeTransportsLimit:
		return "three WebSocket sessions with subscriptions already exist for this token; another connector may be running"
	case twitch.CodeTotalCostLimit, twitch.CodeSubscriptionCountLimit:
		return "too many subscriptions for this token; reduce TWITCH_CHANNELS or EVENTSUB_EXTRA_SUBSCRIPTIONS"
	}
	return ""
}

// recordFor records the outcome of a call made on sessionID, unless the session has
// changed meanwhile (the answer would describe a session that is gone).
func (s *Session) recordFor(sessionID string, st SubscriptionState) {
	s.mu.Lock()
	current := s.connected && s.sessionID == sessionID
	s.mu.Unlock()
	if current {
		s.record(context.Background(), st)
	}
}

func (s *Session) record(_ context.Context, st SubscriptionState) {
	st.UpdatedAt = s.o.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	if cur, ok := s.subs[st.Key]; ok && cur.ID == st.ID && twitch.RevocationIsFinal(cur.Status) && st.Status == twitch.StatusEnabled {
		return // a create's answer arriving after the revocation of the same subscription
	}
	s.subs[st.Key] = st
	if s.o.State != nil {
		s.enqueueRecord(func(ctx context.Context) error { return s.o.State.SubscriptionChanged(ctx, st) })
	}
}

// enqueueRecord hands a state write to the writer goroutine; it never blocks. Callers
// that must keep the order hold s.mu.
func (s *Session) enqueueRecord(w func(context.Context) error) {
	select {
	case s.records <- w:
	default:
		s.o.Log.Warn("eventsub: state writer behind, a state record was dropped")
	}
}

// writeRecords writes state changes in order until records is closed. When ctx ends
// (the session stops) what is still queued is abandoned, and a write in flight is cut
// short: the records are for operators and the next instance, and must not hold up a
// shutdown that has seconds to flush the relay and release the lease.
func (s *Session) writeRecords(ctx context.Context, done chan<- struct{}) {
	defer close(done)
	abandoned := 0
	for w := range s.records {
		if ctx.Err() != nil {
			abandoned++
			continue
		}
		wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		err := w(wctx)
		cancel()
		switch {
		case err == nil:
		case ctx.Err() != nil:
			abandoned++
		default:
			s.o.Log.Warn("eventsub: record connector state", "error", err.Error())
		}
	}
	if abandoned > 0 {
		s.o.Log.Warn("eventsub: session stopped with state records unwritten; abandoned", "records", abandoned)
	}
}

// cleanupOrphans deletes WebSocket subscriptions of other sessions that are disabled
// (they still count against the limits) and, with live, also the enabled ones of a
// type and condition this connector manages (a zombie instance's; only the lease
// holder runs this).
func (s *Session) cleanupOrphans(ctx context.Context, sessionID string, live bool) {
	list, err := s.o.Helix.ListEventSubSubscriptions(ctx, twitch.ListSubscriptionsFilter{})
	if err != nil {
		s.o.Log.Warn("eventsub: list subscriptions for clean-up", "error", err.Error())
		return
	}
	managed := make(map[string]bool, len(s.o.Specs))
	for _, sp := range s.o.Specs {
		managed[sp.Key()] = true
	}
	deleted := 0
	for _, sub := range list.Subscriptions {
		if sub.Transport.Method != "websocket" || sub.Transport.SessionID == sessionID {
			continue
		}
		key := Spec{Type: sub.Type, Version: sub.Version, Condition: sub.Condition}.Key()
		if sub.Status == twitch.StatusEnabled && (!live || !managed[key]) {
			continue // a live subscription: not ours to delete
		}
		if err := s.o.Helix.DeleteEventSubSubscription(ctx, sub.ID); err != nil && fault.CodeOf(err, "") != twitch.CodeNotFound {
			s.o.Log.Warn("eventsub: delete orphaned subscription", "subscriptionId", sub.ID, "error", err.Error())
			continue
		}
		deleted++
	}
	if deleted > 0 {
		s.o.Metrics.OrphansDeleted.Add(uint64(deleted))
		s.o.Log.Info("eventsub: orphaned subscriptions deleted", "count", deleted)
	}
}

// handleRevocation records a revoked subscription; permanent reasons stop
// resubscription.
func (s *Session) handleRevocation(ctx context.Context, frame []byte) {
	msg, err := twitch.DecodeMessage(frame)
	if err != nil {
		return
	}
	p, err := msg.Revocation()
	if err != nil {
		s.o.Log.Error("eventsub: unreadable revocation", "error", err.Error())
		return
	}
	sub := p.Subscription
	sp := Spec{Type: sub.Type, Version: sub.Version, Condition: sub.Condition}
	s.o.Metrics.Revocations.Inc()
	if twitch.RevocationIsFinal(sub.Status) {
		s.mu.Lock()
		s.revoked[sp.Key()] = sub.Status
		s.mu.Unlock()
	}
	s.record(ctx, SubscriptionState{Key: sp.Key(), ID: sub.ID, Type: sub.Type, Version: sub.Version,
		Condition: sub.Condition, SessionID: sub.Transport.SessionID, Status: sub.Status, Reason: "revoked by Twitch"})
	s.o.Log.Warn("eventsub: subscription revoked", "subscription", sp.Key(), "subscriptionId", sub.ID,
		"reason", sub.Status, "resubscribe", !twitch.RevocationIsFinal(sub.Status))
}
