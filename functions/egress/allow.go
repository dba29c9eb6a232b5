package egress

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/bitbrat/twitch-edge/shared/fault"
	"github.com/bitbrat/twitch-edge/shared/twitch"
)

// Who may be spoken to. Anyone who can publish to the egress topics can ask the bot to
// speak; these checks bound what they can make it do: post only in the allowed
// channels (EGRESS_CHANNELS, default the connector's TWITCH_CHANNELS), and, when
// EGRESS_WHISPER_SEEN_WITHIN is set, whisper only users seen on internal.ingress.v1
// within that window. A refused event is FAILED with its code and dead-lettered.
const (
	// CodeChannelNotAllowed: the channel is not in the egress allowlist.
	CodeChannelNotAllowed = "CHANNEL_NOT_ALLOWED"
	// CodeRecipientNotSeen: the whisper's user was not seen on internal.ingress.v1
	// within the configured window.
	CodeRecipientNotSeen = "RECIPIENT_NOT_SEEN"
)

// Seen answers whether a user was seen on internal.ingress.v1 since a time
// (*store.SeenUsers).
type Seen interface {
	SeenSince(ctx context.Context, userID string, since time.Time) (bool, error)
}

// channelSet is an allowlist of channels by login or by broadcaster id; empty allows
// every channel.
type channelSet map[string]bool

func newChannelSet(entries []string) channelSet {
	s := channelSet{}
	for _, e := range entries {
		e = strings.ToLower(strings.TrimPrefix(strings.TrimSpace(e), "#"))
		if e != "" {
			s[e] = true
		}
	}
	return s
}

// allows reports whether the channel login (and, for id entries, its broadcaster id,
// resolved through Helix) is allowed.
func (s *ChatService) allows(ctx context.Context, login string) (bool, error) {
	if len(s.channels) == 0 || s.channels[login] {
		return true, nil
	}
	hasIDs := false
	for e := range s.channels {
		hasIDs = hasIDs || twitch.IsUserID(e)
	}
	if !hasIDs {
		return false, nil
	}
	hctx, cancel := s.helixCtx(ctx)
	defer cancel()
	id, err := s.broadcaster(hctx, login)
	if fault.CodeOf(err, "") == CodeChannelNotFound {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return s.channels[id], nil
}

// checkChannel refuses a chat event for a channel outside the allowlist.
func (s *ChatService) checkChannel(ctx context.Context, env *envelope, login string) error {
	ok, err := s.allows(ctx, login)
	if err != nil || ok {
		return err
	}
	return s.reject(ctx, env.cid, env.destination, env.e, fault.New(fault.Permanent, CodeChannelNotAllowed,
		"channel #%s is not in the egress allowlist (EGRESS_CHANNELS)", login))
}

// checkRecipient refuses a whisper to a user not seen within the window, when the
// window is set.
func (s *WhisperService) checkRecipient(ctx context.Context, env *envelope, to string) error {
	if s.seenWithin <= 0 {
		return nil
	}
	ok, err := s.seen.SeenSince(ctx, to, s.now().Add(-s.seenWithin))
	if err != nil || ok {
		return err
	}
	return s.reject(ctx, env.cid, env.destination, env.e, fault.New(fault.Permanent, CodeRecipientNotSeen,
		"user %s was not seen on the ingress topic within %s (EGRESS_WHISPER_SEEN_WITHIN)", to, fmt.Sprint(s.seenWithin)))
}
