package e2e

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/bitbrat/twitch-edge/infra/faketwitch"
	"github.com/bitbrat/twitch-edge/infra/stack"
	"github.com/bitbrat/twitch-edge/shared/config"
	"github.com/bitbrat/twitch-edge/shared/emulators"
	"github.com/bitbrat/twitch-edge/shared/twitch/twitchtest"
)

// `make run TRANSPORT=conduit WEBHOOK_SHARDS=1`: two connector instances, each
// holding one WebSocket shard, and a webhook shard on the functions server; every
// instance ready. Killing one instance's socket (twitchctl shard kill-socket) is
// healed by its holder: the shard is enabled again on a new session.
func TestWebhookConduitStackTwoInstances(t *testing.T) {
	if _, ok := config.SettingNamed("EVENTSUB_TRANSPORT"); !ok {
		t.Skip("the connector has no conduit mode in this tree (EVENTSUB_TRANSPORT is not a setting)")
	}
	logs := &logBuffer{}
	st, err := stack.Start(context.Background(), stack.Options{
		Project: emulators.ProjectID(t), PubSubHost: emulators.Host(emulators.PubSub), FirestoreHost: emulators.Host(emulators.Firestore),
		BinDir: t.TempDir(), Output: logs.add, Transport: stack.TransportConduit, WebhookShards: 1,
		MinBackoff: 500 * time.Millisecond, MaxBackoff: 5 * time.Second,
	})
	if err != nil {
		t.Fatalf("start the stack: %v", err)
	}
	stopSignals := st.StopOnSignal()
	t.Cleanup(func() {
		st.Stop()
		stopSignals()
		if t.Failed() {
			t.Logf("components' logs (last lines):\n%s", tail(logs.String(), 15000))
		}
	})
	urls := st.ConnectorURLs()
	if len(urls) != 2 || len(st.ChildPIDs()) != 3 {
		t.Fatalf("connector instances %v, processes %v; want 2 connectors and the functions server", urls, st.ChildPIDs())
	}
	for _, u := range urls {
		resp, err := http.Get(u + "/readyz")
		if err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("%s/readyz: %v %v", u, resp, err)
		}
		resp.Body.Close()
	}
	tw := st.Fake.Twitch
	ctx, cancel := context.WithTimeout(context.Background(), hybridWait)
	defer cancel()
	enabled := func() (ids []string, sessions map[string]string) {
		sessions = map[string]string{}
		cs := tw.Conduits()
		if len(cs) == 0 {
			return nil, sessions
		}
		for _, s := range cs[len(cs)-1].Shards {
			if s.Status == twitchtest.ShardEnabled {
				ids = append(ids, s.ID+"/"+s.Method)
				sessions[s.ID] = s.SessionID
			}
		}
		return ids, sessions
	}
	if err := tw.Wait(ctx, func() bool { ids, _ := enabled(); return strings.Join(ids, ",") == "0/websocket,1/websocket,2/webhook" }); err != nil {
		ids, _ := enabled()
		t.Fatalf("shards enabled %v, want two WebSocket shards and the webhook shard: %v", ids, err)
	}
	_, before := enabled()
	ctl := &faketwitch.Client{BaseURL: st.Fake.ControlURL()}
	cid := tw.Conduits()[0].ID
	if _, err := ctl.KillShardSocket(ctx, faketwitch.ShardRequest{Conduit: cid, Shard: "0"}); err != nil {
		t.Fatal(err)
	}
	if err := tw.Wait(ctx, func() bool {
		ids, now := enabled()
		return len(ids) == 3 && now["0"] != before["0"] && now["0"] != ""
	}); err != nil {
		t.Fatalf("shard 0 not re-associated after its socket was killed: %v", err)
	}
}
