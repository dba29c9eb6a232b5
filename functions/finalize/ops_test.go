package finalize

import (
	"testing"

	"github.com/bitbrat/twitch-edge/infra/load/opcount"
	"github.com/bitbrat/twitch-edge/shared/emulators"
)

// Finalize's Firestore bill per delivered message, counted at the emulator: the
// outcome's read-modify-write transaction is one read and one write (the egress
// side's writes are counted in functions/egress TestEgressFirestoreOpsPerMessage).
func TestFinalizeFirestoreOpsPerMessage(t *testing.T) {
	px, err := opcount.Start(emulators.Host(emulators.Firestore))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(px.Close)
	f := newFixtureOn(t, px.Addr)
	f.mustHandle(t, string(readFixture(t, "finalize_sent.json")))
	want, err := opcount.BudgetFor("finalize")
	if err != nil {
		t.Fatal(err)
	}
	c := px.Counts()
	t.Logf("finalize, one SENT: %s", c)
	if c.Writes != want.Writes || c.Reads != want.Reads {
		t.Fatalf("one finalize: %s; want %d writes and %d reads (docs/perf/ops.json)", c, want.Writes, want.Reads)
	}
}
