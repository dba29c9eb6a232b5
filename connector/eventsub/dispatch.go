package eventsub

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/bitbrat/twitch-edge/shared/twitch"
)

// handleFrame acts on one frame. It returns the reconnect URL of a
// session_reconnect, or an error that ends the connection (a sink that stopped).
func (s *Session) handleFrame(ctx context.Context, r readResult) (string, error) {
	f, err := ParseFrame(r.data, r.at)
	if err != nil {
		// Twitch sent something we cannot read: say so, keep the socket.
		s.o.Metrics.BadFrames.Inc()
		s.o.Log.Error("eventsub: unreadable frame", "error", err.Error(), "bytes", len(r.data))
		return "", nil
	}
	switch f.MessageType {
	case twitch.MessageTypeKeepalive:
		s.o.Metrics.Keepalives.Inc()
	case twitch.MessageTypeNotification:
		switch s.o.Window.Check(f.MessageID, f.MessageTimestamp, r.at) {
		case Duplicate:
			s.o.Metrics.Duplicates.Inc()
			s.o.Log.Debug("eventsub: duplicate notification dropped", "eventsubMessageId", f.MessageID)
			return "", nil
		case Stale:
			s.o.Metrics.Stale.Inc()
			s.o.Log.Warn("eventsub: stale notification dropped", "eventsubMessageId", f.MessageID,
				"messageTimestamp", f.MessageTimestamp, "subscriptionType", f.SubscriptionType)
			return "", nil
		}
		s.o.Metrics.Notifications.Inc()
		f.Overlap = s.o.Overlap.Active()
		if err := s.o.Sink.Forward(ctx, f); err != nil {
			return "", fmt.Errorf("forward notification %s: %w", f.MessageID, err)
		}
	case twitch.MessageTypeReconnect:
		msg, err := twitch.DecodeMessage(r.data)
		if err != nil {
			return "", nil
		}
		sess, err := msg.Session()
		if err != nil || sess.ReconnectURL == nil || *sess.ReconnectURL == "" {
			s.o.Log.Error("eventsub: session_reconnect without reconnect_url", "error", errString(err))
			return "", nil
		}
		s.o.Log.Info("eventsub: session_reconnect, handing over", "sessionId", sess.ID)
		return *sess.ReconnectURL, nil
	case twitch.MessageTypeRevocation:
		s.handleRevocation(ctx, r.data)
	case twitch.MessageTypeWelcome:
		// Only the first frame of a socket is a welcome; dial reads it. Another one
		// is unexpected but harmless.
		s.o.Log.Warn("eventsub: unexpected session_welcome mid-session")
	default:
		s.o.Log.Warn("eventsub: unknown message type ignored", "messageType", f.MessageType)
	}
	return "", nil
}

// drainFrames forwards the frames already read when a connection ends (Twitch will
// not send them again), until every reader has returned. Forwarding is bounded in
// time: on shutdown the relay may be full.
func (s *Session) drainFrames(parent context.Context, frames chan readResult, readers *sync.WaitGroup) {
	done := make(chan struct{})
	go func() { readers.Wait(); close(done) }()
	ctx, cancel := context.WithTimeout(context.WithoutCancel(parent), 5*time.Second)
	defer cancel()
	handle := func(r readResult) {
		if r.err == nil {
			if _, err := s.handleFrame(ctx, r); err != nil {
				s.o.Log.Error("eventsub: frame read before the connection ended could not be forwarded", "error", err.Error())
			}
		}
	}
	for {
		select {
		case r := <-frames:
			handle(r)
		case <-done:
			for {
				select {
				case r := <-frames:
					handle(r)
				default:
					return
				}
			}
		}
	}
}
