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
	"errors"
	"io"
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
}

// Server is the fake. Create it with New; its methods are safe for concurrent use.
type Server struct {
	o   Options
	srv *httptest.Server
	wg  sync.WaitGroup
	// ctx ends when the server closes; every socket goroutine watches it.
	ctx    context.Context
	cancel context.CancelFunc

	mu        sync.Mutex
	closed    bool
	requests  []Request
	scripts   map[string][]Response
	users     map[string]*User // by id
	logins    map[string]string
	mods      map[string]map[string]bool // broadcaster → moderators
	banned    map[string]map[string]bool // broadcaster → banned users
	tokens    map[string]*tokenInfo      // by access token
	refreshes map[string]*tokenInfo      // by refresh token
	refreshN  int
	buckets   map[string]*bucket
	chats     []ChatMessage
	whispers  []Whisper
	wstats    map[string]*whisperStats
	subs      map[string]*Subscription
	subSeq    int
	conduits  map[string]bool
	sessions  map[string]*session
	pending   map[string]*session // reconnect token → old session
	frames    map[string]sentFrame
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
		conduits:  map[string]bool{},
		sessions:  map[string]*session{},
		pending:   map[string]*session{},
		frames:    map[string]sentFrame{},
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())

	mux := http.NewServeMux()
	mux.HandleFunc("POST /helix/eventsub/subscriptions", s.helix(s.createSubscription))
	mux.HandleFunc("GET /helix/eventsub/subscriptions", s.helix(s.listSubscriptions))
	mux.HandleFunc("DELETE /helix/eventsub/subscriptions", s.helix(s.deleteSubscription))
	mux.HandleFunc("POST /helix/chat/messages", s.helix(s.sendChat))
	mux.HandleFunc("POST /helix/whispers", s.helix(s.sendWhisper))
	mux.HandleFunc("GET /helix/users", s.helix(s.getUsers))
	mux.HandleFunc("GET /helix/moderation/channels", s.helix(s.getModeratedChannels))
	mux.HandleFunc("POST /oauth2/token", s.scripted(s.token))
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

// Response is a scripted answer.
type Response struct {
	Status int
	Header http.Header
	Body   string
}

// Script queues responses for an endpoint (method and full path, e.g. "POST",
// "/helix/chat/messages"): the next len(rs) requests to it get them in order, before
// any token or input checks, then normal behaviour resumes.
func (s *Server) Script(method, path string, rs ...Response) {
	s.mu.Lock()
	defer s.mu.Unlock()
	k := method + " " + path
	s.scripts[k] = append(s.scripts[k], rs...)
}

// ErrorResponse is Twitch's error shape: {"error": "<status text>", "status": N,
// "message": "..."}.
func ErrorResponse(status int, message string) Response {
	b, _ := json.Marshal(map[string]any{"error": http.StatusText(status), "status": status, "message": message})
	return Response{Status: status, Header: jsonHeader(), Body: string(b)}
}

// RateLimitedResponse is a 429 with Ratelimit-Limit, Ratelimit-Remaining: 0 and
// Ratelimit-Reset set to reset; message may name the limit (e.g. "number of websocket
// transports limit exceeded").
func RateLimitedResponse(limit int, reset time.Time, message string) Response {
	r := ErrorResponse(http.StatusTooManyRequests, message)
	r.Header.Set("Ratelimit-Limit", itoa(limit))
	r.Header.Set("Ratelimit-Remaining", "0")
	r.Header.Set("Ratelimit-Reset", itoa(int(reset.Unix())))
	return r
}

// ChatDroppedResponse is Send Chat Message's 200 with is_sent false and the reason.
func ChatDroppedResponse(code, message string) Response {
	b, _ := json.Marshal(map[string]any{"data": []map[string]any{{
		"message_id": "", "is_sent": false, "drop_reason": map[string]string{"code": code, "message": message},
	}}})
	return Response{Status: http.StatusOK, Header: jsonHeader(), Body: string(b)}
}

func jsonHeader() http.Header {
	h := http.Header{}
	h.Set("Content-Type", "application/json")
	return h
}

// nextScripted pops the next scripted response for the request's endpoint.
func (s *Server) nextScripted(r *http.Request) (Response, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	k := r.Method + " " + r.URL.Path
	q := s.scripts[k]
	if len(q) == 0 {
		return Response{}, false
	}
	s.scripts[k] = q[1:]
	return q[0], true
}

// scripted records the request and serves a scripted response if one is queued.
func (s *Server) scripted(h func(w http.ResponseWriter, r *http.Request, body []byte)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
		if err != nil {
			writeError(w, http.StatusBadRequest, "unreadable body")
			return
		}
		s.record(r, body)
		if resp, ok := s.nextScripted(r); ok {
			for k, v := range resp.Header {
				w.Header()[k] = v
			}
			w.WriteHeader(resp.Status)
			_, _ = io.WriteString(w, resp.Body)
			return
		}
		h(w, r, body)
	}
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

// AddConduit registers a conduit id so subscriptions can target it.
func (s *Server) AddConduit(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.conduits[id] = true
}

// Token is a credential the fake accepts.
type Token struct {
	AccessToken  string
	RefreshToken string
	// UserID is empty for an app access token.
	UserID string
	Scopes []string
	// ExpiresAt is when the access token stops working. Zero: now + TokenLifetime.
	ExpiresAt time.Time
}

type tokenInfo struct {
	Token
	clientID string
	revoked  bool
}

// AddToken registers a user (or app) access token and its refresh token.
func (s *Server) AddToken(t Token) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if t.ExpiresAt.IsZero() {
		t.ExpiresAt = s.o.Now().Add(s.o.TokenLifetime)
	}
	ti := &tokenInfo{Token: t, clientID: s.o.ClientID}
	s.tokens[t.AccessToken] = ti
	if t.RefreshToken != "" {
		s.refreshes[t.RefreshToken] = ti
	}
}

// ExpireToken makes an access token invalid (401 everywhere) while its refresh token
// keeps working: what happens when a token's lifetime ends.
func (s *Server) ExpireToken(accessToken string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if ti := s.tokens[accessToken]; ti != nil {
		ti.ExpiresAt = s.o.Now().Add(-time.Second)
	}
}

// RevokeToken makes the access token and its refresh token invalid: what happens
// when the user disconnects the app.
func (s *Server) RevokeToken(accessToken string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if ti := s.tokens[accessToken]; ti != nil {
		ti.revoked = true
		delete(s.refreshes, ti.RefreshToken)
	}
}

// RefreshCount is how many refresh_token grants succeeded.
func (s *Server) RefreshCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.refreshN
}

// LatestToken returns the newest valid user token issued for userID.
func (s *Server) LatestToken(userID string) (Token, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var best *tokenInfo
	for _, ti := range s.tokens {
		if ti.UserID == userID && !ti.revoked && (best == nil || ti.ExpiresAt.After(best.ExpiresAt)) {
			best = ti
		}
	}
	if best == nil {
		return Token{}, false
	}
	return best.Token, true
}

// tokenFor resolves a valid access token; nil when missing, unknown, expired or
// revoked. Callers hold s.mu.
func (s *Server) tokenFor(access string) *tokenInfo {
	ti := s.tokens[access]
	if ti == nil || ti.revoked || !s.o.Now().Before(ti.ExpiresAt) {
		return nil
	}
	return ti
}

func (ti *tokenInfo) hasScope(scope string) bool { return slices.Contains(ti.Scopes, scope) }

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

var errClosed = errors.New("twitchtest: server closed")
