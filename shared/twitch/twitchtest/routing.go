package twitchtest

import (
	"encoding/json"
	"errors"
	"hash/fnv"
	"slices"
	"strconv"
	"time"
)

// ErrNoConduit is returned for an unknown conduit or shard.
var ErrNoConduit = errors.New("twitchtest: no such conduit or shard")

// ConduitDelivery records how the fake routed one notification of a conduit
// subscription: the shard it targeted, the one other shard it retried on (if the
// target did not take it), and where it landed — or that it was lost, which is what
// Twitch would have dropped.
type ConduitDelivery struct {
	MessageID      string `json:"message_id"`
	SubscriptionID string `json:"subscription_id"`
	ConduitID      string `json:"conduit_id"`
	Target         string `json:"target"`
	// Retry is the other shard tried, "" when there was no retry (delivered to the
	// target, a webhook target, or a conduit of one shard).
	Retry string `json:"retry,omitempty"`
	// DeliveredTo is the shard that took it, "" when lost.
	DeliveredTo string `json:"delivered_to,omitempty"`
	Lost        bool   `json:"lost"`
}

// ConduitDeliveries returns every routing record, oldest first.
func (s *Server) ConduitDeliveries() []ConduitDelivery {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.conduitLog)
}

// ConduitDeliveryCount is len(ConduitDeliveries()) without the copy.
func (s *Server) ConduitDeliveryCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.conduitLog)
}

// LostNotifications returns the records of notifications no shard took.
func (s *Server) LostNotifications() []ConduitDelivery {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []ConduitDelivery
	for _, d := range s.conduitLog {
		if d.Lost {
			out = append(out, d)
		}
	}
	return out
}

func hash32(s string) uint32 {
	h := fnv.New32a()
	_, _ = h.Write([]byte(s))
	return h.Sum32()
}

// targetShard picks a subscription's shard: stable per broadcaster (per condition
// for types without one), whether that shard is enabled or not.
func targetShard(x *Subscription, n int) int {
	key := x.Condition["broadcaster_user_id"]
	if key == "" {
		keys := make([]string, 0, len(x.Condition))
		for k, v := range x.Condition {
			keys = append(keys, k+"="+v)
		}
		slices.Sort(keys)
		for _, k := range keys {
			key += k + ";"
		}
	}
	return int(hash32(key) % uint32(n))
}

// retryShard is the one other shard a notification is retried on, spread over the
// other shards by message id.
func retryShard(target int, messageID string, n int) int {
	return (target + 1 + int(hash32(messageID)%uint32(n-1))) % n
}

// conduitNote is one notification to route.
type conduitNote struct {
	sub   Subscription
	id    string
	ts    time.Time
	frame []byte // the WebSocket frame
	body  []byte // the webhook body
}

func (s *Server) newConduitNote(x Subscription, id string, ts time.Time, ev json.RawMessage) conduitNote {
	payload := map[string]any{"subscription": x, "event": ev}
	body, _ := json.Marshal(payload)
	return conduitNote{sub: x, id: id, ts: ts, body: body,
		frame: s.frameWith(id, ts, "notification", x.Type, x.Version, payload)}
}

// route delivers a conduit notification as Twitch does: to its target shard; if
// that shard does not take it (disabled, socket gone), once to one other shard; a
// webhook shard is retried on its own callback instead. What nobody takes is lost.
func (s *Server) route(n conduitNote) {
	s.mu.Lock()
	cd := s.conduits[n.sub.Transport.ConduitID]
	rec := ConduitDelivery{MessageID: n.id, SubscriptionID: n.sub.ID, ConduitID: n.sub.Transport.ConduitID}
	if cd == nil || len(cd.shards) == 0 {
		rec.Lost = true
		s.conduitLog = append(s.conduitLog, rec)
		s.mu.Unlock()
		return
	}
	count := len(cd.shards)
	target := targetShard(&n.sub, count)
	rec.Target = strconv.Itoa(target)
	s.mu.Unlock()

	ok, crossShard := s.attempt(cd, target, n)
	if ok {
		rec.DeliveredTo = rec.Target
	} else if crossShard && count > 1 {
		retry := retryShard(target, n.id, count)
		rec.Retry = strconv.Itoa(retry)
		if ok, _ = s.attempt(cd, retry, n); ok {
			rec.DeliveredTo = rec.Retry
		}
	}
	rec.Lost = rec.DeliveredTo == ""
	s.mu.Lock()
	s.conduitLog = append(s.conduitLog, rec)
	s.mu.Unlock()
}

// attempt offers n to one shard. crossShard says whether a failure may be retried on
// another shard (not for a webhook shard, whose retries go to its own callback).
func (s *Server) attempt(cd *conduit, idx int, n conduitNote) (ok, crossShard bool) {
	s.mu.Lock()
	if s.conduits[cd.id] != cd || idx >= len(cd.shards) || cd.shards[idx].status != ShardEnabled {
		s.mu.Unlock()
		return false, true
	}
	sh := cd.shards[idx]
	switch sh.method {
	case "websocket":
		ss := sh.session
		s.mu.Unlock()
		return ss != nil && ss.deliver(n.frame) == nil, true
	case "webhook":
		cb, secret := sh.callback, sh.secret
		s.mu.Unlock()
		ok := s.deliverWebhook(cb, secret, n)
		s.mu.Lock()
		defer s.mu.Unlock()
		if sh.callback != cb {
			return ok, false
		}
		if ok {
			sh.failures = 0
			return true, false
		}
		sh.failures++
		if sh.failures >= s.o.WebhookFailureLimit && sh.status == ShardEnabled {
			s.disableShardLocked(cd, sh, ShardNotificationFailures)
		}
		return false, false
	}
	s.mu.Unlock()
	return false, true
}

// disableShardLocked disables a shard: Twitch keeps the conduit's subscriptions and
// sends conduit.shard.disabled.
func (s *Server) disableShardLocked(cd *conduit, sh *shard, status string) {
	sh.status = status
	if sh.method == "websocket" {
		sh.disconnectedAt = s.o.Now()
	}
	ev := map[string]any{"conduit_id": cd.id, "shard_id": strconv.Itoa(sh.id), "status": status,
		"transport": sh.helixJSON()["transport"]}
	clientID := cd.clientID
	s.checkDoomLocked(cd)
	if s.closed {
		return
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		_, _ = s.notifyMatching("conduit.shard.disabled", func(x *Subscription) bool {
			return x.Condition["client_id"] == clientID && (x.Condition["conduit_id"] == "" || x.Condition["conduit_id"] == cd.id)
		}, Notification{Type: "conduit.shard.disabled", Event: ev})
	}()
}

// shardLocked finds a shard.
func (s *Server) shardLocked(conduitID, shardID string) (*conduit, *shard, error) {
	cd := s.conduits[conduitID]
	n, err := strconv.Atoi(shardID)
	if cd == nil || err != nil || n < 0 || n >= len(cd.shards) {
		return nil, nil, ErrNoConduit
	}
	return cd, cd.shards[n], nil
}

// DisableShard disables a shard with status (default websocket_disconnected), as
// if its transport had failed: it gets no more notifications until it is PATCHed
// again. A WebSocket shard's socket stays open, no longer serving the conduit.
func (s *Server) DisableShard(conduitID, shardID, status string) error {
	if status == "" {
		status = statusDisconnected
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	cd, sh, err := s.shardLocked(conduitID, shardID)
	if err != nil {
		return err
	}
	if sh.session != nil {
		sh.session.shard = nil
		sh.session = nil
	}
	s.disableShardLocked(cd, sh, status)
	return nil
}

// KillShardSocket closes the socket of a WebSocket shard with code (0: 4000, an
// internal server error). Frames written before it reach the client before the close
// frame; the shard is disabled at once with the code's status.
func (s *Server) KillShardSocket(conduitID, shardID string, code int) error {
	if code == 0 {
		code = 4000
	}
	s.mu.Lock()
	_, sh, err := s.shardLocked(conduitID, shardID)
	var ss *session
	if err == nil {
		ss = sh.session
	}
	s.mu.Unlock()
	if err != nil {
		return err
	}
	if ss == nil {
		return ErrNoSession
	}
	ss.closeWith(code, "killed by test")
	return nil
}

// releaseShardLocked is called when a session retires: unless it was handed over to a
// reconnect, its shard is disabled with the session's status.
func (s *Server) releaseShardLocked(ss *session, status string) {
	ref := ss.shard
	if ref == nil || ss.handedOver {
		return
	}
	ss.shard = nil
	if ref.sh.session != ss || s.conduits[ref.conduit.id] != ref.conduit {
		return
	}
	ref.sh.session = nil
	s.disableShardLocked(ref.conduit, ref.sh, status)
}

// handOverShardLocked moves the old session's shard to the session that connected to
// its reconnect URL: session_reconnect keeps the shard.
func (s *Server) handOverShardLocked(old, nw *session) {
	ref := old.shard
	if ref == nil {
		return
	}
	old.shard = nil
	if ref.sh.session != old {
		return
	}
	ref.sh.session, ref.sh.sessionID = nw, nw.id
	ref.sh.connectedAt = nw.connectedAt
	nw.shard = ref
}
