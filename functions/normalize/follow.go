package normalize

import (
	"github.com/bitbrat/twitch-edge/shared/event"
	"github.com/bitbrat/twitch-edge/shared/fault"
	"github.com/bitbrat/twitch-edge/shared/twitch"
)

// FollowPayload is the normalized payload of channel.follow.
type FollowPayload struct {
	UserID                 string `json:"userId"`
	UserLogin              string `json:"userLogin"`
	UserDisplayName        string `json:"userDisplayName"`
	BroadcasterID          string `json:"broadcasterId"`
	BroadcasterLogin       string `json:"broadcasterLogin"`
	BroadcasterDisplayName string `json:"broadcasterDisplayName"`
	FollowedAt             string `json:"followedAt"`
}

// ChannelFollow normalizes channel.follow (v2): the event is about the follower, and
// happened at followed_at.
func ChannelFollow(n Notification) (Normalized, error) {
	var ev twitch.ChannelFollowEvent
	if err := event.Unmarshal(n.Event, &ev); err != nil {
		return Normalized{}, fault.Wrap(fault.Invalid, "EVENTSUB_BAD_EVENT", err, "decode channel.follow event")
	}
	followedAt := ""
	if !ev.FollowedAt.IsZero() {
		followedAt = timestamp(ev.FollowedAt)
	}
	if err := require(n.Subscription.Type,
		[2]string{"user_id", ev.UserID},
		[2]string{"broadcaster_user_id", ev.BroadcasterUserID},
		[2]string{"broadcaster_user_login", ev.BroadcasterUserLogin},
		[2]string{"followed_at", followedAt},
	); err != nil {
		return Normalized{}, err
	}
	return Normalized{
		ChannelLogin: ev.BroadcasterUserLogin,
		UserID:       ev.UserID,
		CreatedAt:    followedAt,
		Payload: FollowPayload{
			UserID:                 ev.UserID,
			UserLogin:              ev.UserLogin,
			UserDisplayName:        ev.UserName,
			BroadcasterID:          ev.BroadcasterUserID,
			BroadcasterLogin:       ev.BroadcasterUserLogin,
			BroadcasterDisplayName: ev.BroadcasterUserName,
			FollowedAt:             followedAt,
		},
	}, nil
}
