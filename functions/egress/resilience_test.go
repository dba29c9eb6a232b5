package egress

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/bitbrat/twitch-edge/shared/event"
	"github.com/bitbrat/twitch-edge/shared/fault"
)

// A reply that comes too late is not delivered: FAILED EXPIRED, dead-lettered.
func TestExpiredEventsAreNotDelivered(t *testing.T) {
	for _, c := range []struct {
		name   string
		mutate func(*event.InternalEventV2)
		age    time.Duration
	}{
		{"timeoutAt passed", func(e *event.InternalEventV2) { e.TimeoutAt = "2020-01-01T00:00:00.000Z" }, 0},
		{"older than the max age", func(*event.InternalEventV2) {}, DefaultMaxAge + time.Minute},
	} {
		t.Run(c.name, func(t *testing.T) {
			f := newFixture(t)
			e := chatEvent("cid-late-"+c.name[:4], "too late")
			c.mutate(e)
			m := message(t, e, egressTopic)
			m.PublishTime = f.clock.Now().Add(-c.age)
			wantErr(t, f.chat.Handle(context.Background(), m), fault.Invalid, CodeExpired)
			if n := len(f.chatRequests()); n != 0 {
				t.Errorf("%d chat requests for an expired event", n)
			}
			wantFailed(t, f.pub.oneFinalize(t), CodeExpired, "")
		})
	}
}

// The event's qos reaches the finalize, so Finalize can set expireAt from qos.ttl.
func TestFinalizeCarriesQOS(t *testing.T) {
	f := newFixture(t)
	e := chatEvent("cid-qos", "hi with qos")
	ttl := 3600.0
	e.QOS = &event.QOSV1{TTL: &ttl}
	f.fake.Script("POST", "/helix/chat/messages", okChatResponse("m-qos"))
	if err := f.chat.Handle(context.Background(), message(t, e, egressTopic)); err != nil {
		t.Fatal(err)
	}
	fin := f.pub.oneFinalize(t)
	var q event.QOSV1
	if err := json.Unmarshal(fin.Extra["qos"], &q); err != nil || q.TTL == nil || *q.TTL != 3600 {
		t.Fatalf("finalize qos = %s", fin.Extra["qos"])
	}
}

// Whispers Twitch refuses for good do not use up the daily recipient budget.
func TestRefusedWhispersGiveTheirSlotBack(t *testing.T) {
	f := newFixture(t)
	for i := 0; i < DefaultRecipientCap; i++ {
		to := fmt.Sprint(900000 + i) // unknown users: Twitch answers 404, nothing is sent
		if err := f.whisper.Handle(context.Background(), whisperMessage(t, dmEvent(fmt.Sprint("cid-404-", i), to, "hi"))); err != nil {
			t.Fatal(err)
		}
		f.clock.Advance(2 * time.Second)
	}
	if n := len(f.fake.Whispers()); n != 0 {
		t.Fatalf("twitch delivered %d whispers to unknown users", n)
	}
	if err := f.whisper.Handle(context.Background(), whisperMessage(t, dmEvent("cid-real", viewerID, "hi"))); err != nil {
		t.Fatal(err)
	}
	fins := f.pub.finalizes(t)
	last := fins[len(fins)-1]
	if last.Status == event.StatusFailed && last.Error.Code == CodeRecipientCap {
		t.Errorf("0 whispers delivered today, yet the viewer is refused: %s", last.Error.Message)
	}
}
