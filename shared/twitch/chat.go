package twitch

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"

	"github.com/bitbrat/twitch-edge/shared/fault"
)

// DropReason is why Twitch did not send a chat message (e.g. code msg_duplicate,
// channel_settings, msg_rejected).
type DropReason struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// ChatMessageResult is Send Chat Message's answer.
type ChatMessageResult struct {
	// MessageID is Twitch's id of the message; it can be empty when IsSent is false.
	MessageID string
	IsSent    bool
	// DropReason is set when IsSent is false.
	DropReason *DropReason
}

type chatMessageBody struct {
	BroadcasterID        string `json:"broadcaster_id"`
	SenderID             string `json:"sender_id"`
	Message              string `json:"message"`
	ReplyParentMessageID string `json:"reply_parent_message_id,omitempty"`
}

type chatMessageResponse struct {
	Data []struct {
		MessageID  string      `json:"message_id"`
		IsSent     *bool       `json:"is_sent"`
		DropReason *DropReason `json:"drop_reason"`
	} `json:"data"`
}

// SendChatMessage posts message to broadcasterID's chat as senderID (who must be the
// token's user). replyParentID may be empty.
//
// A 200 with is_sent:false is a failure: the result is returned together with a
// Permanent error, code CHAT_DROPPED, whose chain holds a *ChatDroppedError with
// Twitch's drop reason. Retrying the same text would be dropped again (or, for a
// transient drop, be a duplicate), so the caller decides.
func (c *Client) SendChatMessage(ctx context.Context, broadcasterID, senderID, message, replyParentID string) (*ChatMessageResult, error) {
	const endpoint = "POST /chat/messages"
	if !IsUserID(broadcasterID) || !IsUserID(senderID) {
		return nil, invalidInput("send chat message: broadcaster and sender ids must be Twitch user ids")
	}
	if strings.TrimSpace(message) == "" {
		return nil, invalidInput("send chat message to %s: empty message", broadcasterID)
	}
	body, err := json.Marshal(chatMessageBody{BroadcasterID: broadcasterID, SenderID: senderID, Message: message, ReplyParentMessageID: replyParentID})
	if err != nil {
		return nil, invalidInput("send chat message: %v", err)
	}
	resp, err := c.do(ctx, request{method: http.MethodPost, path: "/chat/messages", url: c.apiBase + "/chat/messages", body: body})
	if err != nil {
		return nil, wrapf(err, "send chat message to %s", broadcasterID)
	}
	var out chatMessageResponse
	if err := decode(endpoint, resp, &out); err != nil {
		return nil, err
	}
	if len(out.Data) == 0 || out.Data[0].IsSent == nil {
		return nil, malformed(endpoint, errorf("no data[0].is_sent in response"))
	}
	d := out.Data[0]
	res := &ChatMessageResult{MessageID: d.MessageID, IsSent: *d.IsSent, DropReason: d.DropReason}
	if !res.IsSent {
		reason := DropReason{}
		if d.DropReason != nil {
			reason = *d.DropReason
		}
		return res, fault.Wrap(fault.Permanent, CodeChatDropped, &ChatDroppedError{BroadcasterID: broadcasterID, Reason: reason}, "send chat message")
	}
	return res, nil
}

// SendWhisper sends message from fromUserID (the token's user, who needs a verified
// phone number) to toUserID. Twitch answers 204 also when it silently drops a
// whisper, so success means "accepted", not "delivered". Twitch truncates messages
// longer than 500 characters to a first-time recipient and 10,000 otherwise.
func (c *Client) SendWhisper(ctx context.Context, fromUserID, toUserID, message string) error {
	if !IsUserID(fromUserID) || !IsUserID(toUserID) {
		return invalidInput("send whisper: from and to must be Twitch user ids")
	}
	if strings.TrimSpace(message) == "" {
		return invalidInput("send whisper to %s: empty message", toUserID)
	}
	body, err := json.Marshal(struct {
		Message string `json:"message"`
	}{message})
	if err != nil {
		return invalidInput("send whisper: %v", err)
	}
	u := c.apiBase + "/whispers?" + url.Values{"from_user_id": {fromUserID}, "to_user_id": {toUserID}}.Encode()
	if _, err := c.do(ctx, request{method: http.MethodPost, path: "/whispers", url: u, body: body}); err != nil {
		return wrapf(err, "send whisper to %s", toUserID)
	}
	return nil
}
