package egress

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bitbrat/twitch-edge/functions/trigger"
	"github.com/bitbrat/twitch-edge/shared/event"
	"github.com/bitbrat/twitch-edge/shared/fault"
	"github.com/bitbrat/twitch-edge/shared/logging"
	"github.com/bitbrat/twitch-edge/shared/twitch"
	"github.com/bitbrat/twitch-edge/shared/twitch/twitchtest"
)

type chatBody struct {
	BroadcasterID string `json:"broadcaster_id"`
	SenderID      string `json:"sender_id"`
	Message       string `json:"message"`
}

func decodeChat(t *testing.T, r twitchtest.Request) chatBody {
	t.Helper()
	var b chatBody
	if err := json.Unmarshal(r.Body, &b); err != nil {
		t.Fatalf("chat request body %q: %v", r.Body, err)
	}
	return b
}

func TestChatEventSendsOneMessage(t *testing.T) {
	f := newFixture(t)
	e := chatEvent("cid-chat-1", `  “'Hello, chat!'”  `, "a worse answer")
	if err := f.chat.Handle(context.Background(), message(t, e, egressTopic)); err != nil {
		t.Fatal(err)
	}
	reqs := f.chatRequests()
	if len(reqs) != 1 {
		t.Fatalf("%d Send Chat Message calls, want 1", len(reqs))
	}
	r := reqs[0]
	if got := r.Header.Get("Authorization"); got != "Bearer "+botAccess {
		t.Errorf("Authorization %q", got)
	}
	if got := r.Header.Get("Client-Id"); got != f.fake.ClientID() {
		t.Errorf("Client-Id %q", got)
	}
	if b := decodeChat(t, r); b != (chatBody{BroadcasterID: broadcasterID, SenderID: botID, Message: "Hello, chat!"}) {
		t.Errorf("sent %+v", b)
	}
	sent := f.fake.ChatMessages()
	fin := f.pub.oneFinalize(t)
	if fin.Status != event.StatusSent || fin.ProviderMessageID == "" || fin.ProviderMessageID != sent[0].MessageID {
		t.Errorf("finalize %+v, want SENT with Twitch's message id %s", fin, sent[0].MessageID)
	}
	if fin.CorrelationID != "cid-chat-1" || fin.Destination != egressTopic || fin.Error != nil || len(fin.Parts) != 0 {
		t.Errorf("finalize %+v", fin)
	}
	if _, err := event.ParseTimestamp(fin.DeliveredAt); err != nil || fin.DeliveredAt != event.Timestamp(f.clock.Now()) {
		t.Errorf("deliveredAt %q (now %s)", fin.DeliveredAt, f.clock.Now())
	}
	if len(fin.Candidates) != 2 || len(fin.Annotations) != 1 || fin.Candidates[0].Text != e.Candidates[0].Text {
		t.Errorf("finalize does not carry the event's candidates and annotations: %+v", fin)
	}
	if n := len(f.pub.on(event.TopicWhisper)); n != 0 {
		t.Errorf("%d whisper hand-offs for a chat event", n)
	}
}

func TestChatPerInstanceTopicIsTheDestination(t *testing.T) {
	f := newFixture(t)
	topic := event.EgressInstanceTopic("bot-7")
	if err := f.chat.Handle(context.Background(), message(t, chatEvent("cid-inst", "hi"), topic)); err != nil {
		t.Fatal(err)
	}
	if fin := f.pub.oneFinalize(t); fin.Destination != topic {
		t.Fatalf("destination %q, want %q", fin.Destination, topic)
	}
}

func TestDMEventIsWhisperedOnce(t *testing.T) {
	f := newFixture(t)
	m := message(t, dmEvent("cid-dm-1", viewerID, `"psst, hello"`), egressTopic)
	m.Attributes["custom"] = "kept"
	w := f.handoff(t, m)
	if len(f.chatRequests()) != 0 || len(f.pub.finalizes(t)) != 0 {
		t.Fatal("the chat function delivered or finalized a dm event")
	}
	if string(w.Data) != string(m.Data) {
		t.Errorf("hand-off changed the event:\n%s\n%s", w.Data, m.Data)
	}
	if w.Attributes[AttrOriginTopic] != egressTopic || w.Attributes["custom"] != "kept" ||
		w.Attributes[event.AttrCorrelationID] != "cid-dm-1" || w.Attributes[event.AttrType] != "llm.bot.response.v1" {
		t.Errorf("hand-off attributes %v", w.Attributes)
	}
	if err := f.whisper.Handle(context.Background(), w); err != nil {
		t.Fatal(err)
	}
	reqs := f.whisperRequests()
	if len(reqs) != 1 {
		t.Fatalf("%d Send Whisper calls, want 1", len(reqs))
	}
	r := reqs[0]
	if r.Query.Get("from_user_id") != botID || r.Query.Get("to_user_id") != viewerID ||
		r.Header.Get("Authorization") != "Bearer "+botAccess || r.Header.Get("Client-Id") != f.fake.ClientID() {
		t.Errorf("whisper request %v %v", r.Query, r.Header)
	}
	if string(r.Body) != `{"message":"psst, hello"}` {
		t.Errorf("whisper body %s", r.Body)
	}
	if ws := f.fake.Whispers(); len(ws) != 1 || ws[0].Message != "psst, hello" {
		t.Errorf("fake received whispers %+v", ws)
	}
	fin := f.pub.oneFinalize(t)
	if fin.Status != event.StatusSent || fin.Destination != egressTopic || fin.ProviderMessageID != "" || fin.CorrelationID != "cid-dm-1" {
		t.Errorf("finalize %+v", fin)
	}
	if len(f.chatRequests()) != 0 {
		t.Error("a dm event was also sent to chat")
	}
}

// deliverThrice delivers m three times at once, then three times more in turn; a
// delivery that finds another in progress may ask for a retry.
func deliverThrice(t *testing.T, h func(context.Context, trigger.Message) error, m trigger.Message) {
	t.Helper()
	var wg sync.WaitGroup
	errs := make(chan error, 6)
	for i := 0; i < 3; i++ {
		wg.Add(1)
		go func() { defer wg.Done(); errs <- h(context.Background(), m) }()
	}
	wg.Wait()
	for i := 0; i < 3; i++ {
		errs <- h(context.Background(), m)
	}
	close(errs)
	for err := range errs {
		if err != nil && fault.CodeOf(err, "") != CodeInProgress {
			t.Errorf("delivery: %v", err)
		}
	}
}

func TestRedeliveredEventIsSentOnce(t *testing.T) {
	f := newFixture(t)
	t.Run("chat", func(t *testing.T) {
		deliverThrice(t, f.chat.Handle, message(t, chatEvent("cid-dup-chat", "only once"), egressTopic))
		if n := len(f.chatRequests()); n != 1 {
			t.Fatalf("%d chat messages, want 1", n)
		}
	})
	t.Run("whisper", func(t *testing.T) {
		w := f.handoff(t, message(t, dmEvent("cid-dup-dm", viewerID, "only once"), egressTopic))
		deliverThrice(t, f.whisper.Handle, w)
		if n := len(f.whisperRequests()); n != 1 {
			t.Fatalf("%d whispers, want 1", n)
		}
	})
	fins := f.pub.finalizes(t)
	if len(fins) != 2 || fins[0].Status != event.StatusSent || fins[1].Status != event.StatusSent {
		t.Fatalf("finalizes %+v, want one SENT per event", fins)
	}
}

func TestChatClaimOfACrashedInstanceIsTakenOverAfterItsLease(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	if _, err := f.claims.Acquire(ctx, "chat:cid-crash:0", "crashed-instance", time.Minute); err != nil {
		t.Fatal(err)
	}
	m := message(t, chatEvent("cid-crash", "after the crash"), egressTopic)
	err := f.chat.Handle(ctx, m)
	wantErr(t, err, fault.Transient, CodeInProgress)
	if fault.RetryAfter(err, f.clock.Now()) != time.Minute || len(f.chatRequests()) != 0 {
		t.Fatalf("while the lease holds: retry after %s, %d sends", fault.RetryAfter(err, f.clock.Now()), len(f.chatRequests()))
	}
	f.clock.Advance(61 * time.Second)
	if err := f.chat.Handle(ctx, m); err != nil {
		t.Fatal(err)
	}
	if len(f.chatRequests()) != 1 || f.pub.oneFinalize(t).Status != event.StatusSent {
		t.Fatal("the expired claim was not taken over")
	}
}

func TestChatTwitchRateLimitIsRetriedAfterReset(t *testing.T) {
	f := newFixture(t)
	reset := f.clock.Now().Add(60 * time.Second)
	f.fake.Script(http.MethodPost, "/helix/chat/messages", twitchtest.RateLimitedResponse(800, reset, "Too Many Requests"))
	m := message(t, chatEvent("cid-429", "later"), egressTopic)
	err := f.chat.Handle(context.Background(), m)
	wantErr(t, err, fault.RateLimited, twitch.CodeRateLimited)
	if d := fault.RetryAfter(err, f.clock.Now()); d != 60*time.Second {
		t.Errorf("retry after %s, want the 60 s to Ratelimit-Reset", d)
	}
	if len(f.pub.finalizes(t)) != 0 {
		t.Fatal("a rate-limited send was finalized")
	}
	f.clock.Advance(61 * time.Second)
	if err := f.chat.Handle(context.Background(), m); err != nil {
		t.Fatal(err)
	}
	if n := len(f.chatRequests()); n != 2 {
		t.Errorf("%d chat requests, want the 429 and one retry", n)
	}
	if fin := f.pub.oneFinalize(t); fin.Status != event.StatusSent {
		t.Fatalf("finalize %+v", fin)
	}
}

func TestChatServerErrorsAreRetried(t *testing.T) {
	for _, tc := range []struct {
		name      string
		responses []twitchtest.Response
		wantCalls int // Helix calls before the handler gives up
	}{
		{"500", []twitchtest.Response{twitchtest.ErrorResponse(500, "Internal Server Error")}, 1},
		// The client retries a 503 once, as Twitch recommends.
		{"503 twice", []twitchtest.Response{twitchtest.ErrorResponse(503, "Service Unavailable"), twitchtest.ErrorResponse(503, "Service Unavailable")}, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			f.fake.Script(http.MethodPost, "/helix/chat/messages", tc.responses...)
			m := message(t, chatEvent("cid-5xx", "eventually"), egressTopic)
			err := f.chat.Handle(context.Background(), m)
			wantErr(t, err, fault.Transient, twitch.CodeUnavailable)
			if !fault.Retryable(err) || len(f.chatRequests()) != tc.wantCalls || len(f.pub.finalizes(t)) != 0 {
				t.Fatalf("after %s: retryable=%t calls=%d finalizes=%d", tc.name, fault.Retryable(err), len(f.chatRequests()), len(f.pub.finalizes(t)))
			}
			if err := f.chat.Handle(context.Background(), m); err != nil {
				t.Fatal(err)
			}
			if fin := f.pub.oneFinalize(t); fin.Status != event.StatusSent {
				t.Fatalf("finalize %+v", fin)
			}
		})
	}
}

func TestChatDroppedMessageIsFailedWithTwitchsReason(t *testing.T) {
	f := newFixture(t)
	f.fake.Script(http.MethodPost, "/helix/chat/messages",
		twitchtest.ChatDroppedResponse("msg_rejected", "Your message is being checked by mods and has not been sent."))
	m := message(t, chatEvent("cid-dropped", "borderline text"), egressTopic)
	if err := f.chat.Handle(context.Background(), m); err != nil {
		t.Fatalf("a dropped message is a final outcome, got %v", err)
	}
	wantFailed(t, f.pub.oneFinalize(t), twitch.CodeChatDropped, "msg_rejected: Your message is being checked by mods")
	// A redelivery reports nothing new and sends nothing.
	if err := f.chat.Handle(context.Background(), m); err != nil {
		t.Fatal(err)
	}
	if len(f.chatRequests()) != 1 || len(f.pub.finalizes(t)) != 1 {
		t.Fatalf("redelivery: %d sends, %d finalizes", len(f.chatRequests()), len(f.pub.finalizes(t)))
	}
}

func TestChatExpiredTokenIsRefreshed(t *testing.T) {
	f := newFixture(t)
	f.fake.ExpireToken(botAccess)
	if err := f.chat.Handle(context.Background(), message(t, chatEvent("cid-401", "after refresh"), egressTopic)); err != nil {
		t.Fatal(err)
	}
	if f.fake.RefreshCount() != 1 {
		t.Errorf("%d refreshes, want 1", f.fake.RefreshCount())
	}
	sent := f.fake.ChatMessages()
	if len(sent) != 1 || !sent[0].IsSent {
		t.Fatalf("chat messages %+v", sent)
	}
	reqs := f.chatRequests()
	if last := reqs[len(reqs)-1].Header.Get("Authorization"); last == "Bearer "+botAccess {
		t.Error("the send after the refresh still used the expired token")
	}
	if fin := f.pub.oneFinalize(t); fin.Status != event.StatusSent || fin.ProviderMessageID != sent[0].MessageID {
		t.Fatalf("finalize %+v", fin)
	}
}

func TestChatUnauthorizedAfterRefreshIsReportedAndDeadLettered(t *testing.T) {
	f := newFixture(t)
	const why = "The sender_id must match the user ID in the user access token"
	f.fake.Script(http.MethodPost, "/helix/chat/messages", twitchtest.ErrorResponse(401, why), twitchtest.ErrorResponse(401, why))
	m := message(t, chatEvent("cid-auth", "no luck"), egressTopic)
	dl := &recordingPublisher{}
	fn := trigger.Wrap("EgressChat", logging.New(io.Discard, nil, "egress"),
		trigger.DeadLetters{Pub: dl, Topic: event.TopicDeadLetter, Source: "twitch-edge.EgressChat", OriginalType: "EgressChat.input"},
		f.chat.Handle)
	if err := fn(context.Background(), pubsubEvent(t, m.Data, m.Attributes, egressTopic)); err != nil {
		t.Fatalf("an auth failure is dead-lettered and acknowledged, got %v", err)
	}
	if f.fake.RefreshCount() != 1 || len(f.chatRequests()) != 2 {
		t.Errorf("refreshes %d, sends %d: want one refresh between two attempts", f.fake.RefreshCount(), len(f.chatRequests()))
	}
	wantFailed(t, f.pub.oneFinalize(t), twitch.CodeUnauthorized, why)
	dls := dl.on(event.TopicDeadLetter)
	if len(dls) != 1 {
		t.Fatalf("%d dead letters, want 1", len(dls))
	}
	var d event.DeadLetter
	if err := json.Unmarshal(dls[0].data, &d); err != nil {
		t.Fatal(err)
	}
	if d.CorrelationID != "cid-auth" || d.Payload.Error.Code != twitch.CodeUnauthorized || string(d.Original) != string(m.Data) {
		t.Errorf("dead letter %+v", d)
	}
}

func TestChatRefusedByTwitchIsFailed(t *testing.T) {
	f := newFixture(t)
	f.fake.BanFromChat(broadcasterID, botID)
	if err := f.chat.Handle(context.Background(), message(t, chatEvent("cid-403", "hello?"), egressTopic)); err != nil {
		t.Fatal(err)
	}
	wantFailed(t, f.pub.oneFinalize(t), twitch.CodeForbidden, "not permitted to send chat messages")
}

func TestChatUnknownChannelIsFailed(t *testing.T) {
	f := newFixture(t)
	e := chatEvent("cid-nochan", "anyone?")
	e.Channel = "#nobody_here"
	if err := f.chat.Handle(context.Background(), message(t, e, egressTopic)); err != nil {
		t.Fatal(err)
	}
	wantFailed(t, f.pub.oneFinalize(t), CodeChannelNotFound, "nobody_here")
	if len(f.chatRequests()) != 0 {
		t.Error("sent to an unknown channel")
	}
}

func TestChatLongTextIsSplitIntoOrderedParts(t *testing.T) {
	f := newFixture(t)
	// 1,200 characters of multi-byte words: 2,400 bytes, so a byte count would make
	// five parts and cut words.
	words := strings.Repeat("héllo wörld ", 100)
	text := strings.TrimSpace(words)
	if err := f.chat.Handle(context.Background(), message(t, chatEvent("cid-long", text), egressTopic)); err != nil {
		t.Fatal(err)
	}
	sent := f.fake.ChatMessages()
	if len(sent) != 3 {
		t.Fatalf("%d parts, want 3", len(sent))
	}
	var got []string
	for _, m := range sent {
		if !m.IsSent || CharCount(m.Message) > ChatMaxChars || strings.HasSuffix(m.Message, " ") {
			t.Errorf("part %+v", m)
		}
		got = append(got, m.Message)
	}
	if strings.Join(got, " ") != text {
		t.Error("the parts, in order, do not make the text")
	}
	fin := f.pub.oneFinalize(t)
	if fin.Status != event.StatusSent || fin.ProviderMessageID != sent[0].MessageID || len(fin.Parts) != 3 {
		t.Fatalf("finalize %+v", fin)
	}
	for i, p := range fin.Parts {
		if p.Index != i || p.Status != event.StatusSent || p.ProviderMessageID != sent[i].MessageID {
			t.Errorf("part %d: %+v", i, p)
		}
	}
	if _, ok := fin.Extra["truncated"]; ok {
		t.Error("a text that fits was reported truncated")
	}
}

func TestChatPartFailureStopsTheRest(t *testing.T) {
	f := newFixture(t)
	f.fake.Script(http.MethodPost, "/helix/chat/messages", okChatResponse("m-0"),
		twitchtest.ChatDroppedResponse("channel_settings", "Slow mode"))
	text := strings.Repeat("word ", 250) // 1,249 characters: three parts
	m := message(t, chatEvent("cid-partial", text), egressTopic)
	if err := f.chat.Handle(context.Background(), m); err != nil {
		t.Fatal(err)
	}
	if n := len(f.chatRequests()); n != 2 {
		t.Fatalf("%d sends, want 2 (the third part is not sent after the second failed)", n)
	}
	fin := f.pub.oneFinalize(t)
	wantFailed(t, fin, twitch.CodeChatDropped, "channel_settings")
	want := []event.PartOutcome{
		{Index: 0, Status: event.StatusSent, ProviderMessageID: "m-0"},
		{Index: 1, Status: event.StatusFailed, Error: &event.ErrorInfo{Code: twitch.CodeChatDropped, Message: "channel_settings: Slow mode"}},
		{Index: 2, Status: event.StatusFailed, Error: &event.ErrorInfo{Code: CodePartNotSent, Message: "not sent because an earlier part failed"}},
	}
	gotJSON, _ := json.Marshal(fin.Parts)
	wantJSON, _ := json.Marshal(want)
	if string(gotJSON) != string(wantJSON) {
		t.Fatalf("parts\n got %s\nwant %s", gotJSON, wantJSON)
	}
	if err := f.chat.Handle(context.Background(), m); err != nil || len(f.chatRequests()) != 2 || len(f.pub.finalizes(t)) != 1 {
		t.Fatalf("redelivery: err %v, %d sends, %d finalizes", err, len(f.chatRequests()), len(f.pub.finalizes(t)))
	}
}

func TestChatTextBeyondMaxPartsIsTruncated(t *testing.T) {
	f := newFixture(t)
	// 7,499 characters, more than 10 parts. (Words differ: Twitch drops a message
	// identical to one sent in the last 30 s, and so does the fake.)
	var b strings.Builder
	for i := 0; i < 1500; i++ {
		fmt.Fprintf(&b, "w%03d ", i%1000)
	}
	text := b.String()
	if err := f.chat.Handle(context.Background(), message(t, chatEvent("cid-huge", text), egressTopic)); err != nil {
		t.Fatal(err)
	}
	sent := f.fake.ChatMessages()
	if len(sent) != DefaultMaxParts || !strings.HasSuffix(sent[len(sent)-1].Message, Ellipsis) {
		t.Fatalf("%d parts, last %q", len(sent), sent[len(sent)-1].Message)
	}
	fin := f.pub.oneFinalize(t)
	var tr Truncation
	if err := json.Unmarshal(fin.Extra["truncated"], &tr); err != nil || tr.Limit != 5000 || tr.OriginalChars != 7499 || tr.SentChars > 5000 {
		t.Fatalf("truncation record %s (%v)", fin.Extra["truncated"], err)
	}
}

func TestUndeliverableEventsAreFailedAndDeadLettered(t *testing.T) {
	noText := chatEvent("cid-notext", "  ", `""`)
	noEgress := chatEvent("cid-noegress", "hi")
	noEgress.Egress = nil
	badChannel := chatEvent("cid-badchan", "hi")
	badChannel.Channel = "#not a channel"
	noCID := chatEvent("", "hi")
	for _, tc := range []struct {
		name    string
		data    []byte
		attrs   map[string]string
		code    string
		wantCID string // "" when no FAILED finalize can be published
	}{
		{"not JSON", []byte("\x00garbage"), map[string]string{event.AttrCorrelationID: "cid-attr"}, "EVENT_NOT_JSON", "cid-attr"},
		{"not JSON, no id", []byte("{"), nil, "EVENT_NOT_JSON", ""},
		{"array", []byte("[1]"), nil, "EVENT_NOT_OBJECT", ""},
		{"no correlation id", mustJSON(t, noCID), nil, CodeNoCorrelationID, ""},
		{"no egress", mustJSON(t, noEgress), nil, CodeNoEgress, "cid-noegress"},
		{"no text", mustJSON(t, noText), nil, CodeNoText, "cid-notext"},
		{"bad channel", mustJSON(t, badChannel), nil, CodeNoChannel, "cid-badchan"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			dl := &recordingPublisher{}
			fn := trigger.Wrap("EgressChat", logging.New(io.Discard, nil, "egress"),
				trigger.DeadLetters{Pub: dl, Topic: event.TopicDeadLetter, Source: "twitch-edge.EgressChat", OriginalType: "EgressChat.input"},
				f.chat.Handle)
			err := f.chat.Handle(context.Background(), trigger.Message{ID: "x", Data: tc.data, Attributes: tc.attrs, Topic: egressTopic})
			wantErr(t, err, fault.Invalid, tc.code)
			if err := fn(context.Background(), pubsubEvent(t, tc.data, tc.attrs, egressTopic)); err != nil {
				t.Fatalf("through the trigger: %v", err)
			}
			if n := len(dl.on(event.TopicDeadLetter)); n != 1 {
				t.Fatalf("%d dead letters, want 1", n)
			}
			fins := f.pub.finalizes(t)
			if tc.wantCID == "" {
				if len(fins) != 0 {
					t.Fatalf("finalize without a correlation id: %+v", fins)
				}
			} else {
				if len(fins) != 1 { // one per event, however often it is delivered
					t.Fatalf("%d finalizes, want 1", len(fins))
				}
				wantFailed(t, fins[0], tc.code, "")
				if fins[0].CorrelationID != tc.wantCID || fins[0].Destination != egressTopic {
					t.Errorf("finalize %+v", fins[0])
				}
			}
			if len(f.fake.Requests()) != 0 {
				t.Error("called Twitch for an undeliverable event")
			}
		})
	}
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
