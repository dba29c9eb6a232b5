package trigger

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"testing"
	"time"

	cloudevent "github.com/cloudevents/sdk-go/v2/event"

	"github.com/bitbrat/twitch-edge/shared/event"
	"github.com/bitbrat/twitch-edge/shared/fault"
)

func pubsubEvent(t testing.TB, data []byte) cloudevent.Event {
	e := cloudevent.New()
	e.SetID("ce-1")
	e.SetType("google.cloud.pubsub.topic.v1.messagePublished")
	e.SetSource("//pubsub.googleapis.com/projects/p/topics/internal.egress.v1")
	if err := e.SetData("application/json", json.RawMessage(data)); err != nil {
		t.Fatal(err)
	}
	return e
}

func TestDecode(t *testing.T) {
	m, err := Decode(pubsubEvent(t, []byte(`{"message":{"data":"aGk=","messageId":"42","publishTime":"2026-11-22T00:00:00Z","attributes":{"correlationid":"c"}},"subscription":"projects/p/subscriptions/s"}`)))
	if err != nil {
		t.Fatal(err)
	}
	if string(m.Data) != "hi" || m.ID != "42" || m.Topic != "internal.egress.v1" || CorrelationIDOf(m) != "c" ||
		!m.PublishTime.Equal(time.Date(2026, 11, 22, 0, 0, 0, 0, time.UTC)) {
		t.Errorf("decoded %+v", m)
	}
	if _, err := Decode(pubsubEvent(t, []byte(`{"message":{"data":"not base64!"}}`))); fault.KindOf(err) != fault.Invalid {
		t.Errorf("bad base64: %v", err)
	}
}

type recorder struct {
	topic string
	data  []byte
	fail  error
}

func (r *recorder) Publish(_ context.Context, topic string, data []byte, _ map[string]string) (string, error) {
	r.topic, r.data = topic, data
	return "1", r.fail
}

func TestWrapPolicy(t *testing.T) {
	ev := pubsubEvent(t, []byte(`{"message":{"data":"eyJhIjoxfQ==","messageId":"7"}}`))
	cases := []struct {
		name       string
		handlerErr error
		publishErr error
		wantErr    bool
		wantDead   bool
	}{
		{"success acknowledges", nil, nil, false, false},
		{"transient is retried", fault.New(fault.Transient, "X", "down"), nil, true, false},
		{"rate limited is retried", fault.New(fault.RateLimited, "X", "slow down"), nil, true, false},
		{"unclassified is retried", errors.New("surprise"), nil, true, false},
		{"invalid is dead-lettered and acknowledged", fault.New(fault.Invalid, "BAD", "bad"), nil, false, true},
		{"permanent is dead-lettered and acknowledged", fault.New(fault.Permanent, "NO", "no"), nil, false, true},
		{"a failed dead-letter is retried", fault.New(fault.Invalid, "BAD", "bad"), errors.New("pubsub down"), true, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := &recorder{fail: c.publishErr}
			fn := Wrap("Test", discardLog(), DeadLetters{Pub: r, Topic: "dead", Source: "s", OriginalType: "o"},
				func(context.Context, Message) error { return c.handlerErr })
			err := fn(context.Background(), ev)
			if (err != nil) != c.wantErr || (r.topic == "dead") != c.wantDead {
				t.Fatalf("err=%v dead=%q", err, r.topic)
			}
			if c.wantDead {
				var d event.DeadLetter
				if json.Unmarshal(r.data, &d) != nil || string(d.Original) != `{"a":1}` || d.Payload.Error.Code != fault.CodeOf(c.handlerErr, "") {
					t.Errorf("dead letter = %s", r.data)
				}
			}
		})
	}
}

// FuzzDecode feeds arbitrary CloudEvent data to the Pub/Sub decoding every function
// starts with: an error is always Invalid, never a panic.
func FuzzDecode(f *testing.F) {
	f.Add([]byte(`{"message":{"data":"aGk=","messageId":"1","attributes":{"a":"b"},"publishTime":"2026-11-22T00:00:00Z"},"subscription":"s"}`))
	f.Add([]byte(`{"message":{"message_id":"1","publish_time":"2026-11-22T00:00:00Z"}}`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, data []byte) {
		e := cloudevent.New()
		e.SetID("x")
		e.SetType("google.cloud.pubsub.topic.v1.messagePublished")
		e.SetSource("//pubsub.googleapis.com/projects/p/topics/t")
		e.DataEncoded = data
		if _, err := Decode(e); err != nil && fault.KindOf(err) != fault.Invalid {
			t.Fatalf("error not invalid: %v", err)
		}
	})
}

func discardLog() *slog.Logger { return slog.New(slog.DiscardHandler) }
