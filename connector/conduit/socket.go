package conduit

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/coder/websocket"

	"github.com/bitbrat/twitch-edge/connector/eventsub"
	"github.com/bitbrat/twitch-edge/shared/twitch"
)

// shardConn is one WebSocket of a shard with its reader goroutine.
type shardConn struct {
	ws        *websocket.Conn
	session   twitch.Session
	welcomeAt time.Time
	keepalive time.Duration
	frames    chan frameRead
	done      chan struct{}
	closeOnce sync.Once
}

// close ends the socket and its reader.
func (c *shardConn) close() {
	c.closeOnce.Do(func() {
		close(c.done)
		c.ws.CloseNow()
	})
}

type frameRead struct {
	data []byte
	at   time.Time
	err  error
}

// dialShard connects to url, reads the welcome and starts the reader.
func dialShard(ctx context.Context, o *HolderOptions, url string) (*shardConn, error) {
	dctx, cancel := context.WithTimeout(ctx, o.WelcomeTimeout)
	defer cancel()
	ws, _, err := websocket.Dial(dctx, url, &websocket.DialOptions{HTTPClient: o.HTTPClient})
	if err != nil {
		return nil, fmt.Errorf("dial eventsub for shard %s: %w", o.ShardID, err)
	}
	ws.SetReadLimit(o.MaxFrameBytes)
	_, data, err := ws.Read(dctx)
	at := time.Now()
	if err != nil {
		ws.CloseNow()
		return nil, fmt.Errorf("shard %s: no session_welcome within %s: %w", o.ShardID, o.WelcomeTimeout, err)
	}
	msg, err := twitch.DecodeMessage(data)
	if err == nil && msg.Metadata.MessageType != twitch.MessageTypeWelcome {
		err = fmt.Errorf("first frame is %s, not a welcome", msg.Metadata.MessageType)
	}
	var sess *twitch.Session
	if err == nil {
		sess, err = msg.Session()
	}
	if err != nil {
		ws.CloseNow()
		return nil, fmt.Errorf("shard %s: %w", o.ShardID, err)
	}
	c := &shardConn{ws: ws, session: *sess, welcomeAt: at, keepalive: 10 * time.Second, frames: make(chan frameRead, 64), done: make(chan struct{})}
	if sess.KeepaliveTimeoutSeconds != nil && *sess.KeepaliveTimeoutSeconds > 0 {
		c.keepalive = time.Duration(*sess.KeepaliveTimeoutSeconds) * time.Second
	}
	go c.read(ctx)
	return c, nil
}

// read delivers frames until the socket fails; the last value carries the error.
func (c *shardConn) read(ctx context.Context) {
	defer close(c.frames)
	for {
		_, data, err := c.ws.Read(ctx)
		select {
		case c.frames <- frameRead{data: data, at: time.Now(), err: err}:
		case <-ctx.Done():
			return
		case <-c.done:
			return
		}
		if err != nil {
			return
		}
	}
}

var errKeepalive = errors.New("no message within the keepalive timeout")

// maxMovedPoll bounds the slowing handover poll of a draining holder.
const maxMovedPoll = 5 * time.Second

// serveShard reads the shard's socket until it fails (returned error) or Twitch
// asks for a reconnect that fails (the reconnect URL is returned to dial fresh).
// A successful reconnect is followed here: the old socket is drained, the new one
// read on, and the shard left alone (the session id does not change; should it,
// the shard is PATCHed again).
func serveShard(ctx context.Context, o *HolderOptions, c *shardConn, patched *string) (string, error) {
	var draining *shardConn
	defer func() {
		c.close()
		if draining != nil {
			draining.close()
		}
	}()
	watchdog := time.NewTimer(c.keepalive + c.keepalive/2)
	defer watchdog.Stop()
	check := time.NewTicker(o.CheckEvery)
	defer check.Stop()
	var drainTimer <-chan time.Time
	// handing is the handover poll, started once o.Drain closes: MovedPoll at first,
	// then slower (a holder whose lease was lost may read on for long, and every
	// look is a Helix call).
	var handing <-chan time.Time
	var handTimer *time.Timer
	poll := o.MovedPoll
	drain := o.Drain
	for {
		select {
		case <-ctx.Done():
			return "", ctx.Err()
		case <-drain:
			drain = nil
			handTimer = time.NewTimer(poll)
			defer handTimer.Stop()
			handing = handTimer.C
			o.Logger.Info("conduit shard draining: reading on until Twitch shows it on another session")
		case <-handing:
			if shardMoved(ctx, o, c.session.ID) {
				return "", errMoved
			}
			poll = min(2*poll, maxMovedPoll)
			handTimer.Reset(poll)
		case <-o.Recheck:
			if o.draining() {
				continue
			}
			if err := checkShard(ctx, o, c.session.ID, c.welcomeAt); err != nil {
				return "", err
			}
		case <-watchdog.C:
			return "", fmt.Errorf("%w (%s)", errKeepalive, c.keepalive)
		case <-check.C:
			if o.draining() {
				continue
			}
			if err := checkShard(ctx, o, c.session.ID, c.welcomeAt); err != nil {
				return "", err
			}
		case <-drainTimer:
			draining.close()
			draining, drainTimer = nil, nil
		case fr, ok := <-drainFrames(draining):
			if !ok || fr.err != nil {
				draining.close()
				draining, drainTimer = nil, nil
				continue
			}
			handleFrame(ctx, o, fr)
		case fr, ok := <-c.frames:
			if !ok {
				return "", errors.New("socket reader stopped")
			}
			if fr.err != nil {
				return "", fmt.Errorf("read: %w", fr.err)
			}
			watchdog.Reset(c.keepalive + c.keepalive/2)
			url := handleFrame(ctx, o, fr)
			if url == "" {
				continue
			}
			nc, err := dialShard(ctx, o, url)
			if err != nil {
				o.Logger.Warn("session_reconnect: the reconnect URL failed; dialing afresh", "error", err)
				return "", err
			}
			if nc.session.ID != *patched {
				if err := patchShard(ctx, o, nc.session.ID, nc.welcomeAt); err != nil {
					nc.close()
					return "", err
				}
				*patched = nc.session.ID
			}
			o.Logger.Info("session_reconnect followed; the shard keeps its session", "sessionId", nc.session.ID)
			if draining != nil {
				draining.close()
			}
			draining, c = c, nc
			drainTimer = time.After(o.ReconnectDrain)
			watchdog.Reset(c.keepalive + c.keepalive/2)
		}
	}
}

func drainFrames(c *shardConn) <-chan frameRead {
	if c == nil {
		return nil
	}
	return c.frames
}

// handleFrame acts on one frame; it returns the reconnect URL of a session_reconnect.
func handleFrame(ctx context.Context, o *HolderOptions, fr frameRead) string {
	f, err := eventsub.ParseFrame(fr.data, fr.at)
	if err != nil {
		o.Logger.Error("unreadable eventsub frame on conduit shard; dropped", "error", err, "bytes", len(fr.data))
		return ""
	}
	switch f.MessageType {
	case twitch.MessageTypeNotification:
		if err := o.Sink.Forward(ctx, f); err != nil {
			o.Logger.Error("notification not forwarded", "error", err, "messageId", f.MessageID, "type", f.SubscriptionType)
		}
	case twitch.MessageTypeKeepalive:
	case twitch.MessageTypeReconnect:
		msg, err := twitch.DecodeMessage(fr.data)
		var s *twitch.Session
		if err == nil {
			s, err = msg.Session()
		}
		if err != nil || s.ReconnectURL == nil || *s.ReconnectURL == "" {
			o.Logger.Error("session_reconnect without a usable reconnect_url; ignored (a drop reconnects afresh)", "error", err)
			return ""
		}
		return *s.ReconnectURL
	case twitch.MessageTypeRevocation:
		msg, err := twitch.DecodeMessage(fr.data)
		var p *twitch.RevocationPayload
		if err == nil {
			p, err = msg.Revocation()
		}
		if err != nil {
			o.Logger.Error("unreadable revocation on conduit shard", "error", err, "messageId", f.MessageID)
			return ""
		}
		o.Logger.Warn("subscription revoked", "subscriptionId", p.Subscription.ID, "type", p.Subscription.Type, "reason", p.Subscription.Status)
		if o.OnRevocation != nil {
			o.OnRevocation(ctx, p.Subscription)
		}
	default:
		o.Logger.Info("unknown eventsub message type on conduit shard; ignored", "messageType", f.MessageType, "messageId", f.MessageID)
	}
	return ""
}

// shardMoved reports whether Twitch lists the shard on a session other than ours
// (or not enabled on ours): a draining holder may then stop reading.
func shardMoved(ctx context.Context, o *HolderOptions, sessionID string) bool {
	cctx, cancel := context.WithTimeout(ctx, o.PatchWindow)
	shards, err := o.API.GetConduitShards(cctx, o.ConduitID, "")
	cancel()
	if err != nil {
		o.Logger.Warn("conduit shard status not read while draining; asking again", "error", err)
		return false
	}
	for _, s := range shards {
		if s.ID == o.ShardID {
			return s.Transport.SessionID != sessionID || s.Status != twitch.StatusEnabled
		}
	}
	return true
}

// checkShard reads the shard back and re-PATCHes it when Twitch disabled it or it
// points at another session (the socket is still ours and alive).
func checkShard(ctx context.Context, o *HolderOptions, sessionID string, welcomeAt time.Time) error {
	cctx, cancel := context.WithTimeout(ctx, o.PatchWindow)
	shards, err := o.API.GetConduitShards(cctx, o.ConduitID, "")
	cancel()
	if err != nil {
		o.Logger.Warn("conduit shard status not read; next check later", "error", err)
		return nil
	}
	for _, s := range shards {
		if s.ID != o.ShardID {
			continue
		}
		if s.Status == twitch.StatusEnabled && s.Transport.SessionID == sessionID {
			return nil
		}
		o.Logger.Warn("conduit shard found disabled or elsewhere; pointing it at our session again",
			"status", s.Status, "shardSession", s.Transport.SessionID, "sessionId", sessionID)
		return patchShard(ctx, o, sessionID, time.Now())
	}
	o.Logger.Warn("conduit shard not listed by Twitch (conduit shrunk or deleted)")
	return nil
}
