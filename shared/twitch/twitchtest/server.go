// Package twitchtest is a fake Twitch for tests and the local stack: Helix (EventSub
// subscriptions, chat, whispers, users), the OAuth endpoints (token, validate) and the
// EventSub WebSocket server, all on one loopback HTTP server.
//
// It follows Twitch's documented behaviour, not our client's assumptions: it checks
// tokens, scopes and ids, enforces the documented limits (3 WebSocket connections
// with enabled subscriptions per user token, 300 subscriptions per connection,
// max_total_cost 10, whisper limits, Helix's rate-limit bucket), closes sockets with
// Twitch's close codes, and disables a session's subscriptions when it drops. It
// deliberately shares no types with package twitch, so a misreading of the docs in
// one is not silently mirrored in the other.
//
// Tests script failures on top (Script, ErrorResponse, RateLimitedResponse,
// ChatDroppedResponse) and drive the socket (Notify, Reconnect, Revoke, CloseSession,
// Silence, Drop). Nothing here depends on package testing, so a standalone main can
// serve it too. Close stops everything it started.
package twitchtest

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
)

// Options configure a Server. Zero values take the defaults in the comments, which
// are Twitch's.
type Options struct {
	// Addr is the listen address, e.g. "127.0.0.1:8089". Default: a free loopback port.
	Addr string
	// ClientID and ClientSecret of the one registered app. Defaults "fake-client-id"
	// and "fake-client-secret".
	ClientID     string
	ClientSecret string
	// Now is the clock for token expiry, rate-limit windows, whisper limits and
	// message timestamps. Default time.Now. (Socket timers use real time.)
	Now func() time.Time
	// TokenLifetime is expires_in of issued tokens. Default 4 h.
	TokenLifetime time.Duration
	// KeepRefreshTokens makes refreshes return the same refresh token. By default
	// each refresh rotates it and the old one stops working, the strict reading of
	// "the refresh token may change".
	KeepRefreshTokens bool
	// RateLimit is Helix's bucket size per token and RateLimitWindow how long until
	// it is full again. Defaults 800 and 1 minute.
	RateLimit       int
	RateLimitWindow time.Duration
	// PageSize of Get EventSub Subscriptions. Default 100.
	PageSize int

	// KeepaliveUnit is how long one "second" of keepalive_timeout_seconds lasts on
	// the socket, so tests can run Twitch's 10..600 s cadence fast. Default 1 s.
	KeepaliveUnit time.Duration
	// MinKeepaliveSeconds is the lowest keepalive_timeout_seconds accepted (smaller
	// values are raised to it, as Twitch does). Default 10.
	MinKeepaliveSeconds int
	// SubscribeTimeout is how long after the welcome a socket may stay without a
	// subscription before it is closed with 4003. Default: the keepalive timeout,
	// as Twitch documents.
	SubscribeTimeout time.Duration
	// ReconnectGrace is how long the old socket stays open after session_reconnect.
	// Default 30 s.
	ReconnectGrace time.Duration
	// PingInterval makes the server ping each socket and close it with 4002 when no
	// pong comes. Default 0: no pings.
	PingInterval time.Duration

	// ConduitDeleteAfter is how long a conduit whose shards are all disabled lives
	// before it is deleted with its subscriptions. Default 72 h, as on Twitch.
	ConduitDeleteAfter time.Duration
	// WebhookRetries is how often a webhook notification is retried on the same
	// callback after a failed attempt. Default 2.
	WebhookRetries int
	// WebhookFailureLimit is how many notifications in a row a webhook shard may
	// fail before it is disabled with notification_failures_exceeded. Default 3.
	WebhookFailureLimit int
	// WebhookTimeout bounds each POST to a callback. Default 5 s.
	WebhookTimeout time.Duration
	// MaxConduitCost is max_total_cost of the app's conduit subscriptions, so a test
	// can reach the limit without 10,000 subscriptions. Default 10,000, as on Twitch.
	MaxConduitCost int
	// WebhookClient posts to callbacks. Default: a plain http.Client (the fake,
	// unlike Twitch, accepts http:// loopback callbacks).
	WebhookClient *http.Client
}

// Server is the fake. Create it with New; its methods are safe for concurrent use.
type Server struct {
	o   Options
	srv *httptest.Server
	wg  sync.WaitGroup
	// ctx ends when the server closes; every socket goroutine watches it.
	ctx    context.Context
	cancel context.CancelFunc

	mu         sync.Mutex
	closed     bool
	requests   []Request
	scripts    map[string][]Response
	users      map[string]*User // by id
	logins     map[string]string
	mods       map[string]map[string]bool // broadcaster → moderators
	banned     map[string]map[string]bool // broadcaster → banned users
	tokens     map[string]*tokenInfo      // by access token
	refreshes  map[string]*tokenInfo      // by refresh token
	refreshN   int
	device     deviceCodes
	buckets    map[string]*bucket
	chats      []ChatMessage
	whispers   []Whisper
	wstats     map[string]*whisperStats
	subs       map[string]*Subscription
	subSeq     int
	conduits   map[string]*conduit
	conduitSeq int
	conduitLog []ConduitDelivery
	appIssued  int
	sessions   map[string]*session
	pending    map[string]*session // reconnect token → old session
	frames     map[string]sentFrame
}

// New starts a fake Twitch.
func New(o Options) (*Server, error) {
	if o.ClientID == "" {
		o.ClientID = "fake-client-id"
	}
	if o.ClientSecret == "" {
		o.ClientSecret = "fake-client-secret"
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.TokenLifetime <= 0 {
		o.TokenLifetime = 4 * time.Hour
	}
	if o.RateLimit <= 0 {
		o.RateLimit = 800
	}
	if o.RateLimitWindow <= 0 {
		o.RateLimitWindow = time.Minute
	}
	if o.PageSize <= 0 {
		o.PageSize = 100
	}
	if o.KeepaliveUnit <= 0 {
		o.KeepaliveUnit = time.Second
	}
	if o.MinKeepaliveSeconds <= 0 {
		o.MinKeepaliveSeconds = 10
	}
	if o.ReconnectGrace <= 0 {
		o.ReconnectGrace = 30 * time.Second
	}
	if o.ConduitDeleteAfter <= 0 {
		o.ConduitDeleteAfter = 72 * time.Hour
	}
	if o.MaxConduitCost <= 0 {
		o.MaxConduitCost = MaxConduitTotalCost
	}
	if o.WebhookRetries <= 0 {
		o.WebhookRetries = 2
	}
	if o.WebhookFailureLimit <= 0 {
		o.WebhookFailureLimit = 3
	}
	if o.WebhookTimeout <= 0 {
		o.WebhookTimeout = 5 * time.Second
	}
	if o.WebhookClient == nil {
		o.WebhookClient = &http.Client{}
	}
	s := &Server{
		o:         o,
		scripts:   map[string][]Response{},
		users:     map[string]*User{},
		logins:    map[string]string{},
		mods:      map[string]map[string]bool{},
		banned:    map[string]map[string]bool{},
		tokens:    map[string]*tokenInfo{},
		refreshes: map[string]*tokenInfo{},
		buckets:   map[string]*bucket{},
		wstats:    map[string]*whisperStats{},
		subs:      map[string]*Subscription{},
		conduits:  map[string]*conduit{},
		sessions:  map[string]*session{},
		pending:   map[string]*session{},
		frames:    map[string]sentFrame{},
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())

	mux := http.NewServeMux()
	mux.HandleFunc("POST /helix/eventsub/subscriptions", s.helix(s.createSubscription))
	mux.HandleFunc("GET /helix/eventsub/subscriptions", s.helix(s.listSubscriptions))
	mux.HandleFunc("DELETE /helix/eventsub/subscriptions", s.helix(s.deleteSubscription))
	s.conduitRoutes(mux)
	mux.HandleFunc("POST /helix/chat/messages", s.helix(s.sendChat))
	mux.HandleFunc("POST /helix/whispers", s.helix(s.sendWhisper))
	mux.HandleFunc("GET /helix/users", s.helix(s.getUsers))
	mux.HandleFunc("GET /helix/moderation/channels", s.helix(s.getModeratedChannels))
	mux.HandleFunc("POST /oauth2/token", s.scripted(s.token))
	mux.HandleFunc("POST /oauth2/device", s.scripted(s.deviceAuthorize))
	mux.HandleFunc("GET /oauth2/validate", s.scripted(s.validate))
	mux.HandleFunc("GET /ws", s.serveWS)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		s.record(r, nil)
		writeError(w, http.StatusNotFound, "no such endpoint in the fake")
	})

	srv := httptest.NewUnstartedServer(mux)
	if o.Addr != "" {
		l, err := net.Listen("tcp", o.Addr)
		if err != nil {
			s.cancel()
			return nil, err
		}
		srv.Listener.Close()
		srv.Listener = l
	}
	// The raw connection lets Drop cut a socket without a close frame.
	srv.Config.ConnContext = func(ctx context.Context, c net.Conn) context.Context {
		return context.WithValue(ctx, rawConnKey{}, c)
	}
	srv.Start()
	s.srv = srv
	return s, nil
}

type rawConnKey struct{}

// URL is the server's base URL (http://127.0.0.1:PORT).
func (s *Server) URL() string { return s.srv.URL }

// APIBaseURL is Helix's base URL (…/helix).
func (s *Server) APIBaseURL() string { return s.srv.URL + "/helix" }

// AuthBaseURL is the OAuth server's base URL (…/oauth2).
func (s *Server) AuthBaseURL() string { return s.srv.URL + "/oauth2" }

// EventSubWSURL is the EventSub WebSocket URL (ws://…/ws).
func (s *Server) EventSubWSURL() string { return "ws" + strings.TrimPrefix(s.srv.URL, "http") + "/ws" }

// ClientID is the registered app's client id.
func (s *Server) ClientID() string { return s.o.ClientID }

// ClientSecret is the registered app's client secret.
func (s *Server) ClientSecret() string { return s.o.ClientSecret }

// Close closes every socket, stops the server and waits for all its goroutines.
func (s *Server) Close() {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	s.closed = true
	for _, cd := range s.conduits {
		if cd.doomed != nil {
			cd.doomed.Stop()
		}
	}
	var sess []*session
	for _, ss := range s.sessions {
		sess = append(sess, ss)
	}
	s.mu.Unlock()
	s.cancel()
	for _, ss := range sess {
		ss.abort()
	}
	s.srv.Close()
	s.wg.Wait()
}

// Request is a recorded request.
type Request struct {
	Method string
	// Path is the full path on the fake ("/helix/chat/messages", "/oauth2/token").
	Path   string
	Query  url.Values
	Header http.Header
	// Body is the request body (form bodies of /oauth2/token included).
	Body []byte
	Time time.Time
}

// Requests returns a copy of every recorded request, oldest first.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.requests)
}

// RequestsTo returns the recorded requests for one endpoint.
func (s *Server) RequestsTo(method, path string) []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Request
	for _, r := range s.requests {
		if r.Method == method && r.Path == path {
			out = append(out, r)
		}
	}
	return out
}

// ResetRequests forgets the recorded requests.
func (s *Server) ResetRequests() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.requests = nil
}

func (s *Server) record(r *http.Request, body []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.requests = append(s.requests, Request{
		Method: r.Method, Path: r.URL.Path, Query: r.URL.Query(), Header: r.Header.Clone(),
		Body: body, Time: s.o.Now(),
	})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, status int, message string) {
	writeJSON(w, status, map[string]any{"error": http.StatusText(status), "status": status, "message": message})
}

// User is a registered Twitch user.
type User struct {
	ID          string
	Login       string
	DisplayName string
	// NoVerifiedPhone makes whispers from this user fail with 401.
	NoVerifiedPhone bool
	// BlocksStrangers makes whispers to this user from someone they never
	// whispered fail with 400.
	BlocksStrangers bool
	// Suspended makes whispers from this user fail with 403.
	Suspended bool
}

// AddUser registers (or replaces) a user.
func (s *Server) AddUser(u User) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if u.DisplayName == "" {
		u.DisplayName = u.Login
	}
	u.Login = strings.ToLower(u.Login)
	s.users[u.ID] = &u
	s.logins[u.Login] = u.ID
}

// AddModerator makes userID a moderator of broadcasterID's channel.
func (s *Server) AddModerator(broadcasterID, userID string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.mods[broadcasterID] == nil {
		s.mods[broadcasterID] = map[string]bool{}
	}
	s.mods[broadcasterID][userID] = true
}

// BanFromChat makes chat messages from userID to broadcasterID's chat fail with 403.
func (s *Server) BanFromChat(broadcasterID, userID string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.banned[broadcasterID] == nil {
		s.banned[broadcasterID] = map[string]bool{}
	}
	s.banned[broadcasterID][userID] = true
}

// Wait polls cond every few milliseconds until it is true or ctx ends. Tests use it
// to wait for the client to connect, subscribe or reconnect.
func (s *Server) Wait(ctx context.Context, cond func() bool) error {
	t := time.NewTicker(5 * time.Millisecond)
	defer t.Stop()
	for {
		if cond() {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
}

func newID() string { return uuid.NewString() }
