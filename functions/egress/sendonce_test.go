package egress

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/bitbrat/twitch-edge/shared/event"
	"github.com/bitbrat/twitch-edge/shared/fault"
	"github.com/bitbrat/twitch-edge/shared/store"
	"github.com/bitbrat/twitch-edge/shared/twitch"
)

// afterSend forwards requests to the fake Twitch and, for the first n sends to path,
// breaks the answer after the request has reached Twitch: the message is delivered,
// the sender never learns it.
type afterSend struct {
	base http.RoundTripper
	path string
	mode string // "timeout", "reset", "crash" (the sender never returns)

	mu      sync.Mutex
	n       int
	crashed chan struct{} // closed once a "crash" request reached Twitch
	revive  chan struct{} // closing it lets a crashed sender return (test clean-up)
}

func newAfterSend(path, mode string, n int) *afterSend {
	return &afterSend{base: &http.Transport{}, path: path, mode: mode, n: n,
		crashed: make(chan struct{}), revive: make(chan struct{})}
}

func (a *afterSend) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := a.base.RoundTrip(r)
	if err != nil || r.Method != http.MethodPost || r.URL.Path != a.path {
		return resp, err
	}
	a.mu.Lock()
	broken := a.n > 0
	a.n--
	a.mu.Unlock()
	if !broken {
		return resp, err
	}
	resp.Body.Close()
	switch a.mode {
	case "timeout":
		return nil, context.DeadlineExceeded
	case "reset":
		return nil, errors.New("read tcp 127.0.0.1:50000->127.0.0.1:443: read: connection reset by peer")
	}
	close(a.crashed)
	<-a.revive // the instance is gone: nothing more happens until clean-up
	return nil, errors.New("instance killed")
}

// redeliveries are the times, after the first delivery, at which Pub/Sub delivers
// the message again under the deployment's retry policy (10 s minimum, 600 s maximum
// backoff, doubling) and the ack deadline (120 s): every one of them must send
// nothing.
var redeliveries = []time.Duration{10 * time.Second, 20 * time.Second, 40 * time.Second, 80 * time.Second,
	120 * time.Second, 160 * time.Second, 320 * time.Second, 600 * time.Second, 600 * time.Second}

// services builds the chat and whisper services as the deployment wires them (lease
// 3 minutes), their Helix requests going through rt.
func (f *fixture) services(t *testing.T, rt http.RoundTripper) (*ChatService, *WhisperService) {
	t.Helper()
	helix := f.helixThrough(t, rt)
	topics := Topics{Finalize: event.TopicFinalize, Whisper: event.TopicWhisper, Egress: egressTopic}
	log := slog.New(slog.DiscardHandler)
	chat, err := NewChatService(ChatConfig{Helix: helix, Pub: f.pub, Claims: f.claims, Topics: topics, Budgets: store.NewSendBudgets(f.fs),
		BotUserID: botID, Owner: "i1", Lease: 3 * time.Minute, Now: f.clock.Now, Log: log})
	if err != nil {
		t.Fatal(err)
	}
	whisper, err := NewWhisperService(WhisperConfig{Helix: helix, Pub: f.pub, Claims: f.claims,
		Recipients: store.NewWhisperRecipients(f.fs), Budgets: store.NewSendBudgets(f.fs), Topics: topics, BotUserID: botID, Owner: "i1",
		Lease: 3 * time.Minute, Now: f.clock.Now, Log: log,
		Sleep: func(context.Context, time.Duration) error { return nil }})
	if err != nil {
		t.Fatal(err)
	}
	return chat, whisper
}

// helixThrough is a Helix client of the bot whose requests go through rt.
func (f *fixture) helixThrough(t *testing.T, rt http.RoundTripper) *twitch.Client {
	t.Helper()
	httpc := &http.Client{Transport: rt}
	oauth := twitch.NewOAuth(twitch.OAuthOptions{BaseURL: f.fake.AuthBaseURL(), ClientID: f.fake.ClientID(),
		ClientSecret: f.fake.ClientSecret(), HTTPClient: httpc})
	tokens, err := twitch.NewProvider(twitch.ProviderOptions{Store: store.NewTokenStore(f.fs), OAuth: oauth, Holder: "x"})
	if err != nil {
		t.Fatal(err)
	}
	return twitch.NewClient(twitch.Options{APIBaseURL: f.fake.APIBaseURL(), AuthBaseURL: f.fake.AuthBaseURL(),
		ClientID: f.fake.ClientID(), HTTPClient: httpc, Tokens: tokens, Now: f.clock.Now})
}

// A chat message or whisper whose answer is lost — a timeout or a reset connection
// after the request reached Twitch, or the instance killed mid-send — is delivered
// once and finalized once, FAILED DELIVERY_UNKNOWN (never SENT twice), whatever the
// timing of Pub/Sub's redeliveries, including two at the same instant.
func TestLostAnswerIsNeverSentTwice(t *testing.T) {
	for _, kind := range []string{"chat", "whisper"} {
		for _, mode := range []string{"timeout", "reset", "crash"} {
			t.Run(kind+"/"+mode, func(t *testing.T) {
				f := newFixture(t)
				path := "/helix/chat/messages"
				if kind == "whisper" {
					path = "/helix/whispers"
				}
				rt := newAfterSend(path, mode, 1)
				chat, whisper := f.services(t, rt)
				handle := chat.Handle
				m := message(t, chatEvent("cid-lost-"+kind+mode, "hello once"), egressTopic)
				if kind == "whisper" {
					handle = whisper.Handle
					m = f.handoff(t, message(t, dmEvent("cid-lost-"+kind+mode, viewerID, "hello once"), egressTopic))
				}
				delivered := func() int {
					if kind == "whisper" {
						return len(f.fake.Whispers())
					}
					n := 0
					for _, c := range f.fake.ChatMessages() {
						if c.IsSent {
							n++
						}
					}
					return n
				}

				first := make(chan error, 1)
				go func() { first <- handle(context.Background(), m) }()
				if mode == "crash" {
					<-rt.crashed // the message is at Twitch; its sender is frozen
				} else if err := <-first; err != nil {
					t.Fatalf("first delivery: %v, want the unknown outcome reported and the message acknowledged", err)
				}
				for _, d := range redeliveries {
					f.clock.Advance(d)
					var wg sync.WaitGroup
					for range 2 { // concurrent deliveries of the same message
						wg.Add(1)
						go func() { defer wg.Done(); _ = handle(context.Background(), m) }()
					}
					wg.Wait()
				}
				if mode == "crash" {
					close(rt.revive)
					<-first
				}
				if n := delivered(); n != 1 {
					t.Fatalf("delivered %d times, want exactly once", n)
				}
				fins := f.pub.finalizes(t)
				if len(fins) != 1 {
					t.Fatalf("%d finalizes, want 1: %+v", len(fins), fins)
				}
				wantFailed(t, fins[0], CodeDeliveryUnknown, "not sent again")
			})
		}
	}
}

// A connection that was never made reached nobody: the send is retried and goes out
// once, SENT.
func TestSendThatNeverLeftIsRetried(t *testing.T) {
	f := newFixture(t)
	rt := &refuseFirst{base: &http.Transport{}, n: 1}
	chat, _ := f.services(t, rt)
	m := message(t, chatEvent("cid-refused", "second try"), egressTopic)
	if err := chat.Handle(context.Background(), m); err == nil {
		t.Fatal("first delivery: want a retryable error")
	}
	f.clock.Advance(10 * time.Second)
	if err := chat.Handle(context.Background(), m); err != nil {
		t.Fatal(err)
	}
	if n := len(f.fake.ChatMessages()); n != 1 || f.pub.oneFinalize(t).Status != event.StatusSent {
		t.Fatalf("%d messages, want one SENT", n)
	}
}

// refuseFirst fails the first n chat sends as a refused connection would.
type refuseFirst struct {
	base http.RoundTripper
	mu   sync.Mutex
	n    int
}

func (r *refuseFirst) RoundTrip(req *http.Request) (*http.Response, error) {
	r.mu.Lock()
	refuse := req.Method == http.MethodPost && req.URL.Path == "/helix/chat/messages" && r.n > 0
	if refuse {
		r.n--
	}
	r.mu.Unlock()
	if refuse {
		// What net/http's dialer returns when nothing listens.
		return (&http.Transport{}).RoundTrip(mustRequest(req, "http://127.0.0.1:1/helix/chat/messages"))
	}
	return r.base.RoundTrip(req)
}

func mustRequest(r *http.Request, url string) *http.Request {
	out, err := http.NewRequestWithContext(r.Context(), r.Method, url, http.NoBody)
	if err != nil {
		panic(err)
	}
	return out
}

func TestOutcomeUnknown(t *testing.T) {
	send := &url.Error{Op: "Post", URL: "https://api.twitch.tv/helix/chat/messages", Err: context.DeadlineExceeded}
	refresh := &url.Error{Op: "Post", URL: "https://id.twitch.tv/oauth2/token", Err: context.DeadlineExceeded}
	dial := &url.Error{Op: "Post", URL: "https://api.twitch.tv/helix/chat/messages",
		Err: &net.OpError{Op: "dial", Net: "tcp", Err: errors.New("connection refused")}}
	network := func(err error) error { return fault.Wrap(fault.Transient, twitch.CodeNetwork, err, "twitch") }
	api := func(status int) error {
		return &fault.Error{Kind: fault.Transient, Code: twitch.CodeUnavailable, Err: &twitch.APIError{Status: status}}
	}
	for _, tc := range []struct {
		name string
		err  error
		want bool
	}{
		{"send timed out", network(send), true},
		{"answer body lost", network(errors.New("unexpected EOF")), true},
		{"refresh timed out before the send", network(refresh), false},
		{"never connected", network(dial), false},
		{"502 from a gateway", api(http.StatusBadGateway), true},
		{"504 from a gateway", api(http.StatusGatewayTimeout), true},
		{"500 from Helix", api(http.StatusInternalServerError), false},
		{"503", api(http.StatusServiceUnavailable), false},
		{"429", api(http.StatusTooManyRequests), false},
		{"rate-limit wait", fault.New(fault.RateLimited, twitch.CodeRateLimited, "bucket empty"), false},
	} {
		if got := outcomeUnknown(tc.err, "/chat/messages"); got != tc.want {
			t.Errorf("%s: unknown = %t, want %t", tc.name, got, tc.want)
		}
	}
}
