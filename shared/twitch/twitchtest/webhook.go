package twitchtest

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"time"
)

// Twitch's webhook headers.
const (
	HeaderMessageID           = "Twitch-Eventsub-Message-Id"
	HeaderMessageRetry        = "Twitch-Eventsub-Message-Retry"
	HeaderMessageType         = "Twitch-Eventsub-Message-Type"
	HeaderMessageSignature    = "Twitch-Eventsub-Message-Signature"
	HeaderMessageTimestamp    = "Twitch-Eventsub-Message-Timestamp"
	HeaderSubscriptionType    = "Twitch-Eventsub-Subscription-Type"
	HeaderSubscriptionVersion = "Twitch-Eventsub-Subscription-Version"
)

// WebhookSignature is Twitch's signature of a webhook message: "sha256=" + hex
// HMAC-SHA256(secret, message id + timestamp + body). Tests of receivers use it to
// forge valid (or invalid) requests.
func WebhookSignature(secret, messageID, timestamp string, body []byte) string {
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte(messageID))
	mac.Write([]byte(timestamp))
	mac.Write(body)
	return "sha256=" + hex.EncodeToString(mac.Sum(nil))
}

// webhookMessage is one POST to a callback.
type webhookMessage struct {
	callback, secret    string
	id, typ             string
	subType, subVersion string
	ts                  time.Time
	retry               int
	body                []byte
}

// postWebhook sends one message and returns the status and body (bounded).
func (s *Server) postWebhook(m webhookMessage) (int, []byte, error) {
	ctx, cancel := context.WithTimeout(s.ctx, s.o.WebhookTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, m.callback, bytes.NewReader(m.body))
	if err != nil {
		return 0, nil, err
	}
	ts := m.ts.UTC().Format(time.RFC3339Nano)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(HeaderMessageID, m.id)
	req.Header.Set(HeaderMessageRetry, strconv.Itoa(m.retry))
	req.Header.Set(HeaderMessageType, m.typ)
	req.Header.Set(HeaderMessageTimestamp, ts)
	req.Header.Set(HeaderMessageSignature, WebhookSignature(m.secret, m.id, ts, m.body))
	req.Header.Set(HeaderSubscriptionType, m.subType)
	req.Header.Set(HeaderSubscriptionVersion, m.subVersion)
	resp, err := s.o.WebhookClient.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	return resp.StatusCode, b, nil
}

// deliverWebhook posts a notification, retrying on the same callback (same message
// id, Retry header counting up) up to WebhookRetries times; true when one attempt got
// a 2xx.
func (s *Server) deliverWebhook(callback, secret string, n conduitNote) bool {
	for try := 0; try <= s.o.WebhookRetries; try++ {
		status, _, err := s.postWebhook(webhookMessage{callback: callback, secret: secret, id: n.id, typ: "notification",
			subType: n.sub.Type, subVersion: n.sub.Version, ts: n.ts, retry: try, body: n.body})
		if err == nil && status >= 200 && status < 300 {
			return true
		}
		if s.ctx.Err() != nil {
			return false
		}
	}
	return false
}

// startVerificationLocked sends webhook_callback_verification to a shard's new
// callback in the background: the shard is enabled when the callback answers 200
// with the challenge as its whole body, else its verification failed. The body is
// Twitch's verification shape, with a subscription object standing for the shard.
func (s *Server) startVerificationLocked(cd *conduit, sh *shard) {
	if s.closed {
		return
	}
	cb, secret := sh.callback, sh.secret
	challenge := newID()
	now := s.o.Now()
	body, _ := json.Marshal(map[string]any{
		"challenge": challenge,
		"subscription": map[string]any{
			"id": cd.id + "/" + strconv.Itoa(sh.id), "status": ShardVerificationPending, "type": "conduit.shard", "version": "1",
			"condition":  map[string]string{"conduit_id": cd.id, "shard_id": strconv.Itoa(sh.id)},
			"transport":  map[string]string{"method": "webhook", "callback": cb},
			"created_at": now.UTC().Format(time.RFC3339Nano), "cost": 0,
		},
	})
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		status, got, err := s.postWebhook(webhookMessage{callback: cb, secret: secret, id: newID(),
			typ: "webhook_callback_verification", subType: "conduit.shard", subVersion: "1", ts: now, body: body})
		ok := err == nil && status == http.StatusOK && string(got) == challenge
		s.mu.Lock()
		defer s.mu.Unlock()
		if s.conduits[cd.id] != cd || sh.callback != cb || sh.status != ShardVerificationPending {
			return
		}
		if ok {
			sh.status = ShardEnabled
			s.checkDoomLocked(cd)
			return
		}
		s.disableShardLocked(cd, sh, ShardVerificationFailed)
	}()
}
