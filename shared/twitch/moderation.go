package twitch

import (
	"context"
	"net/http"
	"net/url"
)

// ScopeReadModeratedChannels is the scope Get Moderated Channels needs.
const ScopeReadModeratedChannels = "user:read:moderated_channels"

// ModeratedChannel is one channel in which a user is a moderator (Get Moderated
// Channels).
type ModeratedChannel struct {
	BroadcasterID    string `json:"broadcaster_id"`
	BroadcasterLogin string `json:"broadcaster_login"`
	BroadcasterName  string `json:"broadcaster_name"`
}

// maxModeratedPages bounds the pages read: 100 per page, so 5,000 channels — far more
// than a bot moderates; the bound stops a server that keeps returning cursors.
const maxModeratedPages = 50

// GetModeratedChannels returns the channels in which userID (the token's user) has
// moderator privileges: GET /moderation/channels, scope user:read:moderated_channels,
// every page. The user's own channel is not among them.
func (c *Client) GetModeratedChannels(ctx context.Context, userID string) ([]ModeratedChannel, error) {
	const endpoint = "GET /moderation/channels"
	if !IsUserID(userID) {
		return nil, invalidInput("get moderated channels: %q is not a Twitch user id", userID)
	}
	var out []ModeratedChannel
	after := ""
	for page := 0; page < maxModeratedPages; page++ {
		q := url.Values{"user_id": {userID}, "first": {"100"}}
		if after != "" {
			q.Set("after", after)
		}
		resp, err := c.do(ctx, request{method: http.MethodGet, path: "/moderation/channels", url: c.apiBase + "/moderation/channels?" + q.Encode()})
		if err != nil {
			return nil, wrapf(err, "get moderated channels of %s", userID)
		}
		var body struct {
			Data       []ModeratedChannel `json:"data"`
			Pagination struct {
				Cursor string `json:"cursor"`
			} `json:"pagination"`
		}
		if err := decode(endpoint, resp, &body); err != nil {
			return nil, err
		}
		for _, m := range body.Data {
			if !IsUserID(m.BroadcasterID) {
				return nil, malformed(endpoint, errorf("moderated channel without a broadcaster id"))
			}
		}
		out = append(out, body.Data...)
		if body.Pagination.Cursor == "" || len(body.Data) == 0 {
			return out, nil
		}
		after = body.Pagination.Cursor
	}
	return out, nil
}
