package e2e

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bitbrat/twitch-edge/infra/collect"
	"github.com/bitbrat/twitch-edge/infra/faketwitch"
	"github.com/bitbrat/twitch-edge/infra/stack"
	"github.com/bitbrat/twitch-edge/shared/config"
	"github.com/bitbrat/twitch-edge/shared/emulators"
	"github.com/bitbrat/twitch-edge/shared/event"
	"github.com/bitbrat/twitch-edge/shared/store"
	"github.com/bitbrat/twitch-edge/shared/twitch/twitchtest"
)

// hybridWait only guards against a hang; every wait is for a condition.
const hybridWait = 3 * time.Minute

// A hybrid conduit: one connector instance in conduit mode holding the one WebSocket
// shard (0) and a webhook shard (1) on the functions server's /EventSubWebhook. A
// stream of notifications over 20 channels (so both shards are targets); the
// connector is SIGKILLed mid-stream, the stream goes on while it is away (Twitch
// retries what targets the dead WebSocket shard onto the webhook shard), then the
// connector is started again and takes its shard back once the lease expires.
// Every notification the fake generated is on internal.ingress.v1 exactly once, and
// the fake lost none.
//
// As in the conduit test, the stream pauses until what was sent is published before
// the kill: a crash loses what the process has read and not yet published, which no
// conduit can help (README, "Conduit mode").
func TestHybridConduitConnectorKilled(t *testing.T) {
	// The connector's conduit mode (EVENTSUB_TRANSPORT) comes with its settings; on a
	// tree without it the connector would run in WebSocket mode and this test would
	// only time out.
	if _, ok := config.SettingNamed("EVENTSUB_TRANSPORT"); !ok {
		t.Skip("the connector has no conduit mode in this tree (EVENTSUB_TRANSPORT is not a setting)")
	}
	logs := &logBuffer{}
	st, err := stack.Start(context.Background(), stack.Options{
		Project: emulators.ProjectID(t), PubSubHost: emulators.Host(emulators.PubSub), FirestoreHost: emulators.Host(emulators.Firestore),
		BinDir: t.TempDir(), Output: logs.add, Transport: stack.TransportConduit, Connectors: 1, WebhookShards: 1,
		ConnectorEnv: map[string]string{"CONNECTOR_LEASE_TTL": "6s", "CONNECTOR_SHUTDOWN_GRACE": "8s"},
		MinBackoff:   500 * time.Millisecond, MaxBackoff: 5 * time.Second,
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
		if strings.Contains(logs.String(), stack.LocalWebhookSecret) {
			t.Error("the webhook secret appears in the components' logs")
		}
		if t.Failed() {
			t.Logf("components' logs (last lines):\n%s", tail(logs.String(), 20000))
		}
	})
	tw := st.Fake.Twitch
	waitFor := func(what string, cond func() bool) {
		t.Helper()
		wctx, wcancel := context.WithTimeout(context.Background(), hybridWait)
		defer wcancel()
		t.Logf("waiting for %s", what)
		if err := tw.Wait(wctx, cond); err != nil {
			t.Fatalf("waiting for %s: %v", what, err)
		}
	}
	shards := func() []twitchtest.ShardInfo {
		cs := tw.Conduits()
		if len(cs) == 0 {
			return nil
		}
		sh, _ := tw.Shards(cs[len(cs)-1].ID)
		return sh
	}
	bothEnabled := func() bool {
		sh := shards()
		return len(sh) == 2 && sh[0].Status == twitchtest.ShardEnabled && sh[0].Method == "websocket" &&
			sh[1].Status == twitchtest.ShardEnabled && sh[1].Method == "webhook" && sh[1].Callback == st.WebhookURL()
	}
	waitFor("the WebSocket shard and the webhook shard enabled", bothEnabled)

	// 20 channels: the two seeded ones and 18 from the channels collection.
	chs := append([]twitchtest.User(nil), faketwitch.Channels...)
	var docs []store.Channel
	for i := len(chs); i < 20; i++ {
		u := twitchtest.User{ID: strconv.Itoa(4000 + i), Login: fmt.Sprintf("hybrid_channel_%d", i)}
		tw.AddUser(u)
		tw.AddModerator(u.ID, faketwitch.BotID)
		chs = append(chs, u)
		docs = append(docs, store.Channel{BroadcasterID: u.ID, Login: u.Login})
	}
	if err := store.NewChannels(st.Firestore, nil).AddAll(context.Background(), docs); err != nil {
		t.Fatal(err)
	}
	cid := tw.Conduits()[0].ID
	waitFor("the follow subscriptions of 20 channels on the conduit", func() bool {
		n := 0
		for _, s := range tw.EnabledSubscriptions() {
			if s.Transport.ConduitID == cid && s.Type == "channel.follow" {
				n++
			}
		}
		return n == 20
	})

	var sent []string
	send := func(n int) {
		t.Helper()
		for i := range n {
			ch := chs[(len(sent)+i)%len(chs)]
			v := faketwitch.Viewers[i%len(faketwitch.Viewers)]
			ids, err := tw.Notify(twitchtest.Notification{Type: "channel.follow", Condition: map[string]string{"broadcaster_user_id": ch.ID},
				Event: tw.FollowEvent(ch.ID, v.ID, time.Now())})
			if err != nil || len(ids) != 1 {
				t.Fatalf("notify: %v %v", err, ids)
			}
			sent = append(sent, ids...)
		}
	}
	settle := func(what string) {
		t.Helper()
		cids := make([]string, len(sent))
		for i, id := range sent {
			cids[i] = event.CorrelationIDForEventSub(id)
		}
		wctx, wcancel := context.WithTimeout(context.Background(), hybridWait)
		defer wcancel()
		if err := ingress.WaitForAll(wctx, cids); err != nil {
			t.Fatalf("%s: %v (%d of %d missing)", what, err, len(ingress.Missing(cids)), len(cids))
		}
	}

	send(200)
	settle("before the kill")
	st.KillConnector()
	waitFor("the WebSocket shard disabled", func() bool { sh := shards(); return len(sh) == 2 && sh[0].Status != twitchtest.ShardEnabled })
	before := len(tw.ConduitDeliveries())
	send(200) // the connector is away: what targets shard 0 is retried on the webhook shard
	retried := 0
	for _, d := range tw.ConduitDeliveries()[before:] {
		if d.Target == "0" && d.Retry == "1" && d.DeliveredTo == "1" {
			retried++
		}
	}
	if retried == 0 {
		t.Fatalf("no notification was retried onto the webhook shard while the connector was away")
	}
	if err := st.StartConnector(context.Background()); err != nil {
		t.Fatalf("restart the connector: %v", err)
	}
	waitFor("the WebSocket shard held again", bothEnabled)
	send(200)
	settle("after the restart")

	cids := make([]string, len(sent))
	for i, id := range sent {
		cids[i] = event.CorrelationIDForEventSub(id)
	}
	if rep := ingress.Repeated(cids); rep != 0 {
		t.Fatalf("%d notifications on ingress more than once", rep)
	}
	if lost := tw.LostNotifications(); len(lost) != 0 {
		t.Fatalf("the fake lost %d notifications (first %+v)", len(lost), lost[0])
	}
	t.Logf("hybrid conduit: %d notifications, each once on ingress; %d retried onto the webhook shard while the connector was away", len(sent), retried)
}
