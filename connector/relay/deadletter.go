package relay

import (
	"encoding/json"

	"github.com/bitbrat/twitch-edge/connector/eventsub"
	"github.com/bitbrat/twitch-edge/shared/bus"
	"github.com/bitbrat/twitch-edge/shared/event"
	"github.com/bitbrat/twitch-edge/shared/fault"
)

// Source names the connector in the dead letters it writes.
const Source = "twitch-edge.connector"

// deadLetter sends a notification Pub/Sub refused for good to the dead-letter topic,
// with the frame when it fits (a frame over the size limit is described, not
// carried). Never retried forever: a dead letter that is itself refused is logged.
func (r *Relay) deadLetter(f eventsub.Frame, cause error) {
	r.invalid.Inc()
	reason := "Pub/Sub refuses this notification for good: " + fault.CodeOf(cause, "INVALID")
	log := r.o.Log.With("eventsubMessageId", truncate(f.MessageID, 128), "subscriptionType", truncate(f.SubscriptionType, 128),
		"bytes", len(f.Data), "code", fault.CodeOf(cause, "INVALID"), "error", cause.Error())
	if r.o.DeadLetterTopic == "" {
		log.Error("relay: notification refused by Pub/Sub and no dead-letter topic; dropped")
		return
	}
	dl := event.NewDeadLetter(Source, event.CorrelationIDForEventSub(f.MessageID), event.TypeEventSubRawNotification,
		reason, cause, f.Data)
	b, err := json.Marshal(dl)
	attrs := event.DeadLetterAttributes(dl)
	if err != nil || bus.CheckMessage(b, attrs) != nil {
		dl.Original = nil
		b, err = json.Marshal(dl)
	}
	if err == nil {
		err = r.send(r.o.DeadLetterTopic, b, attrs, f.MessageID)
	}
	if err != nil {
		log.Error("relay: notification refused by Pub/Sub could not be dead-lettered either; dropped",
			"deadLetterError", err.Error())
		return
	}
	log.Error("relay: notification refused by Pub/Sub for good; sent to dead-letter", "topic", r.o.DeadLetterTopic)
}

// truncate cuts s to n bytes for a log line (the value came from outside).
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
