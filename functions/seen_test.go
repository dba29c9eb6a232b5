package functions

import (
	"context"
	"testing"
	"time"

	"github.com/bitbrat/twitch-edge/shared/emulators"
	"github.com/bitbrat/twitch-edge/shared/store"
)

type nopPublisher struct{ n int }

func (p *nopPublisher) Publish(context.Context, string, []byte, map[string]string) (string, error) {
	p.n++
	return "1", nil
}

// Normalize's publisher records the users of the events it puts on the ingress topic,
// and only those.
func TestSeenPublisherRecordsIngressUsers(t *testing.T) {
	ctx := context.Background()
	fs, err := store.NewClient(ctx, emulators.ProjectID(t), "", store.WithEmulator(emulators.Host(emulators.Firestore)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { fs.Close() })
	seen := store.NewSeenUsers(fs, time.Hour)
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	next := &nopPublisher{}
	p := seenPublisher{next: next, ingress: "internal.ingress.v1", seen: seen, now: func() time.Time { return now }}
	for _, m := range []struct{ topic, data string }{
		{"internal.ingress.v1", `{"userId":"2001","type":"twitch.eventsub.v1"}`},
		{"internal.ingress.v1", `{"userId":"not-an-id"}`},
		{"internal.deadletter.v1", `{"userId":"2002"}`},
	} {
		if _, err := p.Publish(ctx, m.topic, []byte(m.data), nil); err != nil {
			t.Fatal(err)
		}
	}
	for id, want := range map[string]bool{"2001": true, "2002": false, "not-an-id": false} {
		got, err := seen.SeenSince(ctx, id, now.Add(-time.Minute))
		if err != nil || got != want {
			t.Errorf("seen %s = %t (%v), want %t", id, got, err, want)
		}
	}
	if next.n != 3 {
		t.Fatalf("%d published, want 3", next.n)
	}
}
