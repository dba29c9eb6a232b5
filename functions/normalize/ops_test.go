package normalize

import (
	"bytes"
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/bitbrat/twitch-edge/functions/trigger"
	"github.com/bitbrat/twitch-edge/infra/load/opcount"
	"github.com/bitbrat/twitch-edge/shared/emulators"
	"github.com/bitbrat/twitch-edge/shared/fault"
	"github.com/bitbrat/twitch-edge/shared/store"
)

// serviceCounted is newService with its Firestore calls through a counting proxy.
func serviceCounted(t *testing.T, pub Publisher, now func() time.Time) (*Service, *opcount.Proxy) {
	t.Helper()
	px, err := opcount.Start(emulators.Host(emulators.Firestore))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(px.Close)
	fs, err := store.NewClient(context.Background(), emulators.ProjectID(t), "", store.WithEmulator(px.Addr))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { fs.Close() })
	s := newService(t, pub)
	s.Ledger = store.NewClaims(fs, store.CollectionIdempotency, time.Hour, now)
	s.Now = now
	return s, px
}

func followWithID(t *testing.T, id string) []byte {
	return bytes.Replace(read(t, "follow.frame.json"), []byte("befa7b53-d79d-478f-86b9-120f112b044e"), []byte(id), 1)
}

// The happy path's Firestore bill, counted at the emulator: one write, no read, no
// transaction per event; a duplicate from another raw message costs one read.
func TestServiceFirestoreOpsPerEvent(t *testing.T) {
	pub := &recordingPublisher{}
	s, px := serviceCounted(t, pub, time.Now)
	const n = 10
	for i := range n {
		m := trigger.Message{ID: fmt.Sprint("raw-", i), Data: followWithID(t, fmt.Sprint("ops-", i)), PublishTime: time.Now()}
		if err := s.Handle(context.Background(), m); err != nil {
			t.Fatal(err)
		}
	}
	want, err := opcount.BudgetFor("normalize")
	if err != nil {
		t.Fatal(err)
	}
	c := px.Counts()
	if c.Writes != want.Writes*n || c.Reads != want.Reads*n || c.Transactions != 0 {
		t.Fatalf("%d events: %s; want %d writes and %d reads per event, no transaction (docs/perf/ops.json)", n, c, want.Writes, want.Reads)
	}
	// The same notification forwarded again (another raw message): dropped.
	before := px.Counts()
	dup := trigger.Message{ID: "raw-again", Data: followWithID(t, "ops-3"), PublishTime: time.Now()}
	if err := s.Handle(context.Background(), dup); err != nil {
		t.Fatal(err)
	}
	if d := px.Counts().Sub(before); d.Writes != 1 || d.Reads != 1 || pub.count() != n {
		// The failed create is a write request Firestore refuses (not billed as a
		// write, but counted here as sent).
		t.Fatalf("duplicate: %s, published %d; want 1 refused create, 1 read, no publish", d, pub.count())
	}
}

// A redelivery of the same raw message finds the claim held while the lease runs (a
// worker may be publishing it now) and takes it over after: the earlier attempt did
// not ack, so it failed or died. That is at least once, with the same correlation id.
func TestServiceTakesOverAfterLease(t *testing.T) {
	clk := &testClock{t: time.Now()}
	pub := &recordingPublisher{}
	s, _ := serviceCounted(t, pub, clk.Now)
	m := trigger.Message{ID: "raw-lease", Data: followWithID(t, "lease-1"), PublishTime: clk.Now()}
	// A worker that claimed and died: its claim is there, nothing was published.
	if c, err := s.Ledger.Begin(context.Background(), "eventsub:lease-1", "dead", m.ID, s.Lease); err != nil || c.State != store.Acquired {
		t.Fatalf("begin: %+v %v", c, err)
	}
	if err := s.Handle(context.Background(), m); fault.CodeOf(err, "") != store.CodeInProgress {
		t.Fatalf("inside the lease: %v, want %s", err, store.CodeInProgress)
	}
	clk.Advance(s.Lease + time.Second)
	if err := s.Handle(context.Background(), m); err != nil || pub.count() != 1 {
		t.Fatalf("after the lease: %v, published %d; want 1", err, pub.count())
	}
	// Another raw message of the same notification is dropped, taken over or not.
	other := trigger.Message{ID: "raw-other", Data: m.Data, PublishTime: clk.Now()}
	if err := s.Handle(context.Background(), other); err != nil || pub.count() != 1 {
		t.Fatalf("duplicate: %v, published %d; want 1", err, pub.count())
	}
}

type testClock struct{ t time.Time }

func (c *testClock) Now() time.Time          { return c.t }
func (c *testClock) Advance(d time.Duration) { c.t = c.t.Add(d) }
