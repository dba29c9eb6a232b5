package stack

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"syscall"
	"time"

	"github.com/bitbrat/twitch-edge/shared/bus"
)

// The stack's EventSub transports (Options.Transport), as the deployment's
// eventsub_transport names them.
const (
	// TransportWebSocket: one connector, one EventSub WebSocket (the default).
	TransportWebSocket = "websocket"
	// TransportConduit: Options.Connectors connector instances (default 2; 1 with
	// webhook shards is a hybrid conduit) in conduit mode, one
	// WebSocket shard each, plus Options.WebhookShards webhook shards on the
	// functions server's /EventSubWebhook.
	TransportConduit = "conduit"
	// TransportServerless: no connector; a conduit of webhook shards only, kept by
	// EventSubReconcile, which the stack ticks every Options.ReconcileEvery through a
	// Pub/Sub topic and a push subscription (as Cloud Scheduler does in the cloud).
	TransportServerless = "serverless"
)

// LocalWebhookSecret is TWITCH_EVENTSUB_WEBHOOK_SECRET of the local stack: the
// functions server checks the fake's signatures with it, and the connector or
// EventSubReconcile gives it to the webhook shards. Only for loopback.
const LocalWebhookSecret = "local-stack-eventsub-webhook-secret"

// FnEventSubWebhook and FnEventSubReconcile are the webhook and serverless entry
// points.
const (
	FnEventSubWebhook   = "EventSubWebhook"
	FnEventSubReconcile = "EventSubReconcile"
)

// reconcileTickTopic is the topic of EventSubReconcile's ticks (prefix applied), as
// Terraform names it.
const reconcileTickTopic = "twitch.eventsub.reconcile.tick"

// transport is Options.Transport with its default.
func (o Options) transport() string {
	if o.Transport == "" {
		return TransportWebSocket
	}
	return o.Transport
}

func (o Options) checkTransport() error {
	switch o.transport() {
	case TransportWebSocket:
		return nil
	case TransportConduit, TransportServerless:
		if o.RealTwitch != nil {
			// Conduits need the app's client secret and a public HTTPS callback for
			// webhook shards; the local stack offers neither against real Twitch.
			return fmt.Errorf("transport %s runs against the fake Twitch only", o.transport())
		}
		return nil
	}
	return fmt.Errorf("transport %q: want %s, %s or %s", o.Transport, TransportWebSocket, TransportConduit, TransportServerless)
}

// connectorCount is how many connector processes the stack runs.
func (o Options) connectorCount() int {
	switch o.transport() {
	case TransportServerless:
		return 0
	case TransportConduit:
		if o.Connectors > 0 {
			return o.Connectors // 1: a hybrid conduit, one instance and webhook shards
		}
		return 2
	}
	return 1
}

// webhookShards is how many webhook shards the conduit gets.
func (o Options) webhookShards() int {
	switch o.transport() {
	case TransportServerless:
		return max(o.WebhookShards, 1)
	case TransportConduit:
		return max(o.WebhookShards, 0)
	}
	return 0
}

// WebhookURL is the webhook shards' callback: the functions server's EventSubWebhook.
func (s *Stack) WebhookURL() string { return s.FunctionsURL + "/" + FnEventSubWebhook }

// ReconcileTickTopic is the topic the stack publishes EventSubReconcile's ticks to
// (serverless mode).
func (s *Stack) ReconcileTickTopic() string { return s.Prefix.Topic(reconcileTickTopic) }

// modeEnv are the transport's variables for the functions server and the
// connectors.
func (s *Stack) modeEnv() (functions, connector map[string]string) {
	o := s.opts
	functions = map[string]string{"TWITCH_EVENTSUB_WEBHOOK_SECRET": LocalWebhookSecret}
	connector = map[string]string{}
	hooks := strconv.Itoa(o.webhookShards())
	switch o.transport() {
	case TransportConduit:
		// The layout rule: one WebSocket shard per instance that always runs.
		connector["EVENTSUB_TRANSPORT"] = TransportConduit
		connector["CONDUIT_SHARDS"] = strconv.Itoa(o.connectorCount())
		if o.webhookShards() > 0 {
			connector["CONDUIT_WEBHOOK_SHARDS"] = hooks
			connector["EVENTSUB_WEBHOOK_CALLBACK_URL"] = s.WebhookURL()
			connector["TWITCH_EVENTSUB_WEBHOOK_SECRET"] = LocalWebhookSecret
		}
	case TransportServerless:
		functions["CONDUIT_WEBHOOK_SHARDS"] = hooks
		functions["EVENTSUB_WEBHOOK_CALLBACK_URL"] = s.WebhookURL()
	}
	return functions, connector
}

// newConnectors makes the connector processes: the first on the stack's connector
// port, the others on free ports, each with its own CONNECTOR_INSTANCE_ID.
func (s *Stack) newConnectors(port int, env map[string]string) error {
	for i := range s.opts.connectorCount() {
		p, id := port, ConnectorInstanceID
		name := "connector"
		if i > 0 {
			a, err := loopbackAddr("")
			if err != nil {
				return fmt.Errorf("connector port: %w", err)
			}
			_, ps, _ := net.SplitHostPort(a)
			p, _ = strconv.Atoi(ps)
			id = fmt.Sprintf("%s-%d", ConnectorInstanceID, i+1)
			name = fmt.Sprintf("connector-%d", i+1)
		}
		own := map[string]string{"PORT": strconv.Itoa(p), "HOST": "127.0.0.1", "CONNECTOR_INSTANCE_ID": id}
		for k, v := range env {
			own[k] = v
		}
		proc := NewProcess(name, s.BinDir+"/"+Connector.Name, s.env(own, s.opts.ConnectorEnv), s.opts.Output)
		if i == 0 {
			s.connector = proc
		} else {
			s.extra = append(s.extra, &extraConnector{proc: proc, url: "http://127.0.0.1:" + strconv.Itoa(p)})
		}
	}
	return nil
}

// extraConnector is a conduit-mode connector instance beyond the first.
type extraConnector struct {
	proc *Process
	url  string
}

// ConnectorURLs are every connector instance's health server (the first is
// ConnectorURL); none in serverless mode.
func (s *Stack) ConnectorURLs() []string {
	if s.connector == nil {
		return nil
	}
	out := []string{s.ConnectorURL}
	for _, e := range s.extra {
		out = append(out, e.url)
	}
	return out
}

// startExtraConnectors starts the instances beyond the first and waits until each
// is ready.
func (s *Stack) startExtraConnectors(ctx context.Context) error {
	for _, e := range s.extra {
		if err := e.proc.Start(); err != nil {
			return err
		}
	}
	for _, e := range s.extra {
		if err := s.waitHTTP(ctx, e.proc, e.url+"/readyz", func(code int) bool { return code == 200 }); err != nil {
			return fmt.Errorf("%s at %s not ready: %w\n--- output ---\n%s", e.proc.name, e.url, err, e.proc.LogTail())
		}
	}
	return nil
}

func (s *Stack) stopExtraConnectors() {
	for _, e := range s.extra {
		e.proc.Stop(syscall.SIGTERM, 15*time.Second)
	}
}

// ensureReconcileTopology creates the tick topic and its push subscription to
// EventSubReconcile (serverless mode). No dead-letter policy: ticks are not data.
func (s *Stack) ensureReconcileTopology(ctx context.Context) error {
	if s.opts.transport() != TransportServerless {
		return nil
	}
	topic := s.ReconcileTickTopic()
	if err := bus.EnsureTopics(ctx, s.PubSub, topic); err != nil {
		return fmt.Errorf("create the reconcile tick topic: %w", err)
	}
	err := bus.EnsureSubscription(ctx, s.PubSub, bus.SubscriptionSpec{
		Name: string(s.Prefix) + "push.eventsub-reconcile", Topic: topic, PushEndpoint: s.PushEndpoint(FnEventSubReconcile, topic),
		MinBackoff: s.opts.MinBackoff, MaxBackoff: s.opts.MaxBackoff,
	})
	if err != nil {
		return fmt.Errorf("push subscription for %s: %w", FnEventSubReconcile, err)
	}
	return nil
}

// TickReconcile publishes one tick for EventSubReconcile (serverless mode), as Cloud
// Scheduler does.
func (s *Stack) TickReconcile(ctx context.Context) error {
	if s.opts.transport() != TransportServerless {
		return errors.New("TickReconcile: the stack is not in serverless mode")
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	_, err := s.Publisher().Publish(ctx, s.ReconcileTickTopic(), []byte("tick"), nil)
	return err
}

// runTicker ticks EventSubReconcile every ReconcileEvery until the stack stops.
func (s *Stack) runTicker() {
	every := s.opts.ReconcileEvery
	if every <= 0 {
		every = 10 * time.Second
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-s.stopping:
			return
		case <-t.C:
		}
		ctx, cancel := context.WithCancel(context.Background())
		go func() {
			select {
			case <-s.stopping:
				cancel()
			case <-ctx.Done():
			}
		}()
		if err := s.TickReconcile(ctx); err != nil && s.opts.Output != nil {
			s.opts.Output("stack", fmt.Sprintf(`{"severity":"WARNING","message":"reconcile tick not published","error":%q}`, err.Error()))
		}
		cancel()
	}
}

// WaitServerlessReady ticks EventSubReconcile until the fake Twitch shows the
// conduit with every shard enabled and the subscriptions of every channel (serverless
// mode's counterpart of the connector's /readyz).
func (s *Stack) WaitServerlessReady(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, s.opts.ReadyTimeout)
	defer cancel()
	want := len(s.Fake.ChannelLogins())
	last, tickErr := "no conduit yet", ""
	for {
		if err := s.TickReconcile(ctx); err != nil && ctx.Err() == nil {
			tickErr = "; last tick not published: " + err.Error()
		}
		// Each tick's round takes a moment; look a few times before ticking again.
		for range 20 {
			ok, why := s.serverlessReady(want)
			if ok {
				return nil
			}
			last = why
			select {
			case <-ctx.Done():
				return fmt.Errorf("serverless mode not ready: %w (waiting for: %s%s)\n--- functions output ---\n%s", ctx.Err(), last, tickErr, s.functions.LogTail())
			case <-time.After(250 * time.Millisecond):
			}
		}
	}
}

func (s *Stack) serverlessReady(channels int) (bool, string) {
	tw := s.Fake.Twitch
	cs := tw.Conduits()
	if len(cs) == 0 {
		return false, "EventSubReconcile to create the conduit"
	}
	cd := cs[len(cs)-1]
	for _, sh := range cd.Shards {
		if sh.Status != "enabled" {
			return false, fmt.Sprintf("shard %s enabled (is %s)", sh.ID, sh.Status)
		}
	}
	subs := 0
	for _, x := range tw.EnabledSubscriptions() {
		if x.Transport.ConduitID == cd.ID {
			subs++
		}
	}
	// channel.follow and channel.update per channel, at least.
	if subs < 2*channels {
		return false, fmt.Sprintf("the subscriptions of %d channels (%d enabled)", channels, subs)
	}
	return true, ""
}
