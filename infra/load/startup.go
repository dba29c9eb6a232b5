package load

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"syscall"
	"time"

	"cloud.google.com/go/pubsub/v2"
	"github.com/google/uuid"

	"github.com/bitbrat/twitch-edge/infra/stack"
	"github.com/bitbrat/twitch-edge/shared/bus"
	"github.com/bitbrat/twitch-edge/shared/emulators"
	"github.com/bitbrat/twitch-edge/shared/event"
)

// MeasureStartup starts the functions server (fnBin) runs times and measures, from
// just before the process is started: the first HTTP response of any kind (the
// server listens), and the first Normalize invocation acknowledged — a Pub/Sub push
// of a real channel.follow frame, POSTed as the emulator's push subscription would,
// which makes the function build its clients, claim the notification in Firestore
// and publish to the ingress topic.
func MeasureStartup(ctx context.Context, fnBin, project string, hosts map[emulators.Kind]string, ps *pubsub.Client, runs int) (*Startup, error) {
	topics := []string{event.TopicIngress, event.TopicDeadLetter, event.TopicEventSubRaw}
	if err := bus.EnsureTopics(ctx, ps, topics...); err != nil {
		return nil, err
	}
	root, err := stack.ModuleRoot()
	if err != nil {
		return nil, err
	}
	frame, err := os.ReadFile(filepath.Join(root, "functions", "normalize", "testdata", "follow.frame.json"))
	if err != nil {
		return nil, fmt.Errorf("read a sample frame: %w", err)
	}
	su := &Startup{Runs: runs}
	hc := &http.Client{Timeout: 10 * time.Second}
	for i := 0; i < runs; i++ {
		listen, first, err := startupOnce(ctx, hc, fnBin, project, hosts, frame)
		if err != nil {
			return nil, fmt.Errorf("run %d: %w", i+1, err)
		}
		su.ListenAll = append(su.ListenAll, listen)
		su.FirstAll = append(su.FirstAll, first)
	}
	su.Listen, su.First = median(su.ListenAll), median(su.FirstAll)
	return su, nil
}

func startupOnce(ctx context.Context, hc *http.Client, fnBin, project string, hosts map[emulators.Kind]string, frame []byte) (listen, first time.Duration, err error) {
	port, err := freePort()
	if err != nil {
		return 0, 0, err
	}
	body, err := pushBody(frame, project)
	if err != nil {
		return 0, 0, err
	}
	base := "http://127.0.0.1:" + strconv.Itoa(port)
	c := stack.NewProcess("functions", fnBin, stack.ChildEnv(map[string]string{
		"PORT": strconv.Itoa(port), "HOST": "127.0.0.1", "GOOGLE_CLOUD_PROJECT": project,
		"PUBSUB_EMULATOR_HOST": hosts[emulators.PubSub], "FIRESTORE_EMULATOR_HOST": hosts[emulators.Firestore],
	}), nil)
	if err := c.Start(); err != nil {
		return 0, 0, err
	}
	started := c.StartedAt()
	defer c.Stop(syscall.SIGTERM, 5*time.Second)
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	// Poll as fast as is reasonable: the figure is in milliseconds.
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, base+"/", nil)
		if resp, err := hc.Do(req); err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			listen = time.Since(started)
			break
		}
		select {
		case <-c.Exited():
			return 0, 0, fmt.Errorf("the functions server exited:\n%s", lastLines(c.LogTail(), 20))
		case <-ctx.Done():
			return 0, 0, fmt.Errorf("the functions server never answered: %w", ctx.Err())
		case <-time.After(time.Millisecond):
		}
	}
	url := fmt.Sprintf("%s/Normalize/projects/%s/topics/%s", base, project, event.TopicEventSubRaw)
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	resp, err := hc.Do(req)
	if err != nil {
		return 0, 0, fmt.Errorf("push to Normalize: %w", err)
	}
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 2048))
	resp.Body.Close()
	first = time.Since(started)
	if resp.StatusCode/100 != 2 {
		return 0, 0, fmt.Errorf("push to Normalize: HTTP %d %s\n%s", resp.StatusCode, b, lastLines(c.LogTail(), 20))
	}
	return listen, first, nil
}

// pushBody wraps a raw notification frame (with a fresh message id) in the push
// envelope the Pub/Sub emulator POSTs.
func pushBody(frame []byte, project string) ([]byte, error) {
	var f map[string]any
	if err := json.Unmarshal(frame, &f); err != nil {
		return nil, fmt.Errorf("sample frame: %w", err)
	}
	md, _ := f["metadata"].(map[string]any)
	if md == nil {
		return nil, fmt.Errorf("sample frame has no metadata")
	}
	md["message_id"] = uuid.NewString()
	md["message_timestamp"] = time.Now().UTC().Format(time.RFC3339Nano)
	data, err := json.Marshal(f)
	if err != nil {
		return nil, fmt.Errorf("sample frame: %w", err)
	}
	return json.Marshal(map[string]any{
		"message": map[string]any{
			"data":        base64.StdEncoding.EncodeToString(data),
			"attributes":  map[string]string{"eventsub_message_id": md["message_id"].(string), "eventsub_subscription_type": "channel.follow"},
			"messageId":   strconv.FormatInt(time.Now().UnixNano(), 10),
			"publishTime": time.Now().UTC().Format(time.RFC3339Nano),
		},
		"subscription": "projects/" + project + "/subscriptions/startup-probe",
	})
}

func median(ds []time.Duration) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}
