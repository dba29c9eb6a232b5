package egress

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"cloud.google.com/go/firestore"
	cloudevent "github.com/cloudevents/sdk-go/v2/event"

	"github.com/bitbrat/twitch-edge/functions/trigger"
	"github.com/bitbrat/twitch-edge/shared/bus"
	"github.com/bitbrat/twitch-edge/shared/emulators"
	"github.com/bitbrat/twitch-edge/shared/event"
	"github.com/bitbrat/twitch-edge/shared/fault"
	"github.com/bitbrat/twitch-edge/shared/store"
	"github.com/bitbrat/twitch-edge/shared/twitch"
	"github.com/bitbrat/twitch-edge/shared/twitch/twitchtest"
)

func TestMain(m *testing.M) {
	os.Exit(emulators.RunTests(m, emulators.Firestore, emulators.PubSub))
}

// The real types satisfy the interfaces this package declares.
var (
	_ ChatAPI     = (*twitch.Client)(nil)
	_ WhisperAPI  = (*twitch.Client)(nil)
	_ Publisher   = (*bus.Publisher)(nil)
	_ Claims      = (*store.Claims)(nil)
	_ Recipients  = (*store.WhisperRecipients)(nil)
	_ SendBudgets = (*store.SendBudgets)(nil)
)

// Identities registered in every fixture.
const (
	broadcasterID = "1001"
	botID         = "2002"
	viewerID      = "3003"
	botAccess     = "bot-access-initial"
	botRefresh    = "bot-refresh-initial"
	egressTopic   = "internal.egress.v1"
)

var botScopes = []string{"moderator:read:followers", "user:manage:whispers", "user:write:chat", "user:read:moderated_channels"}

// fakeClock is a settable clock shared by the services, the store and the fake Twitch.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time          { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *fakeClock) Advance(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

// published is a message a recordingPublisher received.
type published struct {
	topic string
	data  []byte
	attrs map[string]string
}

// recordingPublisher is a Publisher that keeps what it is given.
type recordingPublisher struct {
	mu   sync.Mutex
	msgs []published
	fail error
}

func (p *recordingPublisher) Publish(_ context.Context, topic string, data []byte, attrs map[string]string) (string, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.fail != nil {
		return "", p.fail
	}
	p.msgs = append(p.msgs, published{topic, append([]byte(nil), data...), attrs})
	return fmt.Sprintf("ps-%d", len(p.msgs)), nil
}

func (p *recordingPublisher) on(topic string) []published {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []published
	for _, m := range p.msgs {
		if m.topic == topic {
			out = append(out, m)
		}
	}
	return out
}

// finalizes decodes every finalize message, checking its attributes.
func (p *recordingPublisher) finalizes(t *testing.T) []event.FinalizeMessage {
	t.Helper()
	var out []event.FinalizeMessage
	for _, m := range p.on(event.TopicFinalize) {
		f, err := event.DecodeFinalize(m.data)
		if err != nil {
			t.Fatalf("finalize message: %v", err)
		}
		if m.attrs[event.AttrCorrelationID] != f.CorrelationID || m.attrs[event.AttrType] != event.TypeEgressDeliver || len(m.attrs) != 2 {
			t.Errorf("finalize attributes %v for %s", m.attrs, f.CorrelationID)
		}
		out = append(out, *f)
	}
	return out
}

// oneFinalize asserts exactly one finalize was published and returns it.
func (p *recordingPublisher) oneFinalize(t *testing.T) event.FinalizeMessage {
	t.Helper()
	fs := p.finalizes(t)
	if len(fs) != 1 {
		t.Fatalf("%d finalize messages, want 1: %+v", len(fs), fs)
	}
	return fs[0]
}

type fixture struct {
	project string // the emulators' project; another client on it is another instance
	fake    *twitchtest.Server
	clock   *fakeClock
	fs      *firestore.Client
	pub     *recordingPublisher
	helix   *twitch.Client
	claims  *store.Claims
	chat    *ChatService
	whisper *WhisperService
	sleeps  []time.Duration
	// sleep records a wait and advances the clock by it, instead of spending it.
	sleep func(ctx context.Context, d time.Duration) error
}

// newFixture starts a fake Twitch with a broadcaster, the bot and a viewer, stores the
// bot's token in the Firestore emulator (as upstream's OAuth flow does), and builds
// both services the way the deployment wires them, on a fake clock.
func newFixture(t *testing.T) *fixture {
	t.Helper()
	clock := &fakeClock{t: time.Now().UTC().Truncate(time.Second)}
	fake, err := twitchtest.New(twitchtest.Options{Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(fake.Close)
	fake.AddUser(twitchtest.User{ID: broadcasterID, Login: "brat", DisplayName: "Brat"})
	fake.AddUser(twitchtest.User{ID: botID, Login: "bratbot", DisplayName: "BratBot"})
	fake.AddUser(twitchtest.User{ID: viewerID, Login: "viewer", DisplayName: "Viewer"})
	fake.AddToken(twitchtest.Token{AccessToken: botAccess, RefreshToken: botRefresh, UserID: botID, Scopes: botScopes})

	ctx := context.Background()
	project := emulators.ProjectID(t)
	fs, err := store.NewClient(ctx, project, "", store.WithEmulator(emulators.Host(emulators.Firestore)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { fs.Close() })
	_, err = fs.Collection("oauth").Doc("twitch").Collection("bot").Doc("token").Set(ctx, map[string]any{
		"accessToken": botAccess, "refreshToken": botRefresh, "scope": botScopes, "expiresIn": 14400,
		"obtainmentTimestamp": clock.Now().UnixMilli(), "userId": botID,
	})
	if err != nil {
		t.Fatal(err)
	}

	log := slog.New(slog.NewJSONHandler(io.Discard, nil))
	if testing.Verbose() {
		log = slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	httpc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{}}
	t.Cleanup(httpc.CloseIdleConnections)
	oauth := twitch.NewOAuth(twitch.OAuthOptions{BaseURL: fake.AuthBaseURL(), ClientID: fake.ClientID(),
		ClientSecret: fake.ClientSecret(), HTTPClient: httpc, Logger: log})
	tokens, err := twitch.NewProvider(twitch.ProviderOptions{Store: store.NewTokenStore(fs), Role: twitch.RoleBot,
		OAuth: oauth, Logger: log, PollInterval: 5 * time.Millisecond, Holder: "egress-test"})
	if err != nil {
		t.Fatal(err)
	}
	helix := twitch.NewClient(twitch.Options{APIBaseURL: fake.APIBaseURL(), AuthBaseURL: fake.AuthBaseURL(),
		ClientID: fake.ClientID(), HTTPClient: httpc, Tokens: tokens, Logger: log, Now: clock.Now})

	f := &fixture{project: project, fake: fake, clock: clock, fs: fs, pub: &recordingPublisher{}, helix: helix,
		claims: store.NewClaims(fs, store.CollectionDeliveries, 7*24*time.Hour, clock.Now)}
	topics := Topics{Finalize: event.TopicFinalize, Whisper: event.TopicWhisper, Egress: egressTopic}
	var sleepMu sync.Mutex
	f.sleep = func(_ context.Context, d time.Duration) error {
		sleepMu.Lock()
		f.sleeps = append(f.sleeps, d)
		sleepMu.Unlock()
		clock.Advance(d)
		return nil
	}
	f.chat, err = NewChatService(ChatConfig{Helix: helix, Pub: f.pub, Claims: f.claims, Topics: topics,
		Budgets: store.NewSendBudgets(fs), BotUserID: botID, Owner: "test", Now: clock.Now, Log: log, Sleep: f.sleep})
	if err != nil {
		t.Fatal(err)
	}
	f.whisper, err = NewWhisperService(WhisperConfig{Helix: helix, Pub: f.pub, Claims: f.claims,
		Recipients: store.NewWhisperRecipients(fs), Budgets: store.NewSendBudgets(fs), Topics: topics, BotUserID: botID, Owner: "test",
		Now: clock.Now, Log: log, Sleep: f.sleep})
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// chatEvent is an egress event asking for a chat message in #brat.
func chatEvent(cid string, texts ...string) *event.InternalEventV2 {
	e := &event.InternalEventV2{
		V: "1", Source: "llm-bot", CorrelationID: cid, Type: "llm.bot.response.v1", Channel: "#brat", UserID: viewerID,
		Egress:      &event.Egress{Destination: egressTopic, Type: event.EgressChat},
		Annotations: []event.AnnotationV1{{ID: "a-1", Kind: "intent", Source: "router", CreatedAt: "2026-11-21T12:00:00.010Z"}},
	}
	for i, text := range texts {
		e.Candidates = append(e.Candidates, event.CandidateV1{ID: fmt.Sprint("c-", i), Kind: "text", Source: "llm-bot",
			CreatedAt: "2026-11-21T12:00:01.000Z", Status: "proposed", Priority: float64(i + 1), Text: text})
	}
	return e
}

// dmEvent is an egress event asking for a whisper to userID.
func dmEvent(cid, userID, text string) *event.InternalEventV2 {
	e := chatEvent(cid, text)
	e.Egress.Type = event.EgressDM
	e.UserID = userID
	return e
}

// message is e as it arrives on topic.
func message(t testing.TB, e *event.InternalEventV2, topic string) trigger.Message {
	t.Helper()
	b, err := json.Marshal(e)
	if err != nil {
		t.Fatal(err)
	}
	return trigger.Message{ID: "m-" + e.CorrelationID, Data: b, Attributes: event.Attributes(e), Topic: topic, PublishTime: time.Now()}
}

// handoff runs the chat service on a dm message and returns what it handed to the
// whisper topic, as the whisper function receives it.
func (f *fixture) handoff(t *testing.T, m trigger.Message) trigger.Message {
	t.Helper()
	before := len(f.pub.on(event.TopicWhisper))
	if err := f.chat.Handle(context.Background(), m); err != nil {
		t.Fatalf("chat hand-off: %v", err)
	}
	got := f.pub.on(event.TopicWhisper)
	if len(got) != before+1 {
		t.Fatalf("%d hand-offs, want %d", len(got), before+1)
	}
	h := got[len(got)-1]
	return trigger.Message{ID: "w-" + m.ID, Data: h.data, Attributes: h.attrs, Topic: event.TopicWhisper, PublishTime: time.Now()}
}

// chatRequests are the Send Chat Message requests the fake received.
func (f *fixture) chatRequests() []twitchtest.Request {
	return f.fake.RequestsTo(http.MethodPost, "/helix/chat/messages")
}

func (f *fixture) whisperRequests() []twitchtest.Request {
	return f.fake.RequestsTo(http.MethodPost, "/helix/whispers")
}

// wantErr asserts err's classification; code "" means success.
func wantErr(t *testing.T, err error, kind fault.Kind, code string) {
	t.Helper()
	if code == "" {
		if err != nil {
			t.Fatalf("unexpected error: %v", err)
		}
		return
	}
	if err == nil {
		t.Fatalf("want %s error %s, got nil", kind, code)
	}
	if fault.KindOf(err) != kind || fault.CodeOf(err, "") != code {
		t.Fatalf("got %s/%s (%v), want %s/%s", fault.KindOf(err), fault.CodeOf(err, ""), err, kind, code)
	}
}

func wantFailed(t *testing.T, f event.FinalizeMessage, code, messagePart string) {
	t.Helper()
	if f.Status != event.StatusFailed || f.Error == nil || f.Error.Code != code || !strings.Contains(f.Error.Message, messagePart) {
		t.Fatalf("finalize %+v (error %+v), want FAILED %s with message containing %q", f, f.Error, code, messagePart)
	}
	if f.ProviderMessageID != "" {
		t.Errorf("FAILED finalize with providerMessageId %q", f.ProviderMessageID)
	}
}

func okChatResponse(id string) twitchtest.Response {
	h := http.Header{}
	h.Set("Content-Type", "application/json")
	return twitchtest.Response{Status: http.StatusOK, Header: h,
		Body: `{"data":[{"message_id":"` + id + `","is_sent":true,"drop_reason":null}]}`}
}

// pubsubEvent is the CloudEvent Eventarc delivers for a Pub/Sub message on topic.
func pubsubEvent(t *testing.T, data []byte, attrs map[string]string, topic string) cloudevent.Event {
	t.Helper()
	e := cloudevent.New()
	e.SetID("evt-1")
	e.SetSource("//pubsub.googleapis.com/projects/p/topics/" + topic)
	e.SetType("google.cloud.pubsub.topic.v1.messagePublished")
	e.SetTime(time.Now())
	err := e.SetData("application/json", map[string]any{
		"message": map[string]any{"data": data, "attributes": attrs, "messageId": "msg-1", "publishTime": time.Now().Format(time.RFC3339)},
	})
	if err != nil {
		t.Fatal(err)
	}
	return e
}
