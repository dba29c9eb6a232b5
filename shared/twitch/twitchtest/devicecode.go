package twitchtest

import (
	"crypto/rand"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"
)

// Twitch's Device Code Grant flow (dev.twitch.tv, "Getting OAuth Access Tokens",
// device code grant flow): POST /oauth2/device starts it, the user approves the
// user code on twitch.tv/activate, the client polls POST /oauth2/token with
// grant_type urn:ietf:params:oauth:grant-type:device_code. Errors are id.twitch.tv's
// {"status": 400, "message": "..."} with the messages Twitch uses:
// authorization_pending, slow_down, invalid device code (expired, unknown or
// already redeemed); a denial is access_denied (RFC 8628, which the flow follows).
//
// The fake has no web page: tests (and the local stack's control API) approve or deny
// a pending user code with ApproveDevice and DenyDevice.

// DeviceGrantType is the grant_type of the device-code poll.
const DeviceGrantType = "urn:ietf:params:oauth:grant-type:device_code"

// Twitch's documented defaults: a device code lives 30 minutes, poll every 5 s.
const (
	deviceCodeLifetime = 30 * time.Minute
	devicePollInterval = 5 * time.Second
	// slowDownStep is what a slow_down adds to the interval (RFC 8628 §3.5).
	slowDownStep = 5 * time.Second
)

// ErrNoDeviceCode is returned by the device controls for a user code that is not
// pending (unknown, expired, already approved, denied or redeemed).
var ErrNoDeviceCode = errors.New("twitchtest: no pending device code with that user code")

type deviceState int

const (
	devicePending deviceState = iota
	deviceApproved
	deviceDenied
)

type deviceGrant struct {
	deviceCode, userCode string
	scopes               []string
	expiresAt            time.Time
	interval             time.Duration
	lastPoll             time.Time
	state                deviceState
	userID               string
	granted              []string
}

// deviceCodes is the Server's device-flow state, guarded by Server.mu; the maps are
// made on first use so the Server's constructor needs no change.
type deviceCodes struct {
	byDevice map[string]*deviceGrant
	byUser   map[string]*deviceGrant
	polls    int
}

// DeviceCode is a device authorization as the controls see it.
type DeviceCode struct {
	UserCode  string
	Scopes    []string
	ExpiresAt time.Time
	// Interval is the poll interval the client must keep now (slow_down raises it).
	Interval time.Duration
}

// deviceAuthorize serves POST /oauth2/device.
func (s *Server) deviceAuthorize(w http.ResponseWriter, r *http.Request, body []byte) {
	form, ok := oauthForm(w, r, body)
	if !ok {
		return
	}
	if form.Get("client_id") != s.o.ClientID {
		writeOAuthError(w, http.StatusBadRequest, "invalid client")
		return
	}
	scopes := strings.Fields(form.Get("scopes"))
	s.mu.Lock()
	d := &s.device
	if d.byDevice == nil {
		d.byDevice, d.byUser = map[string]*deviceGrant{}, map[string]*deviceGrant{}
	}
	g := &deviceGrant{
		deviceCode: newID() + newID(), userCode: userCode(), scopes: scopes,
		expiresAt: s.o.Now().Add(deviceCodeLifetime), interval: devicePollInterval,
	}
	for d.byUser[g.userCode] != nil {
		g.userCode = userCode()
	}
	d.byDevice[g.deviceCode], d.byUser[g.userCode] = g, g
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, map[string]any{
		"device_code":      g.deviceCode,
		"expires_in":       int(deviceCodeLifetime / time.Second),
		"interval":         int(devicePollInterval / time.Second),
		"user_code":        g.userCode,
		"verification_uri": s.srv.URL + "/activate?public=true&device-code=" + g.userCode,
	})
}

// deviceToken answers a device-code poll of POST /oauth2/token. Public clients send
// no secret; a confidential one that sends a wrong one is refused.
func (s *Server) deviceToken(w http.ResponseWriter, form url.Values) {
	if sec := form.Get("client_secret"); sec != "" && sec != s.o.ClientSecret {
		writeOAuthError(w, http.StatusForbidden, "invalid client secret")
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.device.polls++
	now := s.o.Now()
	g := s.device.byDevice[form.Get("device_code")]
	if g == nil || !now.Before(g.expiresAt) {
		if g != nil {
			s.dropDevice(g)
		}
		writeOAuthError(w, http.StatusBadRequest, "invalid device code")
		return
	}
	early := !g.lastPoll.IsZero() && now.Sub(g.lastPoll) < g.interval
	g.lastPoll = now
	switch {
	case g.state == deviceDenied:
		s.dropDevice(g)
		writeOAuthError(w, http.StatusBadRequest, "access_denied")
	case early:
		g.interval += slowDownStep
		writeOAuthError(w, http.StatusBadRequest, "slow_down")
	case g.state == devicePending:
		writeOAuthError(w, http.StatusBadRequest, "authorization_pending")
	default: // approved: one token, then the code is spent
		s.dropDevice(g)
		t := Token{
			AccessToken: "access-" + newID(), RefreshToken: "refresh-" + newID(),
			UserID: g.userID, Scopes: append([]string{}, g.granted...), ExpiresAt: now.Add(s.o.TokenLifetime),
		}
		ti := &tokenInfo{Token: t, clientID: s.o.ClientID}
		s.tokens[t.AccessToken], s.refreshes[t.RefreshToken] = ti, ti
		writeJSON(w, http.StatusOK, map[string]any{
			"access_token": t.AccessToken, "refresh_token": t.RefreshToken, "scope": t.Scopes,
			"expires_in": int(s.o.TokenLifetime.Seconds()), "token_type": "bearer",
		})
	}
}

// dropDevice forgets a grant. Callers hold s.mu.
func (s *Server) dropDevice(g *deviceGrant) {
	delete(s.device.byDevice, g.deviceCode)
	delete(s.device.byUser, g.userCode)
}

// pendingDevice is the pending grant of userCode, or nil. Callers hold s.mu.
func (s *Server) pendingDevice(userCode string) *deviceGrant {
	g := s.device.byUser[strings.ToUpper(strings.TrimSpace(userCode))]
	if g == nil || g.state != devicePending || !s.o.Now().Before(g.expiresAt) {
		return nil
	}
	return g
}

// ApproveDevice approves a pending user code as userID would on twitch.tv/activate.
// The token carries the requested scopes, or only granted when given (a token with
// fewer scopes than asked for, as an app whose scopes changed would see).
func (s *Server) ApproveDevice(userCode, userID string, granted ...string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	g := s.pendingDevice(userCode)
	if g == nil {
		return ErrNoDeviceCode
	}
	g.state, g.userID = deviceApproved, userID
	g.granted = slices.Clone(g.scopes)
	if granted != nil {
		g.granted = slices.Clone(granted)
	}
	return nil
}

// DenyDevice declines a pending user code: the next poll gets access_denied.
func (s *Server) DenyDevice(userCode string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	g := s.pendingDevice(userCode)
	if g == nil {
		return ErrNoDeviceCode
	}
	g.state = deviceDenied
	return nil
}

// ExpireDevice ends a pending user code's lifetime now: the next poll gets
// "invalid device code", as after Twitch's 30 minutes.
func (s *Server) ExpireDevice(userCode string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	g := s.pendingDevice(userCode)
	if g == nil {
		return ErrNoDeviceCode
	}
	g.expiresAt = s.o.Now()
	return nil
}

// PendingDevices are the device codes awaiting approval, for a control API that
// approves "the one pending code".
func (s *Server) PendingDevices() []DeviceCode {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []DeviceCode
	for _, g := range s.device.byUser {
		if g.state == devicePending && s.o.Now().Before(g.expiresAt) {
			out = append(out, DeviceCode{UserCode: g.userCode, Scopes: slices.Clone(g.scopes), ExpiresAt: g.expiresAt, Interval: g.interval})
		}
	}
	slices.SortFunc(out, func(a, b DeviceCode) int { return a.ExpiresAt.Compare(b.ExpiresAt) })
	return out
}

// DevicePolls is how many device-code polls reached the token endpoint.
func (s *Server) DevicePolls() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.device.polls
}

// oauthForm parses an OAuth form body, with Twitch's tolerance for parameters in the
// query string; it answers 400 itself when the body is not a form.
func oauthForm(w http.ResponseWriter, r *http.Request, body []byte) (url.Values, bool) {
	form, err := url.ParseQuery(string(body))
	if err != nil {
		writeOAuthError(w, http.StatusBadRequest, "invalid form body")
		return nil, false
	}
	for k, v := range r.URL.Query() {
		if form.Get(k) == "" {
			form[k] = v
		}
	}
	return form, true
}

// userCode is eight letters, as Twitch's user codes are (no digits to misread).
func userCode() string {
	const letters = "ABCDEFGHJKLMNPQRSTUVWXYZ"
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	for i := range b {
		b[i] = letters[int(b[i])%len(letters)]
	}
	return string(b)
}
