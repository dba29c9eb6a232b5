package stack

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"syscall"
	"time"

	"cloud.google.com/go/pubsub/v2/apiv1/pubsubpb"

	"github.com/bitbrat/twitch-edge/shared/bus"
)

// Redeploy replaces the connector the way a deploy does, twice, so that the stack
// ends with its connector on ConnectorURL again: a second connector process starts
// beside the running one and stands by; the running one gets SIGTERM (it asks the
// standby to subscribe before it lets go: make-before-break); once the second one
// holds the session, the stack's connector is started again as its standby, and the
// second one gets SIGTERM in turn. before(i) is called just before the i-th SIGTERM
// (1 and 2), so a caller can tell the two hand-offs apart.
func (s *Stack) Redeploy(ctx context.Context, before func(i int)) error {
	a, err := loopbackAddr("")
	if err != nil {
		return fmt.Errorf("second connector's port: %w", err)
	}
	_, port, _ := net.SplitHostPort(a)
	nextURL := "http://127.0.0.1:" + port
	next := NewProcess("connector-next", s.BinDir+"/"+Connector.Name, s.env(map[string]string{
		"PORT": port, "HOST": "127.0.0.1", "CONNECTOR_INSTANCE_ID": ConnectorInstanceID,
	}, s.opts.ConnectorEnv), s.opts.Output)
	if err := next.Start(); err != nil {
		return err
	}
	defer next.Stop(syscall.SIGTERM, 15*time.Second) // a no-op once stopped below
	if err := s.waitStandby(ctx, next, nextURL); err != nil {
		return err
	}
	before(1)
	s.StopConnector()
	if err := s.waitHTTP(ctx, next, nextURL+"/readyz", func(code int) bool { return code == http.StatusOK }); err != nil {
		return fmt.Errorf("second connector did not take over: %w\n--- its output ---\n%s", err, next.LogTail())
	}
	if err := s.connector.Start(); err != nil {
		return err
	}
	if err := s.waitStandby(ctx, s.connector, s.ConnectorURL); err != nil {
		return err
	}
	before(2)
	next.Stop(syscall.SIGTERM, 15*time.Second)
	return s.WaitConnectorReady(ctx)
}

// waitStandby waits until the connector at url has looked at the lease and stands by
// (its /readyz names the holder).
func (s *Stack) waitStandby(ctx context.Context, p *Process, url string) error {
	ctx, cancel := context.WithTimeout(ctx, s.opts.ReadyTimeout)
	defer cancel()
	hc := &http.Client{Timeout: 2 * time.Second}
	last := "no answer"
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url+"/readyz", nil)
		if resp, err := hc.Do(req); err == nil {
			b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
			resp.Body.Close()
			last = strconv.Itoa(resp.StatusCode) + " " + strings.TrimSpace(string(b))
			if strings.Contains(last, "holds the EventSub session (") {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s at %s not standing by (last /readyz: %s): %w\n--- its output ---\n%s", p.name, url, last, ctx.Err(), p.LogTail())
		case <-p.Exited():
			return fmt.Errorf("%s %w\n--- its output ---\n%s", p.name, errExited, p.LogTail())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// StartSecondFunctions starts another functions server and push subscriptions of
// its own for EgressChat and EgressWhisper: from then on every egress message is
// delivered to both servers at once — two instances racing for each message, more
// than a deploy's overlap of two revisions does. stop removes the subscriptions and
// stops the server.
func (s *Stack) StartSecondFunctions(ctx context.Context) (stop func(), err error) {
	a, err := loopbackAddr("")
	if err != nil {
		return nil, fmt.Errorf("second functions server's address: %w", err)
	}
	_, port, _ := net.SplitHostPort(a)
	base := "http://" + a
	p := NewProcess("functions-2", s.BinDir+"/"+Functions.Name, s.env(map[string]string{
		"PORT": port, "HOST": "127.0.0.1",
	}, s.opts.FunctionsEnv, "TWITCH_EVENTSUB_WS_URL", "TWITCH_EVENTSUB_SUBSCRIPTIONS_URL"), s.opts.Output)
	if err := p.Start(); err != nil {
		return nil, err
	}
	if err := s.waitHTTP(ctx, p, base+"/", func(int) bool { return true }); err != nil {
		p.Stop(syscall.SIGTERM, 5*time.Second)
		return nil, fmt.Errorf("second functions server: %w\n--- its output ---\n%s", err, p.LogTail())
	}
	var subs []string
	stop = func() {
		dctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		for _, sub := range subs {
			_ = s.PubSub.SubscriptionAdminClient.DeleteSubscription(dctx,
				&pubsubpb.DeleteSubscriptionRequest{Subscription: bus.SubscriptionName(s.PubSub, sub)})
		}
		p.Stop(syscall.SIGTERM, 5*time.Second)
	}
	for _, r := range s.routes() {
		if r.fn != FnEgressChat && r.fn != FnEgressWhisper {
			continue
		}
		sub := r.sub + ".2"
		err := bus.EnsureSubscription(ctx, s.PubSub, bus.SubscriptionSpec{
			Name: sub, Topic: r.topic, PushEndpoint: fmt.Sprintf("%s/%s/projects/%s/topics/%s", base, r.fn, s.Project, r.topic),
			DeadLetterTopic: s.Topics.DeadLetter, MaxDeliveryAttempts: MaxDeliveryAttempts,
			MinBackoff: s.opts.MinBackoff, MaxBackoff: s.opts.MaxBackoff,
		})
		if err != nil {
			stop()
			return nil, fmt.Errorf("push subscription for the second %s: %w", r.fn, err)
		}
		subs = append(subs, sub)
	}
	return stop, nil
}
