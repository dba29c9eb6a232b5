package conduit

import (
	"context"
	"crypto/hmac"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/bitbrat/twitch-edge/shared/twitch"
	"github.com/bitbrat/twitch-edge/shared/twitch/twitchtest"
)

// callback is a loopback webhook endpoint that answers Twitch's callback
// verification as Twitch documents it: the signature checked with the secret, then
// 200 text/plain with the challenge. refuse makes it answer 403 instead.
type callback struct {
	srv           *httptest.Server
	secret        string
	refuse        atomic.Bool
	verifications atomic.Int32
	notifications atomic.Int32
}

func newCallback(t *testing.T, secret string) *callback {
	t.Helper()
	c := &callback{secret: secret}
	c.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
		h := r.Header
		want := twitchtest.WebhookSignature(c.secret, h.Get(twitchtest.HeaderMessageID), h.Get(twitchtest.HeaderMessageTimestamp), body)
		if c.refuse.Load() || !hmac.Equal([]byte(want), []byte(h.Get(twitchtest.HeaderMessageSignature))) {
			http.Error(w, "refused", http.StatusForbidden)
			return
		}
		if h.Get(twitchtest.HeaderMessageType) != "webhook_callback_verification" {
			c.notifications.Add(1)
			w.WriteHeader(http.StatusNoContent)
			return
		}
		var v struct {
			Challenge string `json:"challenge"`
		}
		if err := json.Unmarshal(body, &v); err != nil {
			http.Error(w, "bad body", http.StatusBadRequest)
			return
		}
		c.verifications.Add(1)
		w.Header().Set("Content-Type", "text/plain")
		_, _ = io.WriteString(w, v.Challenge)
	}))
	t.Cleanup(c.srv.Close)
	return c
}

func (c *callback) url() string { return c.srv.URL + "/EventSubWebhook" }

func TestWebhookShardIDs(t *testing.T) {
	for _, tc := range []struct {
		websocket, n int
		want         []string
	}{
		{2, 1, []string{"2"}},
		{0, 3, []string{"0", "1", "2"}},
		{3, 0, []string{}},
		{3, -1, []string{}},
	} {
		if got := WebhookShardIDs(tc.websocket, tc.n); !slices.Equal(got, tc.want) {
			t.Errorf("WebhookShardIDs(%d, %d) = %v, want %v", tc.websocket, tc.n, got, tc.want)
		}
	}
}

func TestKeepWebhookShards(t *testing.T) {
	f := newFixture(t, twitchtest.Options{})
	ctx := context.Background()
	const secret = "s3cret-webhook-value"
	cb := newCallback(t, secret)
	cd, err := f.client.CreateConduit(ctx, 3)
	if err != nil {
		t.Fatal(err)
	}
	w := WebhookShards{IDs: WebhookShardIDs(1, 2), Callback: cb.url(), Secret: secret}
	shard := func(id string) twitchtest.ShardInfo {
		t.Helper()
		sh, err := f.fake.Shards(cd.ID)
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range sh {
			if s.ID == id {
				return s
			}
		}
		t.Fatalf("no shard %s in %+v", id, sh)
		return twitchtest.ShardInfo{}
	}
	enabled := func(id string) bool {
		s := shard(id)
		return s.Status == twitchtest.ShardEnabled && s.Method == "webhook" && s.Callback == cb.url()
	}
	keep := func(want ...string) {
		t.Helper()
		got, err := KeepWebhookShards(ctx, f.client, cd.ID, w)
		if err != nil || !slices.Equal(got, want) {
			t.Fatalf("KeepWebhookShards = %v, %v; want %v", got, err, want)
		}
	}

	// Fresh shards are unassigned: both are associated and verified.
	keep("1", "2")
	waitFor(t, "shards 1 and 2 enabled on the callback", func() bool { return enabled("1") && enabled("2") })
	if n := cb.verifications.Load(); n != 2 {
		t.Fatalf("%d verifications, want 2", n)
	}
	// Enabled shards on this callback are left alone; shard 0 is not ours.
	keep()
	if s := shard("0"); s.Method == "webhook" {
		t.Fatalf("shard 0 is not listed but was touched: %+v", s)
	}

	// Twitch disabled one for failures: only that one is re-associated.
	if err := f.fake.DisableShard(cd.ID, "2", twitchtest.ShardNotificationFailures); err != nil {
		t.Fatal(err)
	}
	keep("2")
	waitFor(t, "shard 2 enabled again", func() bool { return enabled("2") })

	// Someone pointed a shard elsewhere: it is pointed back.
	other := newCallback(t, secret)
	if _, err := f.client.UpdateConduitShards(ctx, cd.ID, []twitch.ShardAssignment{{ID: "1", Transport: twitch.WebhookShard(other.url(), secret)}}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "shard 1 moved to the other callback", func() bool { s := shard("1"); return s.Callback == other.url() && s.Status == twitchtest.ShardEnabled })
	keep("1")
	waitFor(t, "shard 1 back on the callback", func() bool { return enabled("1") })

	// A failed verification is retried on the next round, and succeeds once the
	// callback answers again.
	cb.refuse.Store(true)
	if err := f.fake.DisableShard(cd.ID, "1", twitchtest.ShardNotificationFailures); err != nil {
		t.Fatal(err)
	}
	keep("1")
	waitFor(t, "shard 1 verification failed", func() bool { return shard("1").Status == twitchtest.ShardVerificationFailed })
	cb.refuse.Store(false)
	keep("1")
	waitFor(t, "shard 1 verified on the retry", func() bool { return enabled("1") })
}

// Notifications of a conduit subscription reach a webhook shard's callback, signed
// with the secret KeepWebhookShards gave Twitch.
func TestKeepWebhookShardsDelivers(t *testing.T) {
	f := newFixture(t, twitchtest.Options{})
	ctx := context.Background()
	const secret = "another-webhook-secret"
	cb := newCallback(t, secret)
	cd, err := f.client.CreateConduit(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := KeepWebhookShards(ctx, f.client, cd.ID, WebhookShards{IDs: []string{"0"}, Callback: cb.url(), Secret: secret}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "shard 0 enabled", func() bool {
		sh, _ := f.fake.Shards(cd.ID)
		return len(sh) == 1 && sh[0].Status == twitchtest.ShardEnabled
	})
	f.fake.AddUser(twitchtest.User{ID: "1337", Login: "broadcaster"})
	sub, err := f.client.CreateEventSubSubscription(ctx, twitch.CreateSubscriptionRequest{Type: twitch.TypeChannelUpdate, Version: twitch.VersionChannelUpdate,
		Condition: map[string]string{"broadcaster_user_id": "1337"}, Transport: twitch.ConduitTransport(cd.ID)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.fake.Notify(twitchtest.Notification{Type: sub.Type, Event: f.fake.UpdateEvent("1337", "title", "en", "1", "cat", nil)}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the notification at the callback", func() bool { return cb.notifications.Load() == 1 })
	if lost := f.fake.LostNotifications(); len(lost) != 0 {
		t.Fatalf("lost: %+v", lost)
	}
}

func TestKeepWebhookShardsRefuses(t *testing.T) {
	f := newFixture(t, twitchtest.Options{})
	ctx := context.Background()
	const secret = "s3cret-webhook-value"
	cb := newCallback(t, secret)
	cd, err := f.client.CreateConduit(ctx, 2)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name      string
		conduitID string
		w         WebhookShards
		wantErr   string
		changed   []string
	}{
		{name: "nothing listed", conduitID: cd.ID, w: WebhookShards{}},
		{name: "no conduit id", w: WebhookShards{IDs: []string{"1"}, Callback: cb.url(), Secret: secret}, wantErr: "conduit id is required"},
		{name: "no callback", conduitID: cd.ID, w: WebhookShards{IDs: []string{"1"}, Secret: secret}, wantErr: "EVENTSUB_WEBHOOK_CALLBACK_URL"},
		{name: "no secret", conduitID: cd.ID, w: WebhookShards{IDs: []string{"1"}, Callback: cb.url()}, wantErr: "TWITCH_EVENTSUB_WEBHOOK_SECRET"},
		{name: "short secret", conduitID: cd.ID, w: WebhookShards{IDs: []string{"1"}, Callback: cb.url(), Secret: "short"}, wantErr: "secret must be"},
		{name: "unknown conduit", conduitID: "nope", w: WebhookShards{IDs: []string{"1"}, Callback: cb.url(), Secret: secret}, wantErr: "nope"},
		{name: "shard beyond the conduit, the rest still kept", conduitID: cd.ID,
			w: WebhookShards{IDs: []string{"5", "1"}, Callback: cb.url(), Secret: secret}, wantErr: "shards [5] do not exist", changed: []string{"1"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			changed, err := KeepWebhookShards(ctx, f.client, tc.conduitID, tc.w)
			if (err == nil) != (tc.wantErr == "") || (err != nil && !strings.Contains(err.Error(), tc.wantErr)) {
				t.Fatalf("error %v, want one containing %q", err, tc.wantErr)
			}
			if err != nil && strings.Contains(err.Error(), secret) {
				t.Fatalf("the error leaks the secret: %v", err)
			}
			if !slices.Equal(changed, tc.changed) {
				t.Fatalf("changed %v, want %v", changed, tc.changed)
			}
		})
	}
	if s := (WebhookShards{IDs: []string{"1"}, Callback: cb.url(), Secret: secret}); strings.Contains(s.String()+s.GoString(), secret) {
		t.Fatal("String leaks the secret")
	}
}
