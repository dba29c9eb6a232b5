package egress

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/bitbrat/twitch-edge/functions/trigger"
	"github.com/bitbrat/twitch-edge/shared/event"
	"github.com/bitbrat/twitch-edge/shared/fault"
	"github.com/bitbrat/twitch-edge/shared/twitch"
	"github.com/bitbrat/twitch-edge/shared/twitch/twitchtest"
)

// whisperMessage is e as EgressChat hands it to the whisper topic.
func whisperMessage(t testing.TB, e *event.InternalEventV2) trigger.Message {
	m := message(t, e, event.TopicWhisper)
	m.Attributes[AttrOriginTopic] = egressTopic
	return m
}

func TestWhisperToABadUserIDIsFailedWithoutCallingTwitch(t *testing.T) {
	for _, tc := range []struct{ userID, code string }{
		{"", CodeBadUserID},
		{"viewer", CodeBadUserID},
		{"12a4", CodeBadUserID},
		{"-3003", CodeBadUserID},
		{" 3003", CodeBadUserID},
		{botID, CodeWhisperToSelf},
	} {
		t.Run(tc.userID, func(t *testing.T) {
			f := newFixture(t)
			err := f.whisper.Handle(context.Background(), whisperMessage(t, dmEvent("cid-bad", tc.userID, "hi")))
			wantErr(t, err, fault.Invalid, tc.code)
			fin := f.pub.oneFinalize(t)
			wantFailed(t, fin, tc.code, "")
			if fin.Destination != egressTopic {
				t.Errorf("destination %q", fin.Destination)
			}
			if len(f.fake.Requests()) != 0 {
				t.Error("called Twitch")
			}
		})
	}
}

func TestWhisperNoTextIsFailed(t *testing.T) {
	f := newFixture(t)
	e := dmEvent("cid-empty", viewerID, " ' ' ")
	err := f.whisper.Handle(context.Background(), whisperMessage(t, e))
	wantErr(t, err, fault.Invalid, CodeNoText)
	wantFailed(t, f.pub.oneFinalize(t), CodeNoText, "")
}

func TestWhisperRefusedByTwitchIsFailedWithTwitchsMessage(t *testing.T) {
	for _, tc := range []struct {
		name     string
		setup    func(*twitchtest.Server)
		to       string
		wantKind fault.Kind // of the handler's error; 0: acknowledged
		code     string
		message  string
	}{
		{"400 recipient blocks strangers", func(s *twitchtest.Server) {
			s.AddUser(twitchtest.User{ID: "4004", Login: "private", BlocksStrangers: true})
		}, "4004", 0, twitch.CodeBadRequest, "doesn't allow whispers from strangers"},
		{"401 bot without a verified phone", func(s *twitchtest.Server) {
			s.AddUser(twitchtest.User{ID: botID, Login: "bratbot", NoVerifiedPhone: true})
		}, viewerID, fault.Auth, twitch.CodeUnauthorized, "must have a verified phone number"},
		{"403 bot suspended", func(s *twitchtest.Server) {
			s.AddUser(twitchtest.User{ID: botID, Login: "bratbot", Suspended: true})
		}, viewerID, 0, twitch.CodeForbidden, "not allowed to send whispers"},
		{"404 unknown recipient", func(*twitchtest.Server) {}, "987654321", 0, twitch.CodeNotFound, "was not found"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			tc.setup(f.fake)
			m := whisperMessage(t, dmEvent("cid-refused", tc.to, "hello there"))
			err := f.whisper.Handle(context.Background(), m)
			if tc.wantKind == 0 {
				wantErr(t, err, 0, "")
			} else {
				wantErr(t, err, tc.wantKind, tc.code)
			}
			wantFailed(t, f.pub.oneFinalize(t), tc.code, tc.message)
			calls := len(f.whisperRequests())
			if tc.wantKind == fault.Auth {
				if calls != 2 || f.fake.RefreshCount() != 1 {
					t.Errorf("%d calls, %d refreshes: want a refresh between two attempts", calls, f.fake.RefreshCount())
				}
				return
			}
			if calls != 1 {
				t.Errorf("%d calls, want 1", calls)
			}
			// The outcome is final: a redelivery neither calls Twitch nor reports again.
			if err := f.whisper.Handle(context.Background(), m); err != nil || len(f.whisperRequests()) != 1 || len(f.pub.finalizes(t)) != 1 {
				t.Errorf("redelivery: err %v, %d calls, %d finalizes", err, len(f.whisperRequests()), len(f.pub.finalizes(t)))
			}
		})
	}
}

func TestWhisperExpiredTokenIsRefreshed(t *testing.T) {
	f := newFixture(t)
	f.fake.ExpireToken(botAccess)
	if err := f.whisper.Handle(context.Background(), whisperMessage(t, dmEvent("cid-w401", viewerID, "hi"))); err != nil {
		t.Fatal(err)
	}
	if f.fake.RefreshCount() != 1 || len(f.fake.Whispers()) != 1 {
		t.Fatalf("%d refreshes, %d whispers", f.fake.RefreshCount(), len(f.fake.Whispers()))
	}
	if fin := f.pub.oneFinalize(t); fin.Status != event.StatusSent {
		t.Fatalf("finalize %+v", fin)
	}
}

func TestWhisperTwitchRateLimitAndServerErrorsAreRetried(t *testing.T) {
	for _, tc := range []struct {
		name      string
		responses func(now time.Time) []twitchtest.Response
		kind      fault.Kind
		code      string
		retry     time.Duration
	}{
		{"429", func(now time.Time) []twitchtest.Response {
			return []twitchtest.Response{twitchtest.RateLimitedResponse(800, now.Add(30*time.Second),
				"The sending user exceeded the number of whisper requests that they may make")}
		}, fault.RateLimited, twitch.CodeWhisperRateLimited, 30 * time.Second},
		{"500", func(time.Time) []twitchtest.Response {
			return []twitchtest.Response{twitchtest.ErrorResponse(500, "Internal Server Error")}
		}, fault.Transient, twitch.CodeUnavailable, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			f.fake.Script(http.MethodPost, "/helix/whispers", tc.responses(f.clock.Now())...)
			m := whisperMessage(t, dmEvent("cid-wretry", viewerID, "hi"))
			err := f.whisper.Handle(context.Background(), m)
			wantErr(t, err, tc.kind, tc.code)
			if d := fault.RetryAfter(err, f.clock.Now()); d != tc.retry {
				t.Errorf("retry after %s, want %s", d, tc.retry)
			}
			if len(f.pub.finalizes(t)) != 0 {
				t.Fatal("finalized a send that will be retried")
			}
			f.clock.Advance(tc.retry + time.Second)
			if err := f.whisper.Handle(context.Background(), m); err != nil {
				t.Fatal(err)
			}
			if len(f.fake.Whispers()) != 1 || f.pub.oneFinalize(t).Status != event.StatusSent {
				t.Fatal("the retry did not whisper once")
			}
		})
	}
}

// checkWhisperPace asserts Twitch's per-second and per-minute limits over the times
// the fake accepted whispers.
func checkWhisperPace(t *testing.T, ws []twitchtest.Whisper) {
	t.Helper()
	for i := range ws {
		if i+WhispersPerSecond < len(ws) && ws[i+WhispersPerSecond].Time.Sub(ws[i].Time) < time.Second {
			t.Fatalf("whispers %d..%d within %s", i, i+WhispersPerSecond, ws[i+WhispersPerSecond].Time.Sub(ws[i].Time))
		}
		if i+WhispersPerMinute < len(ws) && ws[i+WhispersPerMinute].Time.Sub(ws[i].Time) < time.Minute {
			t.Fatalf("whispers %d..%d within %s", i, i+WhispersPerMinute, ws[i+WhispersPerMinute].Time.Sub(ws[i].Time))
		}
	}
}

func TestWhisperBurstRespectsRateLimitsAndTheDailyRecipientCap(t *testing.T) {
	f := newFixture(t)
	const n = 50
	for i := 0; i < n; i++ {
		f.fake.AddUser(twitchtest.User{ID: fmt.Sprint(5000 + i), Login: fmt.Sprint("fan", i)})
	}
	start := f.clock.Now()
	for i := 0; i < n; i++ {
		m := whisperMessage(t, dmEvent(fmt.Sprint("cid-burst-", i), fmt.Sprint(5000+i), fmt.Sprint("thanks #", i)))
		if err := f.whisper.Handle(context.Background(), m); err != nil {
			t.Fatalf("whisper %d: %v", i, err)
		}
	}
	ws := f.fake.Whispers()
	if len(ws) != DefaultRecipientCap || len(f.whisperRequests()) != DefaultRecipientCap {
		t.Fatalf("%d whispers accepted of %d requests, want %d and no refusals", len(ws), len(f.whisperRequests()), DefaultRecipientCap)
	}
	checkWhisperPace(t, ws)
	for i, w := range ws {
		if w.ToUserID != fmt.Sprint(5000+i) {
			t.Fatalf("whisper %d went to %s", i, w.ToUserID)
		}
	}
	for _, d := range f.sleeps {
		if d > WhisperSecond {
			t.Fatalf("the handler slept %s", d)
		}
	}
	// 40 whispers at 3 per second take 13 seconds, not less (the fake answers at once:
	// each whisper holds the second from its answer).
	if took := ws[len(ws)-1].Time.Sub(start); took < 13*time.Second || took > 14*WhisperSecond {
		t.Errorf("40 whispers took %s", took)
	}
	fins := f.pub.finalizes(t)
	if len(fins) != n {
		t.Fatalf("%d finalizes, want %d", len(fins), n)
	}
	for i, fin := range fins {
		if fin.CorrelationID != fmt.Sprint("cid-burst-", i) {
			t.Fatalf("finalize %d is for %s", i, fin.CorrelationID)
		}
		if i < DefaultRecipientCap {
			if fin.Status != event.StatusSent {
				t.Errorf("whisper %d: %+v", i, fin)
			}
			continue
		}
		wantFailed(t, fin, CodeRecipientCap, "40 different users")
	}
}

func TestWhisperMinuteBudgetIsRetriedLater(t *testing.T) {
	f := newFixture(t)
	const users, n = 10, 110
	for i := 0; i < users; i++ {
		f.fake.AddUser(twitchtest.User{ID: fmt.Sprint(6000 + i), Login: fmt.Sprint("regular", i)})
	}
	msgs := make([]trigger.Message, n)
	for i := range msgs {
		msgs[i] = whisperMessage(t, dmEvent(fmt.Sprint("cid-minute-", i), fmt.Sprint(6000+i%users), fmt.Sprint("message ", i)))
	}
	for i := 0; i < WhispersPerMinute; i++ {
		if err := f.whisper.Handle(context.Background(), msgs[i]); err != nil {
			t.Fatalf("whisper %d: %v", i, err)
		}
	}
	first := f.fake.Whispers()[0].Time
	err := f.whisper.Handle(context.Background(), msgs[WhispersPerMinute])
	wantErr(t, err, fault.RateLimited, CodeLocalRateLimit)
	var fe *fault.Error
	if want := first.Add(time.Minute); !asFault(err, &fe) || !fe.RetryAt.Equal(want) {
		t.Fatalf("retry at %v, want a minute after the first whisper's answer (%v)", fe.RetryAt, want)
	}
	if len(f.whisperRequests()) != WhispersPerMinute {
		t.Fatalf("%d whisper requests, want %d", len(f.whisperRequests()), WhispersPerMinute)
	}
	// Pub/Sub redelivers later; by then the budget has room again.
	f.clock.Advance(fault.RetryAfter(err, f.clock.Now()))
	for i := WhispersPerMinute; i < n; i++ {
		if err := f.whisper.Handle(context.Background(), msgs[i]); err != nil {
			t.Fatalf("whisper %d: %v", i, err)
		}
	}
	ws := f.fake.Whispers()
	if len(ws) != n || len(f.whisperRequests()) != n {
		t.Fatalf("%d whispers of %d requests, want %d", len(ws), len(f.whisperRequests()), n)
	}
	checkWhisperPace(t, ws)
	if fins := f.pub.finalizes(t); len(fins) != n {
		t.Fatalf("%d finalizes, want %d", len(fins), n)
	}
}

func asFault(err error, fe **fault.Error) bool { return errors.As(err, fe) }

func TestWhisperLongTextFollowsTheFirstTimeRule(t *testing.T) {
	f := newFixture(t)
	words := func(chars int) string { return strings.TrimSpace(strings.Repeat("wörd ", chars/5)) }
	for i, tc := range []struct {
		text      string
		wantLimit int // 0: not truncated
	}{
		{words(800), WhisperFirstTimeMaxChars},        // first whisper to the viewer: 500
		{words(12000), WhisperMaxChars},               // not first-time any more: 10,000
		{words(600), 0},                               // fits 10,000
		{strings.Repeat("x", 10001), WhisperMaxChars}, // one long word is cut, not dropped
	} {
		cid := fmt.Sprint("cid-longw-", i)
		if err := f.whisper.Handle(context.Background(), whisperMessage(t, dmEvent(cid, viewerID, tc.text))); err != nil {
			t.Fatalf("whisper %d: %v", i, err)
		}
		ws := f.fake.Whispers()
		got := ws[len(ws)-1]
		if got.Truncated {
			t.Errorf("whisper %d: Twitch had to truncate it (%d characters)", i, CharCount(got.Message))
		}
		fin := f.pub.finalizes(t)[i]
		if fin.Status != event.StatusSent || fin.CorrelationID != cid {
			t.Fatalf("finalize %+v", fin)
		}
		raw, truncated := fin.Extra["truncated"]
		if tc.wantLimit == 0 {
			if truncated || got.Message != strings.TrimSpace(tc.text) {
				t.Errorf("whisper %d: changed a text that fits (%s)", i, raw)
			}
			continue
		}
		var tr Truncation
		if err := json.Unmarshal(raw, &tr); err != nil {
			t.Fatalf("whisper %d: truncation record %s: %v", i, raw, err)
		}
		n := CharCount(got.Message)
		if tr.Limit != tc.wantLimit || tr.OriginalChars != CharCount(tc.text) || tr.SentChars != n || n > tc.wantLimit ||
			n < tc.wantLimit-10 || !strings.HasSuffix(got.Message, Ellipsis) {
			t.Errorf("whisper %d: sent %d characters, record %+v, want limit %d", i, n, tr, tc.wantLimit)
		}
	}
}
