package eventsub

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/coder/websocket"

	"github.com/bitbrat/twitch-edge/shared/fault"
	"github.com/bitbrat/twitch-edge/shared/twitch"
)

// Run connects and keeps reconnecting until ctx is cancelled. It returns ctx's error.
func (s *Session) Run(ctx context.Context) error {
	writerDone := make(chan struct{})
	go s.writeRecords(ctx, writerDone)
	defer func() {
		s.work.Wait()
		close(s.records)
		<-writerDone
	}()
	attempt := 0
	for {
		if s.nothingToSubscribe() {
			// Every subscription was revoked for good: a socket without subscriptions
			// would only be closed by Twitch (4003) over and over. Try again on a slow
			// schedule, or at once when the token changes.
			s.o.Log.Error("eventsub: every subscription is revoked; not connecting until the retry or a new token",
				"retryIn", s.o.RevokedRetry.String())
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(s.o.RevokedRetry):
			case <-s.retry:
			}
			s.unrevoke()
			s.o.Log.Info("eventsub: retrying revoked subscriptions")
			attempt = 0
			continue
		}
		started := s.o.Now()
		err := s.runConnection(ctx, s.o.URL)
		s.setConnected(false, "")
		if ctx.Err() != nil {
			return ctx.Err()
		}
		reason := reasonOf(err)
		s.o.Metrics.reconnect(reason)
		s.o.Log.Warn("eventsub: connection lost, reconnecting", "reason", reason, "error", errString(err))
		// A connection that lived a while earns an immediate retry; repeated quick
		// failures back off (jittered) so Twitch is not hammered.
		if s.o.Now().Sub(started) > time.Minute {
			attempt = 0
		}
		if attempt > 0 {
			d := backoff(attempt, s.o.MinBackoff, s.o.MaxBackoff)
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(d):
			}
		}
		attempt++
	}
}

func backoff(attempt int, lo, hi time.Duration) time.Duration {
	d := lo << min(attempt-1, 16)
	if d > hi || d <= 0 {
		d = hi
	}
	// Full jitter in [d/2, d].
	return d/2 + rand.N(d/2+1)
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// reasonOf names why a connection ended, for the reconnects metric.
func reasonOf(err error) string {
	switch {
	case errors.Is(err, errKeepalive):
		return "keepalive"
	case errors.Is(err, errNoWelcome):
		return "no_welcome"
	}
	switch websocket.CloseStatus(err) {
	case twitch.CloseInternalServerError:
		return "4000_server_error"
	case twitch.CloseClientSentInbound:
		return "4001_client_sent_inbound"
	case twitch.CloseFailedPingPong:
		return "4002_ping_pong"
	case twitch.CloseConnectionUnused:
		return "4003_unused"
	case twitch.CloseReconnectGrace:
		return "4004_reconnect_grace"
	case twitch.CloseNetworkTimeout:
		return "4005_network_timeout"
	case twitch.CloseNetworkError:
		return "4006_network_error"
	case twitch.CloseInvalidReconnect:
		return "4007_invalid_reconnect"
	case websocket.StatusNormalClosure, websocket.StatusGoingAway:
		return "closed_by_server"
	case -1:
		if err != nil && (fault.KindOf(err) != fault.Unknown) {
			return "dial_" + fault.KindOf(err).String()
		}
		return "dropped"
	}
	return fmt.Sprintf("close_%d", websocket.CloseStatus(err))
}
