package main

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/bitbrat/twitch-edge/infra/stack"
	"github.com/bitbrat/twitch-edge/shared/bus"
	"github.com/bitbrat/twitch-edge/shared/event"
)

// eventLog turns what passes through the stack into readable lines: messages on the
// watched topics, deliveries at the fake Helix, outcomes in Firestore, and the
// noteworthy lines of the components' logs.
type eventLog struct {
	p       *printer
	st      *stack.Stack
	verbose bool

	mu      sync.Mutex
	serving []string // the functions framework's "Serving function" names

	deliveriesMu          sync.Mutex
	seenChat, seenWhisper int // deliveries at the fake already printed
}

func (l *eventLog) watchAll(ctx context.Context, wg *sync.WaitGroup) {
	s := l.st.Subs
	for sub, fn := range map[string]func(bus.Received){
		s.WatchRaw: l.raw, s.WatchIngress: l.ingress, s.WatchEgress: l.egress,
		s.WatchFinalize: func(m bus.Received) { l.finalize(ctx, m) }, s.WatchDeadLetter: l.deadLetter,
	} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := l.st.Watch(ctx, sub, fn); err != nil {
				l.p.line("stack", "stopped watching %s: %v", sub, err)
			}
		}()
	}
	if l.st.Fake != nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			l.pollDeliveries(ctx)
		}()
	}
}

// raw is a notification frame the connector forwarded, unchanged.
func (l *eventLog) raw(m bus.Received) {
	var f struct {
		Metadata struct {
			MessageID string `json:"message_id"`
			Type      string `json:"subscription_type"`
		} `json:"metadata"`
		Payload struct {
			Event map[string]any `json:"event"`
		} `json:"payload"`
	}
	if err := json.Unmarshal(m.Data, &f); err != nil {
		l.p.line("raw", "unreadable frame (%d bytes)", len(m.Data))
		return
	}
	who := ""
	if u, _ := f.Payload.Event["user_login"].(string); u != "" {
		who = " by " + u
	}
	ch, _ := f.Payload.Event["broadcaster_user_login"].(string)
	l.p.line("raw", "%s #%s%s -> %s (EventSub message %s, forwarded by the connector)",
		f.Metadata.Type, ch, who, l.st.Topics.Raw, short(f.Metadata.MessageID))
}

// ingress is an event Normalize published.
func (l *eventLog) ingress(m bus.Received) {
	if m.Attributes[event.AttrType] == event.TypeConnectorStatusChanged {
		var st event.ConnectorStatus
		_ = json.Unmarshal(m.Data, &st)
		what := st.Subject
		if st.Shard != "" {
			what += " " + st.Shard
		}
		l.p.line("status", "%s %s %s -> %s: %s (%s)", st.InstanceID, what, st.PreviousState, st.CurrentState, st.Reason, l.st.Topics.Ingress)
		return
	}
	e, err := event.Decode(m.Data)
	if err != nil {
		l.p.line("ingress", "undecodable event: %v", err)
		return
	}
	kind, detail := "", ""
	if x := e.ExternalEvent; x != nil {
		kind = x.Kind
		var p map[string]any
		_ = json.Unmarshal(x.Payload, &p)
		switch kind {
		case "channel.follow":
			detail = fmt.Sprintf(" follower %v (%v)", p["userLogin"], p["userId"])
		case "channel.update":
			detail = fmt.Sprintf(" title %q, category %v", p["title"], p["categoryName"])
		}
	}
	l.p.line("normalized", "%s %s %s%s -> %s (correlationId %s)", e.Type, kind, e.Channel, detail, l.st.Topics.Ingress, e.CorrelationID)
}

// egress is an event someone asked to deliver.
func (l *eventLog) egress(m bus.Received) {
	e, err := event.Decode(m.Data)
	if err != nil {
		l.p.line("egress", "undecodable event: %v", err)
		return
	}
	kind := "chat"
	if e.Egress != nil && e.Egress.Type != "" {
		kind = e.Egress.Type
	}
	to := e.Channel
	if kind == event.EgressDM {
		to = "user " + e.UserID
	}
	text := ""
	if len(e.Candidates) > 0 {
		text = e.Candidates[0].Text
	}
	l.p.line("egress", "%s to %s: %s (correlationId %s)", kind, to, clip(text, 80), e.CorrelationID)
}

// finalize is a delivery outcome; the Finalize function records it in Firestore,
// which is checked too.
func (l *eventLog) finalize(ctx context.Context, m bus.Received) {
	f, err := event.DecodeFinalize(m.Data)
	if err != nil {
		l.p.line("finalize", "undecodable outcome: %v", err)
		return
	}
	extra := ""
	if f.ProviderMessageID != "" {
		extra += " providerMessageId " + short(f.ProviderMessageID)
	}
	if f.Error != nil {
		extra += fmt.Sprintf(" error %s: %s", f.Error.Code, clip(f.Error.Message, 100))
	}
	l.flushDeliveries()
	l.p.line("finalize", "%s correlationId %s%s", f.Status, f.CorrelationID, extra)
	go func() {
		ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		for ctx.Err() == nil {
			o, ok, err := l.st.Outcome(ctx, f.CorrelationID)
			if err == nil && ok && o.Delivery.Status == f.Status {
				l.p.line("recorded", "events/%s: status FINALIZED, delivery %s to %s", f.CorrelationID, o.Delivery.Status, o.Delivery.Destination)
				return
			}
			select {
			case <-ctx.Done():
			case <-time.After(250 * time.Millisecond):
			}
		}
	}()
}

func (l *eventLog) deadLetter(m bus.Received) {
	var d event.DeadLetter
	if err := json.Unmarshal(m.Data, &d); err != nil {
		l.p.line("deadletter", "%d bytes (not a dead-letter message): %s", len(m.Data), clip(string(m.Data), 120))
		return
	}
	src := d.Source
	if src == "" {
		// Moved by the subscription's dead-letter policy, not by a function.
		src = m.Attributes["CloudPubSubDeadLetterSourceSubscription"]
	}
	l.p.line("deadletter", "from %s: %s (%s) correlationId %s", src, clip(d.Payload.Reason, 100), d.Payload.Error.Code, d.CorrelationID)
}

// pollDeliveries prints what reaches the fake Helix.
func (l *eventLog) pollDeliveries(ctx context.Context) {
	t := time.NewTicker(200 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		l.flushDeliveries()
	}
}

// flushDeliveries prints the deliveries at the fake Helix not printed yet. The
// finalize watcher calls it before its own line: a message reaches Twitch before its
// outcome is published, so its chat or whisper line comes first, whatever the poll's
// phase.
func (l *eventLog) flushDeliveries() {
	if l.st.Fake == nil {
		return
	}
	l.deliveriesMu.Lock()
	defer l.deliveriesMu.Unlock()
	d := l.st.Fake.Deliveries()
	for _, c := range d.Chat[min(l.seenChat, len(d.Chat)):] {
		if c.Sent {
			l.p.line("chat", "#%s <%s> %s (Twitch message_id %s)", c.Channel, c.Sender, clip(c.Message, 200), short(c.MessageID))
		} else {
			l.p.line("chat", "#%s <%s> dropped by Twitch (%s): %s", c.Channel, c.Sender, c.DropCode, clip(c.Message, 120))
		}
	}
	for _, w := range d.Whispers[min(l.seenWhisper, len(d.Whispers)):] {
		l.p.line("whisper", "%s -> %s (%s): %s", w.From, w.To, w.ToID, clip(w.Message, 200))
	}
	l.seenChat, l.seenWhisper = len(d.Chat), len(d.Whispers)
}

// connectorNotes are the connector's log messages worth a line of their own.
var connectorNotes = map[string]string{
	"eventsub: session welcomed":                         "EventSub session welcomed",
	"eventsub: subscriptions created":                    "EventSub subscriptions created",
	"eventsub: session_reconnect, handing over":          "session_reconnect received, handing over to the new socket",
	"eventsub: connection lost, reconnecting":            "EventSub connection lost, reconnecting",
	"eventsub: subscription revoked":                     "subscription revoked by Twitch",
	"eventsub: not resubscribing a revoked subscription": "revoked subscription not recreated",
	"connector: stopped":                                 "stopped",
}

// componentLine picks the noteworthy lines of a component's JSON log: the connector's
// session events, and every warning and error.
func (l *eventLog) componentLine(component, line string) {
	if l.servingLine(line) {
		return // folded into the functions server's ready line
	}
	var m map[string]any
	if json.Unmarshal([]byte(line), &m) != nil {
		if l.verbose || strings.Contains(strings.ToLower(line), "error") {
			l.p.line(component, "%s", clip(line, 300))
		}
		return
	}
	msg, _ := m["message"].(string)
	sev, _ := m["severity"].(string)
	if l.verbose {
		l.p.line(component, "%s", readable(m))
		return
	}
	if note, ok := connectorNotes[msg]; ok && component == "connector" {
		l.p.line(component, "%s%s", note, details(m, "sessionId", "handover", "count", "subscription", "reason", "resubscribe", "error", "published"))
		return
	}
	if sev == "WARNING" || sev == "ERROR" || sev == "CRITICAL" {
		l.p.line(component, "%s %s%s", sev, msg, details(m, "function", "subscription", "reason", "error", "code", "correlationId"))
	}
}

// details formats the named fields of a log line that are present.
func details(m map[string]any, keys ...string) string {
	var b strings.Builder
	for _, k := range keys {
		if v, ok := m[k]; ok && v != nil && v != "" {
			fmt.Fprintf(&b, " %s=%s", k, clip(fmt.Sprint(v), 160))
		}
	}
	if b.Len() == 0 {
		return ""
	}
	return " (" + strings.TrimSpace(b.String()) + ")"
}

func clip(s string, n int) string {
	s = strings.ReplaceAll(s, "\n", " ")
	if len([]rune(s)) > n {
		return string([]rune(s)[:n]) + "..."
	}
	return s
}
