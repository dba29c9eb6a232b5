package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/bitbrat/twitch-edge/shared/event"
)

// egress publishes an InternalEventV2 (CONTRACT.md) with one text candidate to the
// egress topic, as a BitBrat service would.
func egress(ctx context.Context, e *cmdEnv, a *cmdArgs) error {
	if a.kind != event.EgressDM && a.kind != event.EgressChat {
		return usageError{fmt.Sprintf("--type %q: want dm or chat", a.kind)}
	}
	if strings.TrimSpace(a.text) == "" {
		return usageError{"--text is required"}
	}
	channel := strings.TrimSpace(a.channel)
	if channel != "" && !strings.HasPrefix(channel, "#") {
		channel = "#" + channel
	}
	if a.kind == event.EgressChat && len(channel) < 2 {
		return usageError{"--channel is required for a chat message (#login)"}
	}
	if a.kind == event.EgressDM && !digitsOnly(a.user) {
		fmt.Fprintf(e.out, "note: --user %q is not a Twitch user id (digits); EgressWhisper will reject it with FAILED INVALID_USER_ID\n", a.user)
	}
	cid := a.correlationID
	if cid == "" {
		cid = uuid.NewString()
	}
	topic := event.Prefix(e.g.prefix).Topic(event.TopicEgress)
	ev := &event.InternalEventV2{
		V: "1", Source: "twitchctl", CorrelationID: cid, Type: "llm.bot.response.v1",
		Channel: channel,
		Egress:  &event.Egress{Destination: topic, Type: a.kind},
		Candidates: []event.CandidateV1{{
			ID: "c-" + uuid.NewString(), Kind: "text", Source: "twitchctl", CreatedAt: event.Timestamp(time.Now()),
			Status: "proposed", Priority: 1, Text: a.text,
		}},
	}
	if a.kind == event.EgressDM {
		ev.UserID = a.user
	}
	body, err := json.Marshal(ev)
	if err != nil {
		return fmt.Errorf("encode the egress event: %w", err)
	}
	pctx, cancel := context.WithTimeout(ctx, e.g.timeout)
	id, err := publish(pctx, e.g.pubsub, e.g.project, topic, body, event.Attributes(ev))
	cancel()
	if err != nil {
		return err
	}
	to := channel
	if a.kind == event.EgressDM {
		to = "user " + a.user
	}
	if !a.wait {
		if a.json {
			return printJSON(e.out, egressResult{CorrelationID: cid, Topic: topic, PubSubMessageID: id})
		}
		fmt.Fprintf(e.out, "published %s egress to %s on %s (correlationId %s, Pub/Sub message %s)\n", a.kind, to, topic, cid, id)
		return nil
	}
	if !a.json {
		fmt.Fprintf(e.out, "published %s egress to %s on %s (correlationId %s, Pub/Sub message %s)\n", a.kind, to, topic, cid, id)
	}
	return waitOutcome(ctx, e, a, egressResult{CorrelationID: cid, Topic: topic, PubSubMessageID: id})
}

// publish sends one message through the Pub/Sub emulator's REST API (the emulator
// needs no credentials, and the CLI stays small).
func publish(ctx context.Context, host, project, topic string, data []byte, attrs map[string]string) (string, error) {
	req := map[string]any{"messages": []map[string]any{{
		"data": base64.StdEncoding.EncodeToString(data), "attributes": attrs,
	}}}
	b, _ := json.Marshal(req)
	u := fmt.Sprintf("http://%s/v1/projects/%s/topics/%s:publish", host, project, topic)
	hr, err := http.NewRequestWithContext(ctx, http.MethodPost, u, bytes.NewReader(b))
	if err != nil {
		return "", fmt.Errorf("publish to %s: %w", topic, err)
	}
	hr.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(hr)
	if err != nil {
		return "", fmt.Errorf("reach the Pub/Sub emulator at %s (is `make run` up?): %w", host, err)
	}
	defer resp.Body.Close()
	rb, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("publish to %s in project %s: HTTP %d %s", topic, project, resp.StatusCode, strings.TrimSpace(string(rb)))
	}
	var out struct {
		MessageIDs []string `json:"messageIds"`
	}
	if err := json.Unmarshal(rb, &out); err != nil || len(out.MessageIDs) != 1 {
		return "", fmt.Errorf("publish to %s: unexpected answer %s", topic, strings.TrimSpace(string(rb)))
	}
	return out.MessageIDs[0], nil
}

func digitsOnly(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range s {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}
