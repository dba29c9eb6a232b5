package twitch

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/bitbrat/twitch-edge/shared/fault"
	"github.com/bitbrat/twitch-edge/shared/twitch/twitchtest"
)

func TestSendChatMessage(t *testing.T) {
	const path = "/helix/chat/messages"
	tests := []struct {
		name          string
		setup         func(f *fixture)
		broadcaster   string
		sender        string
		message       string
		kind          fault.Kind
		code          string
		wantRequests  int
		wantDropCode  string
		wantMessageID bool
	}{
		{name: "sent", message: "hello", wantRequests: 1, wantMessageID: true},
		{name: "dropped by twitch", message: "hello",
			setup: func(f *fixture) {
				f.fake.Script("POST", path, twitchtest.ChatDroppedResponse("channel_settings", "followers-only mode"))
			},
			kind: fault.Permanent, code: CodeChatDropped, wantRequests: 1, wantDropCode: "channel_settings"},
		{name: "duplicate within 30s dropped", message: "same text",
			setup: func(f *fixture) {
				if _, err := f.client.SendChatMessage(context.Background(), broadcasterID, botID, "same text", ""); err != nil {
					panic(err)
				}
				f.fake.ResetRequests()
			},
			kind: fault.Permanent, code: CodeChatDropped, wantRequests: 1, wantDropCode: "msg_duplicate"},
		{name: "400 unknown broadcaster", broadcaster: "999999", message: "hi",
			kind: fault.Permanent, code: CodeBadRequest, wantRequests: 1},
		{name: "401 sender is not the token user", sender: viewerID, message: "hi",
			// 401 → one refresh and one retry, which fails the same way.
			kind: fault.Auth, code: CodeUnauthorized, wantRequests: 2},
		{name: "403 banned", message: "hi",
			setup: func(f *fixture) { f.fake.BanFromChat(broadcasterID, botID) },
			kind:  fault.Permanent, code: CodeForbidden, wantRequests: 1},
		{name: "422 too long", message: strings.Repeat("x", 501),
			kind: fault.Permanent, code: CodeUnprocessable, wantRequests: 1},
		{name: "429 with reset beyond the wait bound", message: "hi",
			setup: func(f *fixture) {
				f.fake.Script("POST", path, twitchtest.RateLimitedResponse(800, time.Now().Add(time.Hour), "Too Many Requests"))
			},
			kind: fault.RateLimited, code: CodeRateLimited, wantRequests: 1},
		{name: "500 is transient", message: "hi",
			setup: func(f *fixture) {
				f.fake.Script("POST", path, twitchtest.ErrorResponse(500, "Internal Server Error"))
			},
			kind: fault.Transient, code: CodeUnavailable, wantRequests: 1},
		{name: "503 retried once then sent", message: "hi",
			setup: func(f *fixture) {
				f.fake.Script("POST", path, twitchtest.ErrorResponse(503, "Service Unavailable"))
			},
			wantRequests: 2, wantMessageID: true},
		{name: "503 twice gives up", message: "hi",
			setup: func(f *fixture) {
				f.fake.Script("POST", path, twitchtest.ErrorResponse(503, "x"), twitchtest.ErrorResponse(503, "x"))
			},
			kind: fault.Transient, code: CodeUnavailable, wantRequests: 2},
		{name: "invalid sender id rejected locally", sender: "bot", message: "hi",
			kind: fault.Invalid, code: CodeInvalidInput, wantRequests: 0},
		{name: "empty message rejected locally", message: "  ",
			kind: fault.Invalid, code: CodeInvalidInput, wantRequests: 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, twitchtest.Options{})
			if tc.setup != nil {
				tc.setup(f)
			}
			b, s := tc.broadcaster, tc.sender
			if b == "" {
				b = broadcasterID
			}
			if s == "" {
				s = botID
			}
			res, err := f.client.SendChatMessage(context.Background(), b, s, tc.message, "")
			checkErr(t, err, tc.kind, tc.code)
			if got := len(f.fake.RequestsTo("POST", path)); got != tc.wantRequests {
				t.Errorf("requests = %d, want %d", got, tc.wantRequests)
			}
			if tc.wantMessageID && (res == nil || res.MessageID == "" || !res.IsSent) {
				t.Errorf("result = %+v, want a sent message with id", res)
			}
			if tc.wantDropCode != "" {
				var dropped *ChatDroppedError
				if !errors.As(err, &dropped) || dropped.Reason.Code != tc.wantDropCode {
					t.Fatalf("want ChatDroppedError %s in chain, got %v", tc.wantDropCode, err)
				}
				if res == nil || res.IsSent || res.DropReason == nil {
					t.Errorf("result = %+v, want is_sent false with reason", res)
				}
			}
			if tc.code != "" && tc.wantRequests > 0 && tc.code != CodeChatDropped {
				ae, ok := AsAPIError(err)
				if !ok || ae.Status == 0 || ae.Endpoint != "POST /chat/messages" {
					t.Errorf("want *APIError with status and endpoint, got %#v", ae)
				}
			}
		})
	}
}

func TestSendChatMessageReplyParent(t *testing.T) {
	f := newFixture(t, twitchtest.Options{})
	if _, err := f.client.SendChatMessage(context.Background(), broadcasterID, botID, "re", "parent-1"); err != nil {
		t.Fatal(err)
	}
	msgs := f.fake.ChatMessages()
	if len(msgs) != 1 || msgs[0].ReplyParentMessageID != "parent-1" {
		t.Fatalf("chat messages = %+v", msgs)
	}
}

func TestSendWhisper(t *testing.T) {
	const path = "/helix/whispers"
	clock := time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		name  string
		setup func(f *fixture)
		to    string
		msg   string
		kind  fault.Kind
		code  string
		flav  Flavour
	}{
		{name: "accepted (204)", to: viewerID, msg: "hi"},
		{name: "400 same sender and recipient", to: botID, msg: "hi", kind: fault.Permanent, code: CodeBadRequest},
		{name: "400 recipient blocks strangers", to: "4004", msg: "hi",
			setup: func(f *fixture) {
				f.fake.AddUser(twitchtest.User{ID: "4004", Login: "shy", BlocksStrangers: true})
			},
			kind: fault.Permanent, code: CodeBadRequest},
		{name: "401 no verified phone", to: viewerID, msg: "hi",
			setup: func(f *fixture) {
				f.fake.AddUser(twitchtest.User{ID: botID, Login: "bratbot", NoVerifiedPhone: true})
			},
			kind: fault.Auth, code: CodeUnauthorized},
		{name: "403 sender suspended", to: viewerID, msg: "hi",
			setup: func(f *fixture) {
				f.fake.AddUser(twitchtest.User{ID: botID, Login: "bratbot", Suspended: true})
			},
			kind: fault.Permanent, code: CodeForbidden},
		{name: "404 recipient not found", to: "777", msg: "hi", kind: fault.Permanent, code: CodeNotFound},
		{name: "429 three per second", to: viewerID, msg: "hi",
			setup: func(f *fixture) {
				for i := 0; i < 3; i++ {
					if err := f.client.SendWhisper(context.Background(), botID, viewerID, "burst"); err != nil {
						panic(err)
					}
				}
			},
			kind: fault.RateLimited, code: CodeWhisperRateLimited, flav: FlavourWhisper},
		{name: "non-numeric recipient rejected locally", to: "@viewer", msg: "hi", kind: fault.Invalid, code: CodeInvalidInput},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, twitchtest.Options{Now: func() time.Time { return clock }})
			if tc.setup != nil {
				tc.setup(f)
			}
			err := f.client.SendWhisper(context.Background(), botID, tc.to, tc.msg)
			checkErr(t, err, tc.kind, tc.code)
			if tc.flav != FlavourNone {
				ae, ok := AsAPIError(err)
				if !ok || ae.Flavour != tc.flav {
					t.Errorf("flavour = %v, want %s", ae, tc.flav)
				}
			}
			if tc.code == "" {
				ws := f.fake.Whispers()
				if len(ws) != 1 || ws[0].ToUserID != tc.to || ws[0].Message != tc.msg {
					t.Errorf("whispers = %+v", ws)
				}
				r := f.fake.RequestsTo("POST", path)
				if len(r) != 1 || r[0].Query.Get("from_user_id") != botID || r[0].Header.Get("Client-Id") != f.fake.ClientID() {
					t.Errorf("request = %+v", r)
				}
			}
		})
	}
}

func TestWhisperFortyRecipientsPerDay(t *testing.T) {
	clk := &testClock{t: time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)}
	f := newFixture(t, twitchtest.Options{Now: clk.Now})
	for i := 0; i < 41; i++ {
		id := strconv.Itoa(5000 + i)
		f.fake.AddUser(twitchtest.User{ID: id, Login: "u" + id})
		clk.Advance(2 * time.Second) // stay under 3/s and 100/min
		err := f.client.SendWhisper(context.Background(), botID, id, "hi")
		if i < 40 && err != nil {
			t.Fatalf("whisper %d: %v", i, err)
		}
		if i == 40 {
			checkErr(t, err, fault.RateLimited, CodeWhisperRateLimited)
		}
	}
}

func TestWhisperTruncatedForFirstTimeRecipient(t *testing.T) {
	f := newFixture(t, twitchtest.Options{})
	long := strings.Repeat("é", 600)
	if err := f.client.SendWhisper(context.Background(), botID, viewerID, long); err != nil {
		t.Fatal(err)
	}
	ws := f.fake.Whispers()
	if len(ws) != 1 || !ws[0].Truncated || len([]rune(ws[0].Message)) != 500 {
		t.Fatalf("first whisper should be truncated to 500 characters: %+v", ws[0].Truncated)
	}
}

func TestMalformedResponses(t *testing.T) {
	const path = "/helix/chat/messages"
	bodies := []string{
		"not json",
		"",
		`{"data":[]}`,
		`{"data":[{"message_id":"x"}]}`,
		`{"data":[{"message_id":1,"is_sent":"yes"}]}`,
		`{"data":{"oops":true}}`,
		`[1,2,3]`,
		`{"data":[null]}`,
	}
	for _, body := range bodies {
		t.Run(body, func(t *testing.T) {
			f := newFixture(t, twitchtest.Options{})
			f.fake.Script("POST", path, twitchtest.Response{Status: http.StatusOK, Body: body})
			_, err := f.client.SendChatMessage(context.Background(), broadcasterID, botID, "hi", "")
			checkErr(t, err, fault.Transient, CodeMalformedResponse)
		})
	}
	t.Run("html error page", func(t *testing.T) {
		f := newFixture(t, twitchtest.Options{})
		f.fake.Script("POST", path, twitchtest.Response{Status: http.StatusBadGateway, Body: "<html><body>Bad gateway\n</body></html>"})
		_, err := f.client.SendChatMessage(context.Background(), broadcasterID, botID, "hi", "")
		checkErr(t, err, fault.Transient, CodeUnavailable)
		if ae, _ := AsAPIError(err); ae == nil || !strings.Contains(ae.Message, "Bad gateway") {
			t.Errorf("message should keep an excerpt of the body: %v", err)
		}
	})
}
