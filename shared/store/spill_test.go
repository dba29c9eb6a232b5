package store

import (
	"context"
	"fmt"
	"testing"
	"time"
)

// TestSpillReadsInOrderUpToABound: spilled frames come back in id order (time
// first, across instances), never past the bound the relay gives (what it has
// committed), with what they were spilled with, and go once deleted.
func TestSpillReadsInOrderUpToABound(t *testing.T) {
	ctx := context.Background()
	sp := NewSpill(newFirestore(t))
	t0 := time.Date(2026, 12, 1, 20, 0, 0, 0, time.UTC)
	var frames []Spilled
	for i := range 5 {
		// An earlier instance's frames sort before this one's.
		inst := "b"
		if i < 2 {
			inst = "a"
		}
		frames = append(frames, Spilled{ID: SpillID(t0.Add(time.Duration(i)*time.Millisecond), inst, uint64(i+1)),
			Data: []byte(fmt.Sprintf(`{"n":%d}`, i)), MessageID: fmt.Sprint("m", i), MessageTimestamp: t0, Received: t0,
			Overlap: i%2 == 1})
	}
	// Written out of order, in two batches.
	if err := sp.Write(ctx, []Spilled{frames[3], frames[0], frames[4]}); err != nil {
		t.Fatal(err)
	}
	if err := sp.Write(ctx, []Spilled{frames[2], frames[1]}); err != nil {
		t.Fatal(err)
	}
	got, err := sp.Read(ctx, "", frames[3].ID, 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 4 {
		t.Fatalf("read %d up to the 4th, want 4", len(got))
	}
	for i, g := range got {
		// The overlap mark comes back: the replay publishes it as the first attempt did.
		if g.ID != frames[i].ID || string(g.Data) != string(frames[i].Data) || g.MessageID != frames[i].MessageID ||
			!g.Received.Equal(t0) || g.Overlap != frames[i].Overlap {
			t.Fatalf("frame %d: %+v, want %+v", i, g, frames[i])
		}
	}
	rest, err := sp.Read(ctx, got[1].ID, frames[4].ID, 10)
	if err != nil || len(rest) != 3 || rest[0].ID != frames[2].ID {
		t.Fatalf("after the 2nd: %d frames (%v)", len(rest), err)
	}
	if err := sp.Delete(ctx, []string{frames[0].ID, frames[1].ID}); err != nil {
		t.Fatal(err)
	}
	left, err := sp.Read(ctx, "", frames[4].ID, 10)
	if err != nil || len(left) != 3 || left[0].ID != frames[2].ID {
		t.Fatalf("after delete: %d frames (%v)", len(left), err)
	}
}
