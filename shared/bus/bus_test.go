package bus

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/bitbrat/twitch-edge/shared/emulators"
	"github.com/bitbrat/twitch-edge/shared/fault"
)

func TestMain(m *testing.M) { os.Exit(emulators.RunTests(m, emulators.PubSub)) }

func TestPublishAndCollectOnEmulator(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	client, err := NewClient(ctx, emulators.ProjectID(t), WithEmulator(emulators.Host(emulators.PubSub)))
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	if err := EnsureTopics(ctx, client, "topic-a", "topic-a"); err != nil {
		t.Fatalf("ensure twice: %v", err)
	}
	if err := EnsureSubscription(ctx, client, SubscriptionSpec{Name: "sub-a", Topic: "topic-a"}); err != nil {
		t.Fatal(err)
	}
	if err := EnsureSubscription(ctx, client, SubscriptionSpec{Name: "sub-a", Topic: "topic-a"}); err != nil {
		t.Fatalf("ensure subscription twice: %v", err)
	}
	p := NewPublisher(client, nil)
	defer p.Close()
	id, err := p.PublishJSON(ctx, "topic-a", map[string]int{"n": 1}, map[string]string{"correlationid": "c-1"})
	if err != nil || id == "" {
		t.Fatalf("publish: id=%q err=%v", id, err)
	}
	got, err := Collect(ctx, client, "sub-a", 1, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || string(got[0].Data) != `{"n":1}` || got[0].Attributes["correlationid"] != "c-1" {
		t.Fatalf("got %+v", got)
	}
}

func TestPublishToMissingTopicIsPermanent(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	client, err := NewClient(ctx, emulators.ProjectID(t), WithEmulator(emulators.Host(emulators.PubSub)))
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	p := NewPublisher(client, nil)
	defer p.Close()
	_, err = p.Publish(ctx, "no-such-topic", []byte("x"), nil)
	if fault.KindOf(err) != fault.Permanent || fault.CodeOf(err, "") != "PUBSUB_NOT_FOUND" {
		t.Fatalf("want permanent PUBSUB_NOT_FOUND, got %v (%v)", fault.KindOf(err), err)
	}
}

// A message above Pub/Sub's 10 MB limit can never be published: invalid input, not
// "Pub/Sub unavailable" retried forever.
func TestOversizeMessageIsInvalid(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	client, err := NewClient(ctx, emulators.ProjectID(t), WithEmulator(emulators.Host(emulators.PubSub)))
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	if err := EnsureTopics(ctx, client, "big"); err != nil {
		t.Fatal(err)
	}
	p := NewPublisher(client, &FunctionPublishSettings)
	defer p.Close()
	_, err = p.Publish(ctx, "big", make([]byte, 10_000_001), nil)
	if fault.KindOf(err) != fault.Invalid || fault.CodeOf(err, "") != CodeMessageTooLarge {
		t.Fatalf("got %v/%s (%v), want invalid %s", fault.KindOf(err), fault.CodeOf(err, ""), err, CodeMessageTooLarge)
	}
}

// PublishBatch sends every message in one request, data and attributes unchanged, and
// a missing topic is a classified, permanent error for the whole batch.
func TestPublishBatch(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	client, err := NewClient(ctx, emulators.ProjectID(t), WithEmulator(emulators.Host(emulators.PubSub)))
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	if err := EnsureTopics(ctx, client, "batch"); err != nil {
		t.Fatal(err)
	}
	if err := EnsureSubscription(ctx, client, SubscriptionSpec{Name: "batch-sub", Topic: "batch"}); err != nil {
		t.Fatal(err)
	}
	p := NewPublisher(client, nil)
	defer p.Close()
	msgs := []Message{
		{Data: []byte(`{"n":1}`), Attributes: map[string]string{"k": "1"}},
		{Data: []byte(`{"n":2}`), Attributes: map[string]string{"k": "2"}},
		{Data: []byte(`{"n":3}`)},
	}
	ids, err := p.PublishBatch(ctx, "batch", msgs)
	if err != nil || len(ids) != len(msgs) {
		t.Fatalf("publish batch: ids %v, err %v", ids, err)
	}
	got, err := Collect(ctx, client, "batch-sub", len(msgs), 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	byData := map[string]map[string]string{}
	for _, m := range got {
		byData[string(m.Data)] = m.Attributes
	}
	if len(got) != 3 || byData[`{"n":1}`]["k"] != "1" || byData[`{"n":2}`]["k"] != "2" || len(byData[`{"n":3}`]) != 0 {
		t.Fatalf("got %+v", got)
	}
	_, err = p.PublishBatch(ctx, "no-such-topic", msgs)
	if fault.KindOf(err) != fault.Permanent || fault.CodeOf(err, "") != "PUBSUB_NOT_FOUND" {
		t.Fatalf("missing topic: want permanent PUBSUB_NOT_FOUND, got %v (%v)", fault.KindOf(err), err)
	}
}
