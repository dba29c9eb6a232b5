package functions

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"testing"
	"time"

	"github.com/GoogleCloudPlatform/functions-framework-go/funcframework"
	"github.com/google/uuid"

	"github.com/bitbrat/twitch-edge/shared/bus"
	"github.com/bitbrat/twitch-edge/shared/emulators"
	"github.com/bitbrat/twitch-edge/shared/event"
)

// The functions read their configuration once per process, like a Cloud Functions
// instance: TestMain fixes it, and one local server serves every test.
var (
	project   string
	serverURL string
)

func TestMain(m *testing.M) {
	os.Exit(emulators.RunTestsWithSetup(m, func() error {
		project = fmt.Sprintf("functions-test-%d", time.Now().UnixNano()%1e9)
		os.Setenv("GOOGLE_CLOUD_PROJECT", project)
		os.Setenv("LOG_LEVEL", "debug")
		// The functions build their clients as deployed, from the environment.
		os.Setenv(emulators.PubSub.EnvVar(), emulators.Host(emulators.PubSub))
		os.Setenv(emulators.Firestore.EnvVar(), emulators.Host(emulators.Firestore))
		return nil
	}, emulators.PubSub, emulators.Firestore))
}

func startServer(t *testing.T) string {
	t.Helper()
	if serverURL != "" {
		return serverURL
	}
	for name, fn := range Handlers() {
		if err := funcframework.RegisterCloudEventFunctionContext(context.Background(), "/"+name+"/", fn); err != nil {
			t.Fatal(err)
		}
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	go func() { _ = funcframework.StartHostPort("127.0.0.1", fmt.Sprint(port)) }()
	serverURL = fmt.Sprintf("http://127.0.0.1:%d", port)
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port)); err == nil {
			c.Close()
			return serverURL
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatal("functions server did not start")
	return ""
}

// push POSTs a Pub/Sub push body, as the Pub/Sub emulator's push subscription sends it.
func push(t *testing.T, url string, data []byte, id string) int {
	t.Helper()
	body, _ := json.Marshal(map[string]any{
		"message": map[string]any{
			"data": base64.StdEncoding.EncodeToString(data), "messageId": id,
			"publishTime": time.Now().UTC().Format(time.RFC3339Nano), "attributes": map[string]string{},
		},
		"subscription": "projects/" + project + "/subscriptions/push-test",
	})
	resp, err := http.Post(url, "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

func TestNormalizeOverHTTPPush(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	base := startServer(t)
	ps, err := bus.NewClient(ctx, project, bus.WithEmulator(emulators.Host(emulators.PubSub)))
	if err != nil {
		t.Fatal(err)
	}
	defer ps.Close()
	raw, ingress, dead := event.TopicEventSubRaw, event.TopicIngress, event.TopicDeadLetter
	if err := bus.EnsureTopics(ctx, ps, raw, ingress, dead); err != nil {
		t.Fatal(err)
	}
	for sub, topic := range map[string]string{"watch-ingress": ingress, "watch-dead": dead} {
		if err := bus.EnsureSubscription(ctx, ps, bus.SubscriptionSpec{Name: sub, Topic: topic}); err != nil {
			t.Fatal(err)
		}
	}
	endpoint := fmt.Sprintf("%s/%s/projects/%s/topics/%s", base, NameNormalize, project, raw)
	frame, err := os.ReadFile("normalize/testdata/follow.frame.json")
	if err != nil {
		t.Fatal(err)
	}
	// A fresh message id each run: the project lives as long as the process, and
	// -count=N runs this test N times in it (the claim would make run 2 a duplicate).
	frame = bytes.ReplaceAll(frame, []byte("befa7b53-d79d-478f-86b9-120f112b044e"), []byte(uuid.NewString()))

	// 1. The real thing: the emulator pushes a published raw frame to the function.
	if err := bus.EnsureSubscription(ctx, ps, bus.SubscriptionSpec{Name: "push-normalize", Topic: raw, PushEndpoint: endpoint}); err != nil {
		t.Fatal(err)
	}
	pub := bus.NewPublisher(ps, nil)
	defer pub.Close()
	if _, err := pub.Publish(ctx, raw, frame, map[string]string{"message_type": "notification"}); err != nil {
		t.Fatal(err)
	}
	got, err := bus.CollectFor(ctx, ps, "watch-ingress", 2, 20*time.Second, 3*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 {
		t.Fatalf("ingress got %d events, want 1", len(got))
	}
	e, err := event.Decode(got[0].Data)
	if err != nil {
		t.Fatal(err)
	}
	if e.Type != event.TypeTwitchEventSub || e.ExternalEvent.Kind != "channel.follow" || e.Channel != "#cooler_user" ||
		got[0].Attributes["correlationid"] != e.CorrelationID {
		t.Errorf("event = %+v attrs=%v", e, got[0].Attributes)
	}

	// 2. A redelivery of the same notification publishes nothing new.
	if code := push(t, endpoint, frame, "redelivery-1"); code != http.StatusOK {
		t.Fatalf("redelivery answered %d", code)
	}
	if again, _ := bus.Collect(ctx, ps, "watch-ingress", 1, 2*time.Second); len(again) != 0 {
		t.Fatalf("redelivery published %d more events", len(again))
	}

	// 3. A poison message is acknowledged and lands on the dead-letter topic with its reason.
	if code := push(t, endpoint, []byte("not json at all"), "poison-1"); code != http.StatusOK {
		t.Fatalf("poison answered %d, want 200 (acknowledged)", code)
	}
	dl, err := bus.CollectFor(ctx, ps, "watch-dead", 1, 20*time.Second, time.Second)
	if err != nil || len(dl) != 1 {
		t.Fatalf("dead letters: %d %v", len(dl), err)
	}
	var d event.DeadLetter
	if err := json.Unmarshal(dl[0].Data, &d); err != nil {
		t.Fatal(err)
	}
	orig, _ := base64.StdEncoding.DecodeString(string(bytes.Trim(d.Original, `"`)))
	if d.Type != event.TypeDeadLetter || d.Payload.Error.Code != "EVENTSUB_BAD_FRAME" || d.Payload.Reason == "" || string(orig) != "not json at all" {
		t.Errorf("dead letter = %s", dl[0].Data)
	}
}
