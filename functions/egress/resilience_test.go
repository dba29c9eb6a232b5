package egress

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bitbrat/twitch-edge/shared/event"
	"github.com/bitbrat/twitch-edge/shared/fault"
	"github.com/bitbrat/twitch-edge/shared/store"
	"github.com/bitbrat/twitch-edge/shared/twitch"
)

// loseResponse forwards the request, then pretends the response never arrived.
type loseResponse struct {
	base  http.RoundTripper
	drops atomic.Int32
}

func (l *loseResponse) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := l.base.RoundTrip(r)
	if err == nil && r.Method == http.MethodPost && r.URL.Path == "/helix/chat/messages" && l.drops.Add(-1) >= 0 {
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return nil, errors.New("net/http: timeout awaiting response headers")
	}
	return resp, err
}

// A chat message whose answer is lost is not posted twice, and is reported SENT: the
// retry takes the claim over and Twitch's msg_duplicate tells it went out.
func TestLostChatResponseIsSentOnce(t *testing.T) {
	f := newFixture(t)
	lr := &loseResponse{base: &http.Transport{}}
	lr.drops.Store(1)
	httpc := &http.Client{Transport: lr}
	oauth := twitch.NewOAuth(twitch.OAuthOptions{BaseURL: f.fake.AuthBaseURL(), ClientID: f.fake.ClientID(), ClientSecret: f.fake.ClientSecret(), HTTPClient: httpc})
	tokens, err := twitch.NewProvider(twitch.ProviderOptions{Store: store.NewTokenStore(f.fs), OAuth: oauth, Holder: "x"})
	if err != nil {
		t.Fatal(err)
	}
	helix := twitch.NewClient(twitch.Options{APIBaseURL: f.fake.APIBaseURL(), AuthBaseURL: f.fake.AuthBaseURL(),
		ClientID: f.fake.ClientID(), HTTPClient: httpc, Tokens: tokens, Now: f.clock.Now})
	chat, err := NewChatService(ChatConfig{Helix: helix, Pub: f.pub, Claims: f.claims,
		Topics: Topics{Finalize: event.TopicFinalize, Whisper: event.TopicWhisper}, BotUserID: botID, Owner: "t",
		Now: f.clock.Now, Log: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	m := message(t, chatEvent("cid-lost", "hello chat"), egressTopic)
	if err := chat.Handle(context.Background(), m); err == nil {
		t.Fatal("first attempt: want a retryable error, the answer was lost")
	}
	f.clock.Advance(maybeSentLease + time.Second) // Pub/Sub's backoff, within Twitch's 30 s
	if err := chat.Handle(context.Background(), m); err != nil {
		t.Fatalf("retry: %v", err)
	}
	sent := 0
	for _, c := range f.fake.ChatMessages() {
		if c.IsSent {
			sent++
		}
	}
	fin := f.pub.finalizes(t)
	if sent != 1 || len(fin) != 1 || fin[0].Status != event.StatusSent {
		t.Fatalf("posted %d times, finalizes %+v; want once and one SENT", sent, fin)
	}
}

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
