// Package faketwitch runs the fake Twitch of shared/twitch/twitchtest as a standalone
// server for the local stack: seeded with a bot user, two channels the bot moderates
// and a few viewers, and driven through a small JSON control API on a second loopback
// port (what twitchctl talks to). It owns the seed data, the control API and its
// client; Twitch's protocol itself lives in twitchtest.
package faketwitch

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/bitbrat/twitch-edge/shared/twitch/twitchtest"
)

// The seeded bot. Its id and login are the ones the tests and the README use.
const (
	BotID    = "900"
	BotLogin = "bitbrat_bot"
)

// BotScopes are the scopes the bot's token carries: what CONTRACT.md says the edge
// needs.
var BotScopes = []string{"moderator:read:followers", "user:manage:whispers", "user:read:moderated_channels", "user:write:chat"}

// Channels are the seeded broadcasters; the bot moderates both.
var Channels = []twitchtest.User{
	{ID: "1001", Login: "bitbrat_demo", DisplayName: "BitBrat_Demo"},
	{ID: "1002", Login: "cooler_user", DisplayName: "Cooler_User"},
}

// Viewers are seeded users who follow, chat and get whispers.
var Viewers = []twitchtest.User{
	{ID: "2001", Login: "pixel_pioneer", DisplayName: "Pixel_Pioneer"},
	{ID: "2002", Login: "lurker_larry", DisplayName: "Lurker_Larry"},
	{ID: "2003", Login: "chat_champ", DisplayName: "Chat_Champ"},
}

// Options configure a Server. Zero values take the defaults in the comments.
type Options struct {
	// Addr is the fake Twitch's listen address (Helix, OAuth, EventSub WebSocket).
	// Default: a free loopback port.
	Addr string
	// ControlAddr is the control API's listen address. Default: a free loopback port.
	ControlAddr string
	// ReconnectGrace is how long an old socket stays open after session_reconnect.
	// Default: Twitch's 30 s.
	ReconnectGrace time.Duration
	// KeepaliveUnit is how long one "second" of keepalive lasts. Default 1 s.
	KeepaliveUnit time.Duration
}

// Server is a seeded fake Twitch and its control API.
type Server struct {
	// Twitch is the fake itself, for in-process callers (tests, the local stack's
	// event printer).
	Twitch *twitchtest.Server

	bot     twitchtest.Token
	control *http.Server
	ctlURL  string
	served  chan struct{}

	closeOnce sync.Once
	mu        sync.Mutex
	follower  int // round-robin over Viewers for triggers without a user
}

// Start starts the fake Twitch and its control API and seeds them. Close stops both.
func Start(o Options) (*Server, error) {
	addr := o.Addr
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	tw, err := twitchtest.New(twitchtest.Options{
		Addr: addr, ReconnectGrace: o.ReconnectGrace, KeepaliveUnit: o.KeepaliveUnit,
		// Both processes (connector, functions) refresh through one Firestore
		// lease, so strict rotation is safe and closest to Twitch.
	})
	if err != nil {
		return nil, fmt.Errorf("fake twitch on %s: %w", addr, err)
	}
	s := &Server{Twitch: tw, served: make(chan struct{})}
	s.seed()

	ctlAddr := o.ControlAddr
	if ctlAddr == "" {
		ctlAddr = "127.0.0.1:0"
	}
	l, err := net.Listen("tcp", ctlAddr)
	if err != nil {
		tw.Close()
		return nil, fmt.Errorf("fake twitch control API on %s: %w", ctlAddr, err)
	}
	s.ctlURL = "http://" + l.Addr().String()
	s.control = &http.Server{Handler: s.Handler(), ReadHeaderTimeout: 5 * time.Second}
	go func() {
		defer close(s.served)
		_ = s.control.Serve(l)
	}()
	return s, nil
}

func (s *Server) seed() {
	tw := s.Twitch
	tw.AddUser(twitchtest.User{ID: BotID, Login: BotLogin, DisplayName: "BitBrat_Bot"})
	for _, u := range append(append([]twitchtest.User(nil), Channels...), Viewers...) {
		tw.AddUser(u)
	}
	for _, c := range Channels {
		tw.AddModerator(c.ID, BotID)
	}
	// A fresh random token per start: nothing fixed that could be mistaken for a
	// credential, and a stale token document from another run never works by accident.
	s.bot = twitchtest.Token{
		AccessToken:  "fake-access-" + uuid.NewString(),
		RefreshToken: "fake-refresh-" + uuid.NewString(),
		UserID:       BotID,
		Scopes:       append([]string(nil), BotScopes...),
	}
	tw.AddToken(s.bot)
}

// URL is the fake Twitch's base URL (http://127.0.0.1:PORT).
func (s *Server) URL() string { return s.Twitch.URL() }

// ControlURL is the control API's base URL.
func (s *Server) ControlURL() string { return s.ctlURL }

// ChannelLogins are the seeded channels' logins, the value for TWITCH_CHANNELS.
func (s *Server) ChannelLogins() []string {
	out := make([]string, len(Channels))
	for i, c := range Channels {
		out[i] = c.Login
	}
	return out
}

// BotToken is the bot's newest valid token: the seeded one, or the one a refresh
// issued since. Never log it.
func (s *Server) BotToken() twitchtest.Token {
	if t, ok := s.Twitch.LatestToken(BotID); ok {
		return t
	}
	return s.bot
}

// Close stops the control API and the fake, closing every socket. It is safe to call
// more than once.
func (s *Server) Close() {
	s.closeOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		if err := s.control.Shutdown(ctx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
			_ = s.control.Close()
		}
		_ = s.control.Close()
		<-s.served
		s.Twitch.Close()
	})
}

// nextViewer picks the follower of a trigger that names none.
func (s *Server) nextViewer() twitchtest.User {
	s.mu.Lock()
	defer s.mu.Unlock()
	v := Viewers[s.follower%len(Viewers)]
	s.follower++
	return v
}
