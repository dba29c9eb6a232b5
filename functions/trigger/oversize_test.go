package trigger

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/bitbrat/twitch-edge/shared/bus"
	"github.com/bitbrat/twitch-edge/shared/emulators"
	"github.com/bitbrat/twitch-edge/shared/event"
	"github.com/bitbrat/twitch-edge/shared/fault"
)

func TestMain(m *testing.M) { os.Exit(emulators.RunTests(m, emulators.PubSub)) }

// A 9.9 MB push body whose output cannot fit in a Pub/Sub message is dead-lettered
// (with a truncated original: prefix, size, SHA-256) and acknowledged, through the
// real Pub/Sub emulator; before, "item size exceeds bundle byte limit" was "Pub/Sub
// unavailable", and every attempt answered 500.
func TestOversizeInputIsDeadLetteredTruncated(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	ps, err := bus.NewClient(ctx, emulators.ProjectID(t), bus.WithEmulator(emulators.Host(emulators.PubSub)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ps.Close() })
	if err := bus.EnsureTopics(ctx, ps, "out", "dead"); err != nil {
		t.Fatal(err)
	}
	if err := bus.EnsureSubscription(ctx, ps, bus.SubscriptionSpec{Name: "dead-sub", Topic: "dead"}); err != nil {
		t.Fatal(err)
	}
	pub := bus.NewPublisher(ps, &bus.FunctionPublishSettings)
	t.Cleanup(pub.Close)

	// The original: 9.9 MB of JSON with a multi-byte character at the prefix's cut and
	// an invalid UTF-8 byte further on.
	original := []byte(`{"text":"` + strings.Repeat("a", event.DeadLetterPrefixBytes-10) + "ééé" +
		strings.Repeat("b", 9_900_000) + "\xff" + `"}`)
	// A handler that, like Normalize, publishes something larger than its input.
	handler := func(ctx context.Context, m Message) error {
		_, err := pub.Publish(ctx, "out", append(append([]byte{}, m.Data...), make([]byte, 200_000)...), nil)
		return err
	}
	fn := Wrap("Big", discardLog(), DeadLetters{Pub: pub, Topic: "dead", Source: "twitch-edge.big", OriginalType: "big"}, handler)
	data, err := json.Marshal(map[string]any{"message": map[string]any{"data": original, "messageId": "m-big",
		"attributes": map[string]string{"correlationid": "cid-big"}}})
	if err != nil {
		t.Fatal(err)
	}
	if err := fn(ctx, pubsubEvent(t, data)); err != nil {
		t.Fatalf("want acknowledged (dead-lettered), got %v (%s)", err, fault.CodeOf(err, ""))
	}
	got, err := bus.CollectFor(ctx, ps, "dead-sub", 1, 30*time.Second, time.Second)
	if err != nil || len(got) != 1 {
		t.Fatalf("%d dead letters, %v", len(got), err)
	}
	b := got[0].Data
	if !utf8.Valid(b) || !json.Valid(b) {
		t.Fatal("dead letter is not valid UTF-8 JSON")
	}
	var d event.DeadLetter
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatal(err)
	}
	var to event.TruncatedOriginal
	if err := json.Unmarshal(d.Original, &to); err != nil || !d.Payload.OriginalTruncated {
		t.Fatalf("original %.200s, truncated %t: %v", d.Original, d.Payload.OriginalTruncated, err)
	}
	sum := sha256.Sum256(original)
	if d.Payload.Error.Code != bus.CodeMessageTooLarge || d.CorrelationID != "cid-big" || to.SizeBytes != len(original) ||
		to.SHA256 != hex.EncodeToString(sum[:]) || !strings.HasPrefix(string(original), to.Prefix) {
		t.Fatalf("dead letter %+v, original size %d sha %s prefix %d bytes", d.Payload, to.SizeBytes, to.SHA256, len(to.Prefix))
	}
}
