package twitch

import (
	"context"
	"fmt"
	"testing"

	"github.com/bitbrat/twitch-edge/shared/fault"
	"github.com/bitbrat/twitch-edge/shared/twitch/twitchtest"
)

func TestGetModeratedChannels(t *testing.T) {
	f := newFixture(t, twitchtest.Options{})
	// A token with the scope, and 130 more channels: two pages at 100.
	const tok = "bot-access-mod-scope"
	f.fake.AddToken(twitchtest.Token{AccessToken: tok, UserID: botID, Scopes: append(botScopes, ScopeReadModeratedChannels)})
	for i := 0; i < 130; i++ {
		id := fmt.Sprint(10000 + i)
		f.fake.AddUser(twitchtest.User{ID: id, Login: "chan" + id})
		f.fake.AddModerator(id, botID)
	}
	f.fake.AddModerator(viewerID, "999") // someone else's
	f.store.tok.AccessToken = tok
	got, err := f.client.GetModeratedChannels(context.Background(), botID)
	if err != nil {
		t.Fatal(err)
	}
	brat := false
	for _, c := range got {
		brat = brat || c.BroadcasterID == broadcasterID && c.BroadcasterLogin == "brat"
	}
	if len(got) != 131 || !brat {
		t.Fatalf("%d channels (brat among them: %t), want 131", len(got), brat)
	}
	if n := len(f.fake.RequestsTo("GET", "/helix/moderation/channels")); n != 2 {
		t.Errorf("%d requests, want 2 pages", n)
	}

	// Without the scope Twitch answers 401, even after a refresh: an Auth error.
	_, err = newFixture(t, twitchtest.Options{}).client.GetModeratedChannels(context.Background(), botID)
	if fault.KindOf(err) != fault.Auth {
		t.Fatalf("without the scope: %v", err)
	}
	if _, err := f.client.GetModeratedChannels(context.Background(), "bot"); fault.KindOf(err) != fault.Invalid {
		t.Fatalf("bad user id: %v", err)
	}
}
