package e2e

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bitbrat/twitch-edge/infra/collect"
	"github.com/bitbrat/twitch-edge/infra/faketwitch"
	"github.com/bitbrat/twitch-edge/infra/stack"
	"github.com/bitbrat/twitch-edge/shared/emulators"
	"github.com/bitbrat/twitch-edge/shared/event"
	"github.com/bitbrat/twitch-edge/shared/store"
	"github.com/bitbrat/twitch-edge/shared/twitch/twitchtest"
)

// Serverless mode as `make run TRANSPORT=serverless` runs it: no connector process.
// The stack ticks EventSubReconcile through a Pub/Sub topic and a push subscription;
// the function creates the conduit with its webhook shard (the fake verifies the
// functions server's /EventSubWebhook) and the subscriptions; notifications the fake
// sends go through /EventSubWebhook to the raw topic and Normalize (push subscription)
// to internal.ingress.v1, each exactly once; a channel added to the channels
// collection at runtime is subscribed by a later tick and its notifications flow too.
func TestWebhookServerlessMode(t *testing.T) {
	logs := &logBuffer{}
	st, err := stack.Start(context.Background(), stack.Options{
		Project: emulators.ProjectID(t), PubSubHost: emulators.Host(emulators.PubSub), FirestoreHost: emulators.Host(emulators.Firestore),
		BinDir: t.TempDir(), Output: logs.add, Transport: stack.TransportServerless, ReconcileEvery: 2 * time.Second,
		MinBackoff: 500 * time.Millisecond, MaxBackoff: 5 * time.Second,
	})
	if err != nil {
		t.Fatalf("start the stack: %v", err)
	}
	stopSignals := st.StopOnSignal()
	ingress := collect.NewEvents()
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		if err := st.Watch(ctx, st.Subs.WatchIngress, ingress.Add); err != nil {
			t.Errorf("%v", err)
		}
	}()
	t.Cleanup(func() {
		cancel()
		wg.Wait()
		st.Stop()
		stopSignals()
		out := logs.String()
		if strings.Contains(out, stack.LocalWebhookSecret) {
			t.Error("the webhook secret appears in the components' logs")
		}
		if t.Failed() {
			t.Logf("components' logs (last lines):\n%s", tail(out, 15000))
		}
	})
	if pids := st.ConnectorPID(); pids != 0 || len(st.ConnectorURLs()) != 0 {
		t.Fatalf("serverless mode runs a connector (pid %d)", pids)
	}
	cds := st.Fake.Twitch.Conduits()
	if len(cds) != 1 || len(cds[0].Shards) != 1 || cds[0].Shards[0].Method != "webhook" || cds[0].Shards[0].Callback != st.WebhookURL() {
		t.Fatalf("conduits %+v, want one with one webhook shard at %s", cds, st.WebhookURL())
	}
	ctl := &faketwitch.Client{BaseURL: st.Fake.ControlURL()}
	wait, done := context.WithTimeout(context.Background(), 2*time.Minute)
	defer done()

	var cids []string
	const n = 50
	for i := range n {
		res, err := ctl.Trigger(wait, faketwitch.TriggerRequest{Type: "channel.update", Broadcaster: "bitbrat_demo", Title: "serverless " + string(rune('a'+i%26))})
		if err != nil || len(res.MessageIDs) != 1 {
			t.Fatalf("trigger %d: %v %+v", i, err, res)
		}
		cids = append(cids, event.CorrelationIDForEventSub(res.MessageIDs[0]))
	}
	if err := ingress.WaitForAll(wait, cids); err != nil {
		t.Fatalf("ingress: %v (missing %d)", err, len(ingress.Missing(cids)))
	}
	if lost := st.Fake.Twitch.LostNotifications(); len(lost) != 0 {
		t.Fatalf("the fake lost %d notifications", len(lost))
	}

	// A channel added at runtime: a later tick subscribes it.
	logins := st.Fake.ChannelLogins()
	const late = "1003"
	st.Fake.Twitch.AddUser(twitchtest.User{ID: late, Login: "late_streamer", DisplayName: "Late_Streamer"})
	st.Fake.Twitch.AddModerator(late, faketwitch.BotID)
	if err := store.NewChannels(st.Firestore, nil).Add(wait, store.Channel{BroadcasterID: late, Login: "late_streamer"}); err != nil {
		t.Fatal(err)
	}
	if err := st.Fake.Twitch.Wait(wait, func() bool {
		for _, x := range st.Fake.Twitch.EnabledSubscriptions() {
			if x.Condition["broadcaster_user_id"] == late && x.Type == "channel.update" {
				return true
			}
		}
		return false
	}); err != nil {
		t.Fatalf("the added channel was not subscribed: %v", err)
	}
	ids, err := st.Fake.Twitch.Notify(twitchtest.Notification{Type: "channel.update", Condition: map[string]string{"broadcaster_user_id": late},
		Event: st.Fake.Twitch.UpdateEvent(late, "hello", "en", "1", "Cat", nil)})
	if err != nil || len(ids) != 1 {
		t.Fatalf("notify for the added channel: %v %v", err, ids)
	}
	late1 := event.CorrelationIDForEventSub(ids[0])
	if _, err := ingress.WaitFor(wait, late1); err != nil {
		t.Fatalf("the added channel's event: %v", err)
	}
	all := append(cids, late1)
	if rep := ingress.Repeated(all); rep != 0 {
		t.Fatalf("%d events arrived more than once", rep)
	}
	t.Logf("serverless mode: %d notifications through the webhook shard, each once on ingress; channels %v + late_streamer", len(all), logins)
}
