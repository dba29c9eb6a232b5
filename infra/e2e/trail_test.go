package e2e

import (
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"sync"

	"github.com/bitbrat/twitch-edge/shared/bus"
	"github.com/bitbrat/twitch-edge/shared/event"
	"github.com/bitbrat/twitch-edge/shared/twitch/twitchtest"
)

// trail records where each EventSub notification was seen on its way to ingress:
// on the raw topic (each Pub/Sub message of it) and on the dead-letter topic (moved
// there by Pub/Sub after the last delivery attempt, or published by a function that
// gave up). A wait that runs out says, for each notification still missing, where it
// was last seen, so that a loss is placed without reading the components' logs.
type trail struct {
	mu   sync.Mutex
	raw  map[string]int    // EventSub message id -> raw topic messages
	dead map[string]string // EventSub message id -> why it was dead-lettered
	// deadOther counts dead letters not tied to a notification (other functions').
	deadOther int
}

func newTrail() *trail { return &trail{raw: map[string]int{}, dead: map[string]string{}} }

// addRaw records a message of the raw topic.
func (t *trail) addRaw(r bus.Received) {
	id := r.Attributes[event.AttrEventSubMessageID]
	if id == "" {
		return
	}
	t.mu.Lock()
	t.raw[id]++
	t.mu.Unlock()
}

// addDead records a message of the dead-letter topic: a raw message Pub/Sub moved
// there (its attributes kept, plus the CloudPubSubDeadLetterSource* ones), or a
// function's dead letter (event.DeadLetter, the raw message in its original).
func (t *trail) addDead(r bus.Received) {
	id := r.Attributes[event.AttrEventSubMessageID]
	why := "Pub/Sub: max delivery attempts (" + r.Attributes["CloudPubSubDeadLetterSourceDeliveryCount"] + ") on " +
		r.Attributes["CloudPubSubDeadLetterSourceSubscription"]
	if id == "" {
		var dl event.DeadLetter
		if json.Unmarshal(r.Data, &dl) == nil {
			var raw struct {
				Metadata struct {
					MessageID string `json:"message_id"`
				} `json:"metadata"`
			}
			_ = json.Unmarshal(dl.Original, &raw)
			id = raw.Metadata.MessageID
			why = dl.Source + ": " + dl.Payload.Reason
		}
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if id == "" {
		t.deadOther++
		return
	}
	t.dead[id] = why
}

// where says where the notification with EventSub message id was last seen.
func (t *trail) where(id string) string {
	t.mu.Lock()
	defer t.mu.Unlock()
	if why, ok := t.dead[id]; ok {
		return "dead-lettered (" + why + ")"
	}
	if n := t.raw[id]; n > 0 {
		return fmt.Sprintf("on the raw topic (%d message(s)), not on ingress", n)
	}
	return "never on the raw topic (the connector did not forward it)"
}

// report groups the missing ids by where they were last seen: one line per place,
// with up to three example ids each. routed, when not nil, is the fake's routing
// record of conduit notifications by message id: a notification never forwarded
// says which shard the fake gave it to, or that no shard took it.
func (t *trail) report(missing []string, routed map[string]twitchtest.ConduitDelivery) string {
	places := map[string][]string{}
	for _, id := range missing {
		w := t.where(id)
		if d, ok := routed[id]; ok && strings.HasPrefix(w, "never") {
			if d.Lost {
				w += fmt.Sprintf("; the fake dropped it (shard %s and its retry %q both down)", d.Target, d.Retry)
			} else {
				w += "; the fake delivered it to shard " + d.DeliveredTo
			}
		}
		// Group by place, not by the delivery count in the reason.
		places[w] = append(places[w], id)
	}
	keys := make([]string, 0, len(places))
	for k := range places {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for _, k := range keys {
		ids := places[k]
		fmt.Fprintf(&b, "\n  %d %s, e.g. %s", len(ids), k, strings.Join(first(ids, 3), ", "))
	}
	return b.String()
}
