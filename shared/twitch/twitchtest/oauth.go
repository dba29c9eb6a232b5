package twitchtest

import (
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"
)

// token serves POST /oauth2/token: refresh_token and client_credentials grants.
func (s *Server) token(w http.ResponseWriter, r *http.Request, body []byte) {
	form, err := url.ParseQuery(string(body))
	if err != nil {
		writeOAuthError(w, http.StatusBadRequest, "invalid form body")
		return
	}
	// Twitch also accepts the parameters in the query string.
	for k, v := range r.URL.Query() {
		if form.Get(k) == "" {
			form[k] = v
		}
	}
	if form.Get("client_id") != s.o.ClientID {
		writeOAuthError(w, http.StatusBadRequest, "invalid client")
		return
	}
	if form.Get("grant_type") == DeviceGrantType { // public clients send no secret
		s.deviceToken(w, form)
		return
	}
	if form.Get("client_secret") != s.o.ClientSecret {
		writeOAuthError(w, http.StatusForbidden, "invalid client secret")
		return
	}
	switch form.Get("grant_type") {
	case "refresh_token":
		s.refreshGrant(w, form.Get("refresh_token"))
	case "client_credentials":
		s.mu.Lock()
		t := Token{AccessToken: "app-" + newID(), ExpiresAt: s.o.Now().Add(s.o.TokenLifetime)}
		s.tokens[t.AccessToken] = &tokenInfo{Token: t, clientID: s.o.ClientID}
		s.appIssued++
		s.mu.Unlock()
		writeJSON(w, http.StatusOK, map[string]any{
			"access_token": t.AccessToken, "expires_in": int(s.o.TokenLifetime.Seconds()), "token_type": "bearer",
		})
	default:
		writeOAuthError(w, http.StatusBadRequest, "unsupported grant type")
	}
}

func (s *Server) refreshGrant(w http.ResponseWriter, refresh string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	old := s.refreshes[refresh]
	if refresh == "" || old == nil || old.revoked {
		writeOAuthError(w, http.StatusBadRequest, "Invalid refresh token")
		return
	}
	nt := Token{
		AccessToken:  "access-" + newID(),
		RefreshToken: refresh,
		UserID:       old.UserID,
		Scopes:       append([]string(nil), old.Scopes...),
		ExpiresAt:    s.o.Now().Add(s.o.TokenLifetime),
	}
	if !s.o.KeepRefreshTokens {
		nt.RefreshToken = "refresh-" + newID()
		delete(s.refreshes, refresh)
	}
	ti := &tokenInfo{Token: nt, clientID: old.clientID}
	s.tokens[nt.AccessToken] = ti
	s.refreshes[nt.RefreshToken] = ti
	s.refreshN++
	writeJSON(w, http.StatusOK, map[string]any{
		"access_token":  nt.AccessToken,
		"refresh_token": nt.RefreshToken,
		"scope":         nt.Scopes,
		"expires_in":    int(s.o.TokenLifetime.Seconds()),
		"token_type":    "bearer",
	})
}

// AppTokenCount is how many app access tokens (client_credentials grants) were issued.
func (s *Server) AppTokenCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.appIssued
}

// validate serves GET /oauth2/validate.
func (s *Server) validate(w http.ResponseWriter, r *http.Request, _ []byte) {
	auth := r.Header.Get("Authorization")
	tok, ok := strings.CutPrefix(auth, "OAuth ")
	if !ok {
		tok, ok = strings.CutPrefix(auth, "Bearer ")
	}
	if !ok || tok == "" {
		writeOAuthError(w, http.StatusUnauthorized, "missing authorization token")
		return
	}
	s.mu.Lock()
	ti := s.tokenFor(tok)
	var out map[string]any
	if ti != nil {
		out = map[string]any{
			"client_id":  ti.clientID,
			"scopes":     append([]string{}, ti.Scopes...),
			"expires_in": int(ti.ExpiresAt.Sub(s.o.Now()).Seconds()),
		}
		if ti.UserID != "" {
			out["user_id"] = ti.UserID
			login := ""
			if u := s.users[ti.UserID]; u != nil {
				login = u.Login
			}
			out["login"] = login
		}
	}
	s.mu.Unlock()
	if ti == nil {
		writeOAuthError(w, http.StatusUnauthorized, "invalid access token")
		return
	}
	writeJSON(w, http.StatusOK, out)
}

// writeOAuthError is id.twitch.tv's error shape: {"status": N, "message": "..."}.
func writeOAuthError(w http.ResponseWriter, status int, message string) {
	writeJSON(w, status, map[string]any{"status": status, "message": message})
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
