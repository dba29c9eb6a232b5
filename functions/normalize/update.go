package normalize

import (
	"github.com/bitbrat/twitch-edge/shared/event"
	"github.com/bitbrat/twitch-edge/shared/fault"
	"github.com/bitbrat/twitch-edge/shared/twitch"
)

// UpdatePayload is the normalized payload of channel.update.
type UpdatePayload struct {
	BroadcasterID               string   `json:"broadcasterId"`
	BroadcasterLogin            string   `json:"broadcasterLogin"`
	BroadcasterDisplayName      string   `json:"broadcasterDisplayName"`
	Title                       string   `json:"title"`
	Language                    string   `json:"language"`
	CategoryID                  string   `json:"categoryId"`
	CategoryName                string   `json:"categoryName"`
	ContentClassificationLabels []string `json:"contentClassificationLabels"`
	// IsMature is true when the stream carries any content classification label.
	IsMature bool `json:"isMature"`
}

// ChannelUpdate normalizes channel.update (v2): the event is about the broadcaster,
// and happened when Twitch sent the notification (the event has no time of its own).
func ChannelUpdate(n Notification) (Normalized, error) {
	var ev twitch.ChannelUpdateEvent
	if err := event.Unmarshal(n.Event, &ev); err != nil {
		return Normalized{}, fault.Wrap(fault.Invalid, "EVENTSUB_BAD_EVENT", err, "decode channel.update event")
	}
	if err := require(n.Subscription.Type,
		[2]string{"broadcaster_user_id", ev.BroadcasterUserID},
		[2]string{"broadcaster_user_login", ev.BroadcasterUserLogin},
	); err != nil {
		return Normalized{}, err
	}
	labels := ev.ContentClassificationLabels
	if labels == nil {
		labels = []string{}
	}
	return Normalized{
		ChannelLogin: ev.BroadcasterUserLogin,
		UserID:       ev.BroadcasterUserID,
		CreatedAt:    timestamp(n.Metadata.MessageTimestamp),
		Payload: UpdatePayload{
			BroadcasterID:               ev.BroadcasterUserID,
			BroadcasterLogin:            ev.BroadcasterUserLogin,
			BroadcasterDisplayName:      ev.BroadcasterUserName,
			Title:                       ev.Title,
			Language:                    ev.Language,
			CategoryID:                  ev.CategoryID,
			CategoryName:                ev.CategoryName,
			ContentClassificationLabels: labels,
			IsMature:                    len(labels) > 0,
		},
	}, nil
}
