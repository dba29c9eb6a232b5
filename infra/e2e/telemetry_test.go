package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/bitbrat/twitch-edge/infra/collect"
	"github.com/bitbrat/twitch-edge/infra/faketwitch"
	"github.com/bitbrat/twitch-edge/infra/stack"
	"github.com/bitbrat/twitch-edge/shared/emulators"
	"github.com/bitbrat/twitch-edge/shared/event"
	"github.com/bitbrat/twitch-edge/shared/logging"
	"github.com/bitbrat/twitch-edge/shared/telemetry/otlptest"
)

// TestTelemetryReachesAnOTLPReceiver runs the stack (fake Twitch, connector, functions
// server, emulators) exporting to an in-test OTLP receiver, sends a known stream (three
// follows, one chat message), and checks the metrics' values, the traces across the
// bus, and the trace fields of the log lines. Every wait is for a condition; the
// components export every second, and the deadline is only a hang guard.
func TestTelemetryReachesAnOTLPReceiver(t *testing.T) {
	rcv, err := otlptest.Start()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(rcv.Stop) // after the stack's cleanup: the components' last export lands
	logs := &logBuffer{}
	project := emulators.ProjectID(t)
	st, err := stack.Start(context.Background(), stack.Options{
		Project:       project,
		PubSubHost:    emulators.Host(emulators.PubSub),
		FirestoreHost: emulators.Host(emulators.Firestore),
		BinDir:        t.TempDir(),
		Output:        logs.add,
		MinBackoff:    500 * time.Millisecond,
		MaxBackoff:    5 * time.Second,
		Env: map[string]string{
			"OTEL_EXPORTER_OTLP_ENDPOINT": rcv.Endpoint(),
			"OTEL_TRACES_SAMPLER_ARG":     "1",
			"OTEL_METRIC_EXPORT_INTERVAL": "1000",
		},
	})
	if err != nil {
		t.Fatalf("start the stack: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute) // hang guard
	defer cancel()
	ingress := collect.NewEvents()
	wctx, stopWatch := context.WithCancel(ctx)
	watched := make(chan struct{})
	go func() {
		defer close(watched)
		if err := st.Watch(wctx, st.Subs.WatchIngress, ingress.Add); err != nil {
			t.Errorf("%v", err)
		}
	}()
	t.Cleanup(func() {
		stopWatch()
		<-watched
		st.Stop()
		if t.Failed() {
			t.Logf("metric names received: %v", rcv.Names())
			t.Logf("components' logs (last lines):\n%s", tail(logs.String(), 8000))
		}
	})
	ctl := &faketwitch.Client{BaseURL: st.Fake.ControlURL()}

	// The stream: three follows in bitbrat_demo (1001).
	var cids []string
	for _, user := range []string{"pixel_pioneer", "lurker_larry", "chat_champ"} {
		res, err := ctl.Trigger(ctx, faketwitch.TriggerRequest{Type: "channel.follow", Broadcaster: "bitbrat_demo", User: user})
		if err != nil {
			t.Fatalf("trigger: %v", err)
		}
		for _, id := range res.MessageIDs {
			cids = append(cids, event.CorrelationIDForEventSub(id))
		}
	}
	if len(cids) != 3 {
		t.Fatalf("%d notifications triggered, want 3", len(cids))
	}
	var first *event.InternalEventV2
	for i, cid := range cids {
		got, err := ingress.WaitFor(ctx, cid)
		if err != nil {
			t.Fatalf("no ingress event %s: %v", cid, err)
		}
		if i == 0 {
			if first, err = event.Decode(got.Data); err != nil {
				t.Fatal(err)
			}
		}
	}

	// One chat message: egress → Helix → finalize.
	text := "telemetry " + uuid.NewString()[:8]
	eg := egressEvent(st.Topics.Egress, "chat", "#cooler_user", "2003", text)
	if err := st.PublishEgress(ctx, eg); err != nil {
		t.Fatal(err)
	}

	apiHost := ""
	if u, err := url.Parse(st.Fake.Twitch.APIBaseURL()); err == nil {
		apiHost = u.Host
	}
	want := map[string]float64{
		otlptest.Key("connector", "eventsub_ingress_total", "type=channel.follow", "channel=1001"):         3,
		otlptest.Key("connector", "relay_published_total"):                                                 3,
		otlptest.Key("connector", "relay_frame_to_publish_seconds"):                                        3,
		otlptest.Key("connector", "eventsub_notifications_total"):                                          3,
		otlptest.Key("connector", "connector_ready"):                                                       1,
		otlptest.Key("connector", "eventsub_subscriptions", "status=failed"):                               0,
		otlptest.Key("functions", "function_messages_total", "function=Normalize", "outcome=ok", "code="):  3,
		otlptest.Key("functions", "function_messages_total", "function=EgressChat", "outcome=ok", "code="): 1,
		otlptest.Key("functions", "function_messages_total", "function=Finalize", "outcome=ok", "code="):   1,
		otlptest.Key("functions", "egress_outcomes_total", "kind=chat", "status=SENT", "code="):            1,
	}
	present := []string{
		otlptest.Key("connector", "eventsub_subscriptions", "status=enabled"),
		otlptest.Key("connector", "relay_buffer_fill_ratio"),
		otlptest.Key("functions", "helix_ratelimit_remaining", "host="+apiHost),
		otlptest.Key("functions", "egress_send_budget_remaining", "budget=chat", "channel=1002"),
	}
	metricsOK := func() bool {
		for k, v := range want {
			if got, ok := rcv.Value(k); !ok || got != v {
				return false
			}
		}
		for _, k := range present {
			if _, ok := rcv.Value(k); !ok {
				return false
			}
		}
		return true
	}
	if err := rcv.Wait(ctx, metricsOK); err != nil {
		for k, v := range want {
			got, ok := rcv.Value(k)
			t.Logf("%s = %v (received %v), want %v", k, got, ok, v)
		}
		for _, k := range present {
			_, ok := rcv.Value(k)
			t.Logf("%s received %v", k, ok)
		}
		t.Fatalf("the metrics never reached their values: %v", err)
	}
	if v, _ := rcv.Value(otlptest.Key("connector", "eventsub_subscriptions", "status=enabled")); v < 1 {
		t.Errorf("eventsub_subscriptions{status=enabled} = %v", v)
	}

	// One trace from the connector's publish to the ingress publish, and the event's
	// traceId is it.
	trace := first.TraceID
	if len(trace) != 32 {
		t.Fatalf("ingress event traceId %q is not a W3C trace id", trace)
	}
	find := func(traceID, service, name string) (otlptest.Span, bool) {
		for _, s := range rcv.Spans() {
			if s.TraceID == traceID && s.Service == service && s.Name == name {
				return s, true
			}
		}
		return otlptest.Span{}, false
	}
	rawCreate, normalize, ingressCreate := st.Topics.Raw+" create", "Normalize process", st.Topics.Ingress+" create"
	err = rcv.Wait(ctx, func() bool {
		_, a := find(trace, "connector", rawCreate)
		_, b := find(trace, "functions", normalize)
		_, c := find(trace, "functions", ingressCreate)
		return a && b && c
	})
	if err != nil {
		t.Fatalf("trace %s lacks the connector → Normalize → ingress spans: %v\nspans: %+v", trace, err, rcv.Spans())
	}
	a, _ := find(trace, "connector", rawCreate)
	b, _ := find(trace, "functions", normalize)
	c, _ := find(trace, "functions", ingressCreate)
	if b.ParentID != a.SpanID || c.ParentID != b.SpanID {
		t.Errorf("spans not chained connector → Normalize → ingress: %+v %+v %+v", a, b, c)
	}

	// egress → Helix → finalize in one trace.
	var egressTrace string
	err = rcv.Wait(ctx, func() bool {
		for _, s := range rcv.Spans() {
			if s.Service == "functions" && s.Name == "EgressChat process" {
				egressTrace = s.TraceID
				_, fin := find(egressTrace, "functions", "Finalize process")
				helix := false
				for _, h := range rcv.Spans() {
					helix = helix || (h.TraceID == egressTrace && h.Kind == "SPAN_KIND_CLIENT")
				}
				return fin && helix
			}
		}
		return false
	})
	if err != nil {
		t.Fatalf("no trace from EgressChat through Helix to Finalize: %v\nspans: %+v", err, rcv.Spans())
	}

	// The log lines written while handling the first follow carry its trace.
	wantTrace := "projects/" + project + "/traces/" + trace
	found := false
	for _, line := range strings.Split(logs.String(), "\n") {
		_, js, ok := strings.Cut(line, " | ")
		if !ok || !strings.Contains(js, "normalize: event published") || !strings.Contains(js, first.CorrelationID) {
			continue
		}
		var m map[string]any
		if json.Unmarshal([]byte(js), &m) != nil {
			continue
		}
		found = true
		if m[logging.KeyTrace] != wantTrace || m[logging.KeySpanID] != b.SpanID {
			t.Errorf("log line %s: trace %v span %v, want %s %s", js, m[logging.KeyTrace], m[logging.KeySpanID], wantTrace, b.SpanID)
		}
	}
	if !found {
		t.Errorf("no Normalize log line for %s", first.CorrelationID)
	}

	// `make run`'s view: both servers answer /metrics in the Prometheus format.
	for _, u := range []string{st.ConnectorURL + "/metrics", st.FunctionsURL + "/metrics"} {
		body, err := get(ctx, u)
		if err != nil {
			t.Fatal(err)
		}
		for _, name := range []string{"relay_published_total 3", `function_messages_total{code="",function="Normalize",outcome="ok"} 3`} {
			if strings.Contains(u, st.ConnectorURL) == strings.HasPrefix(name, "relay") && !strings.Contains(body, name) {
				t.Errorf("%s lacks %q:\n%s", u, name, tail(body, 3000))
			}
		}
	}
}

func get(ctx context.Context, u string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return "", err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("GET %s: %s", u, resp.Status)
	}
	return string(b), err
}
