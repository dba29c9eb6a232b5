package eventsub

import (
	"fmt"
	"sort"
	"strings"

	"github.com/bitbrat/twitch-edge/shared/twitch"
)

// Spec is one subscription the connector keeps alive on every session.
type Spec struct {
	Type      string
	Version   string
	Condition map[string]string
}

// Key identifies a spec: type, version and sorted condition.
func (s Spec) Key() string {
	keys := make([]string, 0, len(s.Condition))
	for k := range s.Condition {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	b.WriteString(s.Type + "@" + s.Version)
	for _, k := range keys {
		b.WriteString(" " + k + "=" + s.Condition[k])
	}
	return b.String()
}

func (s Spec) String() string { return s.Key() }

// TypeVersion is a subscription type and version from configuration.
type TypeVersion struct{ Type, Version string }

// ParseTypeVersions parses "channel.subscribe:1, channel.cheer:1" (as
// EVENTSUB_EXTRA_SUBSCRIPTIONS holds it).
func ParseTypeVersions(items []string) ([]TypeVersion, error) {
	var out []TypeVersion
	for _, it := range items {
		typ, ver, ok := strings.Cut(it, ":")
		if !ok || typ == "" || ver == "" || strings.ContainsAny(typ, " /") {
			return nil, fmt.Errorf("%q is not type:version (e.g. channel.subscribe:1)", it)
		}
		out = append(out, TypeVersion{typ, ver})
	}
	return out, nil
}

// Specs builds the subscriptions for the given broadcasters: channel.follow v2
// (moderated by the bot), channel.update v2, and the extra types, each with the
// broadcaster condition (plus the moderator for types that need one).
func Specs(broadcasterIDs []string, botUserID string, extra []TypeVersion) []Spec {
	types := append([]TypeVersion{
		{twitch.TypeChannelFollow, twitch.VersionChannelFollow},
		{twitch.TypeChannelUpdate, twitch.VersionChannelUpdate},
	}, extra...)
	var out []Spec
	for _, b := range broadcasterIDs {
		for _, tv := range types {
			cond := map[string]string{"broadcaster_user_id": b}
			if needsModerator(tv) {
				cond["moderator_user_id"] = botUserID
			}
			out = append(out, Spec{Type: tv.Type, Version: tv.Version, Condition: cond})
		}
	}
	return out
}

// needsModerator lists the types whose condition names a moderator (Twitch's
// subscription types reference). Types not listed take the broadcaster only.
func needsModerator(tv TypeVersion) bool {
	switch tv.Type {
	case "channel.follow":
		return tv.Version == "2"
	case "channel.shield_mode.begin", "channel.shield_mode.end", "channel.shoutout.create",
		"channel.shoutout.receive", "channel.chat_settings.update", "channel.suspicious_user.message",
		"channel.suspicious_user.update", "channel.warning.acknowledge", "channel.warning.send",
		"channel.unban_request.create", "channel.unban_request.resolve", "automod.message.hold",
		"automod.message.update", "automod.settings.update", "automod.terms.update",
		"channel.moderate", "channel.guest_star_session.begin", "channel.guest_star_session.end",
		"channel.guest_star_guest.update", "channel.guest_star_settings.update":
		return true
	}
	return false
}
