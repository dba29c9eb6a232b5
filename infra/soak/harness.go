package soak

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/google/uuid"

	"github.com/bitbrat/twitch-edge/infra/collect"
	"github.com/bitbrat/twitch-edge/infra/faketwitch"
	"github.com/bitbrat/twitch-edge/infra/stack"
	"github.com/bitbrat/twitch-edge/shared/event"
	"github.com/bitbrat/twitch-edge/shared/twitch/twitchtest"
)

// harness holds what the steps share: the stack, the stream and the collector of
// raw notifications.
type harness struct {
	st       *stack.Stack
	tw       *twitchtest.Server
	col      *collect.Notifications
	ing      *collect.Events // internal.ingress.v1
	s        *stream
	logf     func(string, ...any)
	staleIDs []string
}

func (h *harness) count(res *Result, s *stream, reconnects int) {
	sentList := s.Sent()
	routes := h.routes()
	res.Expected, res.Missing, res.MissingDetail, res.TwitchDropped, res.Retried = 0, nil, nil, 0, 0
	onRaw := eventsOnRaw(sentList, h.col)
	for _, x := range sentList {
		if !h.col.Has(x.id) && onRaw[x.event] {
			// A hand-off's copy the outgoing instance left to its successor, which
			// forwarded the event under its own message id: not expected on the raw
			// topic (judged by event on internal.ingress.v1, per fault).
			continue
		}
		r, routed := routes[x.id]
		switch {
		case routed && r.Lost:
			res.TwitchDropped++
			continue
		case routed && r.Retry != "" && r.DeliveredTo == r.Retry:
			res.Retried++
		}
		res.Expected++
		if !h.col.Has(x.id) {
			res.Missing = append(res.Missing, x.id)
			res.MissingDetail = append(res.MissingDetail, fmt.Sprintf("%s: sent %s in %q to channel %s; on internal.ingress.v1: %t",
				x.id, x.at.UTC().Format("15:04:05.000"), x.phase, x.channel, h.ing.Distinct(event.CorrelationIDForEventSub(x.id)) > 0))
		}
	}
	all := h.col.All()
	res.Delivered = all.Distinct
	res.Duplicates, res.Redeliveries = all.Duplicates, all.Redeliveries
	res.StaleForwarded = 0
	for _, id := range h.staleIDs {
		if h.col.Has(id) {
			res.StaleForwarded++
		}
	}
	// A stale frame that was forwarded is also counted in Delivered; keep Delivered
	// to what was expected and the excess visible.
	res.NoSubscription = s.NoSubscription()
	res.Reconnects = reconnects
	res.Faults = faults(sentList, h.ing, h.col, s, routes)
}

// routes are the fake's conduit routing records by message id (none in WebSocket
// mode).
func (h *harness) routes() map[string]twitchtest.ConduitDelivery {
	out := map[string]twitchtest.ConduitDelivery{}
	for _, d := range h.tw.ConduitDeliveries() {
		out[d.MessageID] = d
	}
	return out
}

// expected is what was sent so far and is expected on the topics: everything but
// the conduit notifications the fake dropped (no shard took them).
func (h *harness) expected() []sent {
	sentList := h.s.Sent()
	lost := h.tw.LostNotifications()
	if len(lost) == 0 {
		return sentList
	}
	dropped := make(map[string]bool, len(lost))
	for _, d := range lost {
		dropped[d.MessageID] = true
	}
	return slices.DeleteFunc(sentList, func(x sent) bool { return dropped[x.id] })
}

// eventsOnRaw are the events (sent.event) with at least one of their message ids on
// the raw topic: during a hand-off's overlap Twitch sends one event to both sessions,
// each copy with its own message id, and one forwarded copy is all that is owed.
func eventsOnRaw(sentList []sent, col *collect.Notifications) map[int]bool {
	out := map[int]bool{}
	for _, x := range sentList {
		if col.Has(x.id) {
			out[x.event] = true
		}
	}
	return out
}

// drain waits until every event sent so far is on the raw topic (one of its copies)
// and on internal.ingress.v1, or timeout passes without progress.
func (h *harness) drain(ctx context.Context, timeout time.Duration) error {
	last, lastChange := -1, time.Now()
	for {
		missing := 0
		sentList := h.expected()
		onRaw := eventsOnRaw(sentList, h.col)
		for _, x := range sentList {
			if !h.col.Has(x.id) && !onRaw[x.event] {
				missing++
			}
		}
		if missing == 0 {
			missing = ingressMissing(sentList, h.ing)
		}
		if missing == 0 {
			return nil
		}
		if missing != last {
			last, lastChange = missing, time.Now()
		} else if time.Since(lastChange) > timeout {
			return fmt.Errorf("%d notifications still not on the raw topic or internal.ingress.v1 after %s without progress", missing, timeout)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// wantSubs is the number of subscriptions the connector keeps: channel.follow and
// channel.update for each seeded channel.
var wantSubs = 2 * len(faketwitch.Channels)

func newestSession(tw *twitchtest.Server) (string, bool) {
	ss := tw.Sessions()
	for i := len(ss) - 1; i >= 0; i-- {
		if !ss[i].Reconnecting && ss[i].Subscriptions > 0 {
			return ss[i].ID, true
		}
	}
	return "", false
}

// settledSession waits until exactly one socket is live and holds every
// subscription (no session_reconnect hand-over in progress) and returns it.
func (h *harness) settledSession(ctx context.Context) (string, error) {
	var id string
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	err := h.tw.Wait(ctx, func() bool {
		ss := h.tw.Sessions()
		if len(ss) == 1 && !ss[0].Reconnecting && ss[0].Subscriptions == wantSubs {
			id = ss[0].ID
			return true
		}
		return false
	})
	if err != nil {
		return "", fmt.Errorf("no settled session: %+v: %w", h.tw.Sessions(), err)
	}
	return id, nil
}

// waitNewSession waits until old is gone and another session holds every
// subscription, then for the connector's /readyz.
func (h *harness) waitNewSession(ctx context.Context, old string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	err := h.tw.Wait(ctx, func() bool {
		for _, x := range h.tw.Sessions() {
			if x.ID != old && x.Subscriptions == wantSubs {
				return true
			}
		}
		return false
	})
	if err != nil {
		return fmt.Errorf("the connector did not subscribe on a new session within %s: %+v: %w", timeout, h.tw.Sessions(), err)
	}
	return h.st.WaitConnectorReady(ctx)
}

// duplicates sends n byte-identical redeliveries of notifications forwarded on the
// current session, and n notifications reusing the message ids of notifications the
// previous connector process forwarded (after the Firestore restart, so that its
// idempotency ledger holds them): the restarted connector must forward none.
func (h *harness) duplicates(ctx context.Context, fsRestarted, connRestart, connBack time.Time, n int) (int, error) {
	var current, previous []string
	for _, x := range h.s.Sent() {
		switch {
		case x.at.After(connBack):
			current = append(current, x.id)
		case x.at.After(fsRestarted.Add(time.Second)) && x.at.Before(connRestart.Add(-2*time.Second)):
			previous = append(previous, x.id)
		}
	}
	if len(current) < n || len(previous) < n {
		return 0, fmt.Errorf("too few notifications to repeat (%d current, %d previous)", len(current), len(previous))
	}
	current, previous = current[:n], previous[len(previous)-n:]
	// The originals must have been forwarded before the repeats are sent.
	for _, id := range current {
		if err := h.waitHas(ctx, id); err != nil {
			return 0, err
		}
	}
	sentN := 0
	for _, id := range current {
		if err := h.tw.Redeliver(id); err != nil {
			return sentN, fmt.Errorf("redeliver %s: %w", id, err)
		}
		sentN++
	}
	ch := faketwitch.Channels[0]
	for _, id := range previous {
		_, err := h.tw.Notify(twitchtest.Notification{Type: "channel.follow", MessageID: id,
			Condition: map[string]string{"broadcaster_user_id": ch.ID},
			Event:     h.tw.FollowEvent(ch.ID, faketwitch.Viewers[0].ID, time.Now())})
		if err != nil {
			return sentN, fmt.Errorf("repeat %s: %w", id, err)
		}
		sentN++
	}
	return sentN, nil
}

func (h *harness) waitHas(ctx context.Context, id string) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	for !h.col.Has(id) {
		select {
		case <-ctx.Done():
			return fmt.Errorf("notification %s never reached the raw topic: %w", id, ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
	return nil
}

// stale sends n notifications whose message_timestamp is 11 minutes old.
func (h *harness) stale(n int) ([]string, error) {
	var ids []string
	ch := faketwitch.Channels[1]
	for i := 0; i < n; i++ {
		id := uuid.NewString()
		_, err := h.tw.Notify(twitchtest.Notification{Type: "channel.follow", MessageID: id,
			Timestamp: time.Now().Add(-11 * time.Minute),
			Condition: map[string]string{"broadcaster_user_id": ch.ID},
			Event:     h.tw.FollowEvent(ch.ID, faketwitch.Viewers[1].ID, time.Now().Add(-11*time.Minute))})
		if err != nil {
			return ids, fmt.Errorf("stale notification: %w", err)
		}
		ids = append(ids, id)
	}
	return ids, nil
}

// egress publishes n dm and n chat egress events, waits for each to be recorded, and
// counts deliveries and finalize messages.
func (h *harness) egress(ctx context.Context, fin *collect.Events, n int) ([]Egress, error) {
	var ps []pendingEgress
	for i := 0; i < 2*n; i++ {
		kind, ch := "dm", faketwitch.Channels[0]
		if i%2 == 1 {
			kind, ch = "chat", faketwitch.Channels[1]
		}
		v := faketwitch.Viewers[i%len(faketwitch.Viewers)]
		p, err := h.publishEgress(ctx, kind, ch, v, fmt.Sprintf("soak %s %d %s", kind, i, uuid.NewString()[:8]))
		if err != nil {
			return nil, err
		}
		ps = append(ps, p)
		time.Sleep(200 * time.Millisecond) // whisper limits are per second
	}
	return h.settle(ctx, fin, ps, 90*time.Second), nil
}

// pendingEgress is an egress event published and not yet counted.
type pendingEgress struct {
	e    *event.InternalEventV2
	text string
}

// publishEgress publishes one egress event of kind ("dm" or "chat") with text.
func (h *harness) publishEgress(ctx context.Context, kind string, ch, v twitchtest.User, text string) (pendingEgress, error) {
	e := &event.InternalEventV2{
		V: "1", Source: "soak", CorrelationID: uuid.NewString(), Type: "llm.bot.response.v1",
		Channel: "#" + ch.Login, UserID: v.ID,
		Egress: &event.Egress{Destination: h.st.Topics.Egress, Type: kind},
		Candidates: []event.CandidateV1{{
			ID: "c-" + uuid.NewString(), Kind: "text", Source: "soak", CreatedAt: event.Timestamp(time.Now()),
			Status: "proposed", Priority: 1, Text: `"` + text + `"`,
		}},
	}
	if err := h.st.PublishEgress(ctx, e); err != nil {
		return pendingEgress{}, fmt.Errorf("publish egress: %w", err)
	}
	return pendingEgress{e, text}, nil
}

// settle waits (up to timeout, a hang guard) until each event is recorded and
// finalized, then a little longer for a second delivery or finalize to show up, and
// counts.
func (h *harness) settle(ctx context.Context, fin *collect.Events, ps []pendingEgress, timeout time.Duration) []Egress {
	wctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	out := make([]Egress, len(ps))
	for i, p := range ps {
		out[i] = Egress{CorrelationID: p.e.CorrelationID, Kind: p.e.Egress.Type}
		for wctx.Err() == nil {
			o, ok, err := h.st.Outcome(wctx, p.e.CorrelationID)
			if err == nil && ok && o.Delivery.Status != "" && fin.Distinct(p.e.CorrelationID) > 0 {
				break
			}
			select {
			case <-wctx.Done():
			case <-time.After(200 * time.Millisecond):
			}
		}
	}
	time.Sleep(3 * time.Second) // let a second delivery or finalize show up, if any
	whispers, chats := h.tw.Whispers(), h.tw.ChatMessages()
	for i, p := range ps {
		out[i].Finalized = fin.Distinct(p.e.CorrelationID)
		if o, ok, err := h.st.Outcome(ctx, p.e.CorrelationID); err == nil && ok {
			out[i].Status, out[i].Updates = o.Delivery.Status, o.UpdateCount
			if o.Delivery.Error != nil {
				out[i].Code = o.Delivery.Error.Code
			}
		}
		if p.e.Egress.Type == "dm" {
			for _, w := range whispers {
				if w.Message == p.text {
					out[i].Deliveries++
				}
			}
		} else {
			for _, m := range chats {
				if m.Message == p.text && m.IsSent {
					out[i].Deliveries++
				}
			}
		}
	}
	return out
}
