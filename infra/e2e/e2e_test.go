// Package e2e tests the whole pipeline as `make run` wires it, through the real
// emulators: the fake Twitch, the connector and the functions server as subprocesses,
// Pub/Sub push subscriptions driving the functions over HTTP, Firestore.
package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/bitbrat/twitch-edge/infra/collect"
	"github.com/bitbrat/twitch-edge/infra/faketwitch"
	"github.com/bitbrat/twitch-edge/infra/stack"
	"github.com/bitbrat/twitch-edge/shared/bus"
	"github.com/bitbrat/twitch-edge/shared/emulators"
	"github.com/bitbrat/twitch-edge/shared/event"
	"github.com/bitbrat/twitch-edge/shared/twitch/twitchtest"
)

func TestMain(m *testing.M) {
	os.Exit(emulators.RunTests(m, emulators.PubSub, emulators.Firestore))
}

// TestLocalStack brings one stack up and runs every scenario on it, in order; the last
// one stops it and checks that nothing is left running.
func TestLocalStack(t *testing.T) {
	h := startStack(t)

	t.Run("FollowArrivesOnIngressAsContractEvent", h.testFollow)
	t.Run("DMEgressWhispersOnceAndRecordsSent", h.testWhisper)
	t.Run("ChatEgressSendsOneChatMessage", h.testChat)
	t.Run("ReconnectDuringStreamLosesNothing", h.testReconnect)
	t.Run("StopLeavesNoProcess", h.testStop)
}

type harness struct {
	t    *testing.T
	st   *stack.Stack
	ctl  *faketwitch.Client
	logs *logBuffer

	ingress, finalize, deadletter *collect.Events
}

func startStack(t *testing.T) *harness {
	t.Helper()
	logs := &logBuffer{}
	begin := time.Now()
	st, err := stack.Start(context.Background(), stack.Options{
		Project:       emulators.ProjectID(t),
		PubSubHost:    emulators.Host(emulators.PubSub),
		FirestoreHost: emulators.Host(emulators.Firestore),
		BinDir:        t.TempDir(),
		FakeTwitch:    faketwitch.Options{ReconnectGrace: 5 * time.Second},
		Output:        logs.add,
		MinBackoff:    500 * time.Millisecond,
		MaxBackoff:    5 * time.Second,
	})
	if err != nil {
		t.Fatalf("start the stack: %v", err)
	}
	t.Logf("stack ready in %s (build, functions server, connector ready)", time.Since(begin).Round(100*time.Millisecond))
	stopSignals := st.StopOnSignal()

	ctx, cancel := context.WithCancel(context.Background())
	h := &harness{t: t, st: st, ctl: &faketwitch.Client{BaseURL: st.Fake.ControlURL()}, logs: logs,
		ingress: collect.NewEvents(), finalize: collect.NewEvents(), deadletter: collect.NewEvents()}
	var wg sync.WaitGroup
	for sub, c := range map[string]*collect.Events{
		st.Subs.WatchIngress: h.ingress, st.Subs.WatchFinalize: h.finalize, st.Subs.WatchDeadLetter: h.deadletter,
	} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := st.Watch(ctx, sub, c.Add); err != nil {
				t.Errorf("%v", err)
			}
		}()
	}
	tok := st.Fake.BotToken()
	t.Cleanup(func() {
		cancel()
		wg.Wait()
		st.Stop()
		stopSignals()
		out := logs.String()
		for _, secret := range []string{tok.AccessToken, tok.RefreshToken, st.Fake.BotToken().AccessToken} {
			if secret != "" && strings.Contains(out, secret) {
				t.Errorf("a bot token appears in the components' logs")
			}
		}
		if t.Failed() {
			t.Logf("components' logs (last lines):\n%s", tail(out, 12000))
			if n := h.deadletter.Len(); n > 0 {
				t.Logf("%d dead letters:\n%s", n, h.deadletter.Dump(4000))
			}
		}
	})
	return h
}

func (h *harness) testFollow(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 45*time.Second)
	defer cancel()
	res, err := h.ctl.Trigger(ctx, faketwitch.TriggerRequest{Type: "channel.follow", Broadcaster: "bitbrat_demo", User: "pixel_pioneer"})
	if err != nil {
		t.Fatalf("trigger: %v", err)
	}
	if len(res.MessageIDs) != 1 {
		t.Fatalf("trigger sent %d notifications, want 1 (one channel.follow subscription per channel)", len(res.MessageIDs))
	}
	msgID := res.MessageIDs[0]
	cid := event.CorrelationIDForEventSub(msgID)
	got, err := h.ingress.WaitFor(ctx, cid)
	if err != nil {
		t.Fatalf("no event with correlationId %s on %s: %v", cid, h.st.Topics.Ingress, err)
	}
	e, err := event.Decode(got.Data)
	if err != nil {
		t.Fatalf("ingress message is not an InternalEventV2: %v\n%s", err, got.Data)
	}
	check := func(name, have, want string) {
		t.Helper()
		if have != want {
			t.Errorf("%s = %q, want %q", name, have, want)
		}
	}
	check("v", e.V, "1")
	check("type", e.Type, "twitch.eventsub.v1")
	check("source", e.Source, "ingress.twitch.eventsub")
	check("correlationId", e.CorrelationID, cid)
	check("channel", e.Channel, "#bitbrat_demo")
	check("userId", e.UserID, "2001")
	if e.ExternalEvent == nil {
		t.Fatalf("externalEvent missing:\n%s", got.Data)
	}
	x := e.ExternalEvent
	check("externalEvent.id", x.ID, msgID)
	check("externalEvent.source", x.Source, "twitch.eventsub")
	check("externalEvent.kind", x.Kind, "channel.follow")
	check("externalEvent.version", x.Version, "2")

	var raw map[string]any
	if err := json.Unmarshal(x.RawPayload, &raw); err != nil {
		t.Fatalf("externalEvent.rawPayload: %v", err)
	}
	for k, want := range map[string]string{"user_id": "2001", "user_login": "pixel_pioneer", "broadcaster_user_id": "1001", "broadcaster_user_login": "bitbrat_demo"} {
		if raw[k] != want {
			t.Errorf("rawPayload.%s = %v, want %s", k, raw[k], want)
		}
	}
	followedAt, _ := raw["followed_at"].(string)
	check("externalEvent.createdAt", x.CreatedAt, followedAt)

	var p map[string]any
	if err := json.Unmarshal(x.Payload, &p); err != nil {
		t.Fatalf("externalEvent.payload: %v", err)
	}
	for k, want := range map[string]string{
		"userId": "2001", "userLogin": "pixel_pioneer", "userDisplayName": "Pixel_Pioneer",
		"broadcasterId": "1001", "broadcasterLogin": "bitbrat_demo", "broadcasterDisplayName": "BitBrat_Demo",
		"followedAt": followedAt,
	} {
		if p[k] != want {
			t.Errorf("payload.%s = %v, want %s", k, p[k], want)
		}
	}
	for k, want := range map[string]string{"type": "twitch.eventsub.v1", "correlationid": cid, "idempotencykey": cid,
		"source": "ingress.twitch.eventsub", "channel": "#bitbrat_demo"} {
		if got.Attributes[k] != want {
			t.Errorf("attribute %s = %q, want %q", k, got.Attributes[k], want)
		}
	}
}

// egressEvent is what a BitBrat service publishes to have a response delivered.
func egressEvent(topic, kind, channel, userID, text string) *event.InternalEventV2 {
	return &event.InternalEventV2{
		V: "1", Source: "e2e", CorrelationID: uuid.NewString(), Type: "llm.bot.response.v1",
		Channel: channel, UserID: userID,
		Egress: &event.Egress{Destination: topic, Type: kind},
		Candidates: []event.CandidateV1{{
			ID: "c-" + uuid.NewString(), Kind: "text", Source: "e2e", CreatedAt: event.Timestamp(time.Now()),
			Status: "proposed", Priority: 1, Text: `"` + text + `"`,
		}},
	}
}

func (h *harness) testWhisper(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	text := "psst " + uuid.NewString()[:8]
	e := egressEvent(h.st.Topics.Egress, "dm", "#bitbrat_demo", "2002", text)
	if err := h.st.PublishEgress(ctx, e); err != nil {
		t.Fatal(err)
	}
	whispers := func() []twitchtest.Whisper {
		var out []twitchtest.Whisper
		for _, w := range h.st.Fake.Twitch.Whispers() {
			if w.Message == text {
				out = append(out, w)
			}
		}
		return out
	}
	if err := h.st.Fake.Twitch.Wait(ctx, func() bool { return len(whispers()) > 0 }); err != nil {
		h.explainNoDelivery(t, e.CorrelationID, stack.FnEgressWhisper)
		t.Fatalf("no whisper %q reached the fake Helix: %v", text, err)
	}
	h.waitSent(ctx, t, e.CorrelationID)
	// Let any duplicate (a redelivery that sent again) show up before counting.
	time.Sleep(2 * time.Second)
	ws := whispers()
	if len(ws) != 1 {
		t.Fatalf("%d whispers with the text, want exactly 1", len(ws))
	}
	if ws[0].FromUserID != faketwitch.BotID || ws[0].ToUserID != "2002" {
		t.Errorf("whisper from %s to %s, want from the bot %s to 2002", ws[0].FromUserID, ws[0].ToUserID, faketwitch.BotID)
	}
}

func (h *harness) testChat(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	text := "hello chat " + uuid.NewString()[:8]
	e := egressEvent(h.st.Topics.Egress, "chat", "#cooler_user", "2003", text)
	if err := h.st.PublishEgress(ctx, e); err != nil {
		t.Fatal(err)
	}
	chats := func() []twitchtest.ChatMessage {
		var out []twitchtest.ChatMessage
		for _, m := range h.st.Fake.Twitch.ChatMessages() {
			if m.Message == text {
				out = append(out, m)
			}
		}
		return out
	}
	if err := h.st.Fake.Twitch.Wait(ctx, func() bool { return len(chats()) > 0 }); err != nil {
		h.explainNoDelivery(t, e.CorrelationID, stack.FnEgressChat)
		t.Fatalf("no chat message %q reached the fake Helix: %v", text, err)
	}
	o := h.waitSent(ctx, t, e.CorrelationID)
	time.Sleep(2 * time.Second)
	ms := chats()
	if len(ms) != 1 {
		t.Fatalf("%d chat messages with the text, want exactly 1", len(ms))
	}
	m := ms[0]
	if m.BroadcasterID != "1002" || m.SenderID != faketwitch.BotID || !m.IsSent {
		t.Errorf("chat message to %s from %s (sent %v), want to cooler_user (1002) from the bot", m.BroadcasterID, m.SenderID, m.IsSent)
	}
	if o.ProviderMessageID != m.MessageID {
		t.Errorf("recorded providerMessageId %q, Twitch's message_id %q", o.ProviderMessageID, m.MessageID)
	}
}

// sentOutcome is what waitSent found on events/{correlationId}.
type sentOutcome struct{ ProviderMessageID string }

// waitSent waits until events/{cid} records a SENT delivery.
func (h *harness) waitSent(ctx context.Context, t *testing.T, cid string) sentOutcome {
	t.Helper()
	var last string
	for {
		o, ok, err := h.st.Outcome(ctx, cid)
		switch {
		case err != nil:
			last = err.Error()
		case !ok:
			last = "no document"
		case o.Delivery.Status == event.StatusSent:
			if o.CorrelationID != cid {
				t.Errorf("events/%s has correlationId %q", cid, o.CorrelationID)
			}
			return sentOutcome{ProviderMessageID: o.Delivery.ProviderMessageID}
		default:
			last = fmt.Sprintf("delivery status %q, error %+v", o.Delivery.Status, o.Delivery.Error)
		}
		select {
		case <-ctx.Done():
			t.Fatalf("events/%s never recorded SENT (last: %s)", cid, last)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// explainNoDelivery logs why an egress event may not have been delivered: the
// function not registered, or the event dead-lettered.
func (h *harness) explainNoDelivery(t *testing.T, cid, fn string) {
	t.Helper()
	for _, name := range []string{stack.FnEgressChat, fn} {
		resp, err := http.Post(h.st.FunctionsURL+"/"+name, "application/json", strings.NewReader("{}"))
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusNotFound {
				t.Errorf("%s is not registered with the functions server (functions/functions.go): the egress push subscription gets 404", name)
			}
		}
	}
	if m, ok := h.deadletter.Find(func(r bus.Received) bool { return strings.Contains(string(r.Data), cid) }); ok {
		t.Errorf("the event was dead-lettered: %s", tail(string(m.Data), 2000))
	}
}

func (h *harness) testReconnect(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	tw := h.st.Fake.Twitch
	before := tw.Sessions()
	if len(before) != 1 {
		t.Fatalf("%d live sessions before the reconnect, want 1", len(before))
	}
	const n = 200
	var cids []string
	channels := faketwitch.Channels
	for i := range n {
		if i == n/2 {
			if _, err := h.ctl.Reconnect(ctx, faketwitch.SessionRequest{}); err != nil {
				t.Fatalf("reconnect: %v", err)
			}
		}
		b := channels[i%len(channels)]
		v := faketwitch.Viewers[i%len(faketwitch.Viewers)]
		ids, err := tw.Notify(twitchtest.Notification{Type: "channel.follow",
			Condition: map[string]string{"broadcaster_user_id": b.ID}, Event: tw.FollowEvent(b.ID, v.ID, time.Now())})
		if err != nil {
			t.Fatalf("notification %d: %v", i, err)
		}
		for _, id := range ids {
			cids = append(cids, event.CorrelationIDForEventSub(id))
		}
	}
	if err := h.ingress.WaitForAll(ctx, cids); err != nil {
		missing := h.ingress.Missing(cids)
		t.Fatalf("%d of %d notifications never reached %s: %v (first missing: %v)", len(missing), len(cids), h.st.Topics.Ingress, err, first(missing, 5))
	}
	if dup := h.ingress.Repeated(cids); dup > 0 {
		t.Logf("%d events arrived more than once (Pub/Sub is at-least-once; consumers dedupe by correlationId)", dup)
	}
	after := tw.Sessions()
	if err := tw.Wait(ctx, func() bool { after = tw.Sessions(); return len(after) == 1 }); err != nil {
		t.Fatalf("sessions after the reconnect: %+v", after)
	}
	if after[0].ID == before[0].ID {
		t.Errorf("the connector is still on the old session %s", before[0].ID)
	}
	if ready, err := http.Get(h.st.ConnectorURL + "/readyz"); err != nil || ready.StatusCode != http.StatusOK {
		t.Errorf("connector not ready after the reconnect: %v", err)
	} else {
		ready.Body.Close()
	}
}

func (h *harness) testStop(t *testing.T) {
	pids := h.st.ChildPIDs()
	if len(pids) != 2 {
		t.Fatalf("child processes %v, want the functions server and the connector", pids)
	}
	begin := time.Now()
	h.st.Stop()
	t.Logf("stack stopped in %s", time.Since(begin).Round(100*time.Millisecond))
	for _, pid := range pids {
		if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
			t.Errorf("process %d still exists after Stop (kill 0: %v)", pid, err)
		}
		if err := syscall.Kill(-pid, 0); !errors.Is(err, syscall.ESRCH) {
			t.Errorf("process group %d still has members after Stop (kill 0: %v)", pid, err)
		}
	}
	client := &http.Client{Timeout: time.Second}
	for _, u := range []string{h.st.ConnectorURL + "/healthz", h.st.FunctionsURL + "/", h.st.Fake.ControlURL() + "/healthz", h.st.Fake.URL() + "/helix/users"} {
		if resp, err := client.Get(u); err == nil {
			resp.Body.Close()
			t.Errorf("%s still answers after Stop", u)
		}
	}
}

// logBuffer keeps the components' output.
type logBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *logBuffer) add(component, line string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.b.WriteString(component)
	l.b.WriteString(" | ")
	l.b.WriteString(line)
	l.b.WriteByte('\n')
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func tail(s string, n int) string {
	if len(s) > n {
		return "..." + s[len(s)-n:]
	}
	return s
}

func first(s []string, n int) []string {
	if len(s) > n {
		return s[:n]
	}
	return s
}
