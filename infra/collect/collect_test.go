package collect

import (
	"context"
	"testing"
	"time"

	"github.com/bitbrat/twitch-edge/shared/bus"
)

func TestNotificationsTellDuplicatesFromRedeliveries(t *testing.T) {
	group := func(id string) int {
		if id[0] == '1' {
			return 1
		}
		return 0
	}
	c := NewNotifications(group)
	id := "1-message"
	ts := time.Now()
	attrs := map[string]string{"eventsub_message_id": id, "eventsub_message_timestamp": ts.Format(time.RFC3339Nano)}
	c.Add("p1", attrs, ts.Add(7*time.Millisecond))
	c.Add("p1", attrs, ts.Add(7*time.Millisecond)) // the subscription redelivers
	c.Add("p2", attrs, ts.Add(9*time.Millisecond)) // published again
	got := c.Counts(1)
	if got.Distinct != 1 || got.Redeliveries != 1 || got.Duplicates != 1 || len(got.Latencies) != 1 {
		t.Fatalf("counts = %+v", got)
	}
	if got.Latencies[0] != 7*time.Millisecond {
		t.Errorf("latency = %s, want 7ms", got.Latencies[0])
	}
	if !c.Has(id) || c.Has("other") || c.Total() != 1 || c.All().Duplicates != 1 {
		t.Errorf("Has/Total/All = %v %v %d %+v", c.Has(id), c.Has("other"), c.Total(), c.All())
	}
}

func TestEventsByCorrelationID(t *testing.T) {
	c := NewEvents()
	c.Add(bus.Received{ID: "1", Data: []byte(`{"correlationId":"a"}`)})
	c.Add(bus.Received{ID: "1", Data: []byte(`{"correlationId":"a"}`)}) // redelivered
	c.Add(bus.Received{ID: "2", Attributes: map[string]string{"correlationid": "b"}, Data: []byte(`{}`)})
	if c.Len() != 3 || c.Distinct("a") != 1 || c.Distinct("b") != 1 || c.Distinct("c") != 0 {
		t.Errorf("Len %d, Distinct a %d b %d c %d", c.Len(), c.Distinct("a"), c.Distinct("b"), c.Distinct("c"))
	}
	if got := c.Repeated([]string{"a", "b"}); got != 1 {
		t.Errorf("Repeated = %d, want 1", got)
	}
	if m := c.Missing([]string{"a", "c"}); len(m) != 1 || m[0] != "c" {
		t.Errorf("Missing = %v", m)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() { _, err := c.WaitFor(ctx, "c"); done <- err }()
	c.Add(bus.Received{ID: "3", Data: []byte(`{"correlationId":"c"}`)})
	if err := <-done; err != nil {
		t.Fatalf("WaitFor: %v", err)
	}
}
