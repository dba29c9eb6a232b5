package store

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestConduitLeases(t *testing.T) {
	clk := &clock{t: time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)}
	s := NewConduitStore(newFirestore(t), "twitch", clk.Now)
	ctx := context.Background()
	const ttl = 15 * time.Second
	a, ok, err := s.AcquireLease(ctx, "shard-0", "a", ttl)
	if err != nil || !ok || a.Generation != 1 {
		t.Fatalf("first acquire: %+v %v %v", a, ok, err)
	}
	if held, ok, err := s.AcquireLease(ctx, "shard-0", "b", ttl); err != nil || ok || held.Owner != "a" {
		t.Fatalf("b while a holds: %+v %v %v", held, ok, err)
	}
	if again, ok, err := s.AcquireLease(ctx, "shard-0", "a", ttl); err != nil || !ok || again.Generation != 1 {
		t.Fatalf("a again keeps its generation: %+v %v %v", again, ok, err)
	}
	clk.Advance(ttl + time.Millisecond)
	if _, err := s.RenewLease(ctx, a, ttl); !errors.Is(err, ErrLeaseLost) {
		t.Fatalf("renewing an expired lease: %v, want ErrLeaseLost", err)
	}
	b, ok, err := s.AcquireLease(ctx, "shard-0", "b", ttl)
	if err != nil || !ok || b.Generation != 2 {
		t.Fatalf("b takes over: %+v %v %v", b, ok, err)
	}
	if _, err := s.RenewLease(ctx, a, ttl); !errors.Is(err, ErrLeaseLost) {
		t.Fatalf("a's late renewal: %v, want ErrLeaseLost", err)
	}
	if err := s.ReleaseLease(ctx, a); err != nil { // not a's: left alone
		t.Fatal(err)
	}
	if cur, err := s.GetLease(ctx, "shard-0"); err != nil || cur.Owner != "b" {
		t.Fatalf("after a's release: %+v %v", cur, err)
	}
	if err := s.ReleaseLease(ctx, b); err != nil {
		t.Fatal(err)
	}
	c, ok, err := s.AcquireLease(ctx, "shard-0", "c", ttl)
	if err != nil || !ok || c.Generation != 3 {
		t.Fatalf("after release, at once and with a higher generation: %+v %v %v", c, ok, err)
	}
}

func TestChannels(t *testing.T) {
	ch := NewChannels(newFirestore(t), nil)
	ctx := context.Background()
	var all []Channel
	for _, id := range []string{"1", "2", "3"} {
		all = append(all, Channel{BroadcasterID: id})
	}
	if err := ch.AddAll(ctx, all); err != nil {
		t.Fatal(err)
	}
	if err := ch.Add(ctx, Channel{BroadcasterID: "4", Login: "four"}); err != nil {
		t.Fatal(err)
	}
	if err := ch.Remove(ctx, "2"); err != nil {
		t.Fatal(err)
	}
	got, err := ch.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	ids := map[string]bool{}
	for _, c := range got {
		ids[c.BroadcasterID] = true
	}
	if len(got) != 3 || !ids["1"] || !ids["3"] || !ids["4"] {
		t.Fatalf("channels %+v, want 1, 3, 4", got)
	}
}
