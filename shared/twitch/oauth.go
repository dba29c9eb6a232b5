package twitch

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/bitbrat/twitch-edge/shared/fault"
)

// OAuthOptions configure an OAuth client.
type OAuthOptions struct {
	// BaseURL is the OAuth server (…/oauth2). Default DefaultAuthBaseURL.
	BaseURL string
	// ClientID and ClientSecret identify the app; the secret is needed only for
	// refreshing and for app tokens (it comes from the environment, Secret Manager in
	// deployment).
	ClientID     string
	ClientSecret string
	// HTTPClient sends the requests. Default: a client with a 30 s timeout.
	HTTPClient *http.Client
	// Logger receives warnings. Default: discard.
	Logger *slog.Logger
}

// OAuth talks to id.twitch.tv: validate, refresh, app tokens. Safe for concurrent use.
type OAuth struct {
	base     string
	clientID string
	secret   string
	http     *http.Client
	log      *slog.Logger
}

// NewOAuth returns an OAuth client.
func NewOAuth(o OAuthOptions) *OAuth {
	if o.BaseURL == "" {
		o.BaseURL = DefaultAuthBaseURL
	}
	if o.HTTPClient == nil {
		o.HTTPClient = &http.Client{Timeout: 30 * time.Second}
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return &OAuth{base: strings.TrimRight(o.BaseURL, "/"), clientID: o.ClientID, secret: o.ClientSecret, http: o.HTTPClient, log: o.Logger}
}

// Validation is what /validate says about a token. UserID and Login are empty for an
// app token.
type Validation struct {
	ClientID  string   `json:"client_id"`
	Login     string   `json:"login"`
	Scopes    []string `json:"scopes"`
	UserID    string   `json:"user_id"`
	ExpiresIn int      `json:"expires_in"`
}

// HasScope reports whether the token was granted scope.
func (v *Validation) HasScope(scope string) bool {
	for _, s := range v.Scopes {
		if s == scope {
			return true
		}
	}
	return false
}

// TokenValidator validates an access token; *OAuth and *Client implement it.
type TokenValidator interface {
	ValidateToken(ctx context.Context, token string) (*Validation, error)
}

// ValidateToken calls GET /validate. A 401 means the token is gone (expired or
// revoked): an Auth error with code TOKEN_INVALID.
func (a *OAuth) ValidateToken(ctx context.Context, token string) (*Validation, error) {
	const endpoint = "GET /validate"
	if token == "" {
		return nil, fault.New(fault.Auth, CodeNoToken, "validate: no token")
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, a.base+"/validate", nil)
	if err != nil {
		return nil, invalidInput("validate: %v", err)
	}
	// Twitch documents the "OAuth" scheme for this endpoint.
	req.Header.Set("Authorization", "OAuth "+token)
	status, h, body, err := a.roundTrip(req)
	if err != nil {
		return nil, networkError(endpoint, err)
	}
	if status != http.StatusOK {
		fe := errorFromResponse(endpoint, status, h, body, time.Now())
		if status == http.StatusUnauthorized {
			fe.Code = CodeTokenInvalid
			fe.Message = "token expired or revoked"
		}
		return nil, fe
	}
	var v Validation
	if err := jsonUnmarshal(body, &v); err != nil {
		return nil, malformed(endpoint, err)
	}
	if v.ClientID == "" {
		return nil, malformed(endpoint, errorf("no client_id in validation"))
	}
	return &v, nil
}

// TokenResponse is what the token endpoint returns. RefreshToken is empty for app
// tokens.
type TokenResponse struct {
	AccessToken  string   `json:"access_token"`
	RefreshToken string   `json:"refresh_token"`
	Scope        []string `json:"scope"`
	ExpiresIn    int      `json:"expires_in"`
	TokenType    string   `json:"token_type"`
}

// RefreshToken exchanges a refresh token for a new access token (and possibly a new
// refresh token, which the caller must store). Failures say why:
//   - TOKEN_REVOKED (Auth): Twitch said "Invalid refresh token" — the user revoked
//     the app, changed their password, or the token was already rotated elsewhere;
//     a human must re-authorize.
//   - TOKEN_REFRESH_REJECTED (Auth): any other 4xx, e.g. a wrong client secret.
//   - TOKEN_REFRESH_FAILED (Transient): 5xx, 429 or a network error; try again.
func (a *OAuth) RefreshToken(ctx context.Context, refreshToken string) (*TokenResponse, error) {
	if refreshToken == "" {
		return nil, fault.New(fault.Auth, CodeTokenNotRefreshable, "refresh: no refresh token")
	}
	form := url.Values{
		"grant_type":    {"refresh_token"},
		"refresh_token": {refreshToken},
		"client_id":     {a.clientID},
		"client_secret": {a.secret},
	}
	return a.token(ctx, form)
}

// AppToken gets an app access token (client credentials grant). App tokens cannot be
// refreshed; get a new one when it expires.
func (a *OAuth) AppToken(ctx context.Context) (*TokenResponse, error) {
	form := url.Values{
		"grant_type":    {"client_credentials"},
		"client_id":     {a.clientID},
		"client_secret": {a.secret},
	}
	return a.token(ctx, form)
}

func (a *OAuth) token(ctx context.Context, form url.Values) (*TokenResponse, error) {
	endpoint := "POST /token (" + form.Get("grant_type") + ")"
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, a.base+"/token", strings.NewReader(form.Encode()))
	if err != nil {
		return nil, invalidInput("token: %v", err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	status, h, body, err := a.roundTrip(req)
	if err != nil {
		return nil, fault.Wrap(fault.Transient, CodeTokenRefreshFailed, err, "twitch %s", endpoint)
	}
	if status != http.StatusOK {
		fe := errorFromResponse(endpoint, status, h, body, time.Now())
		ae, _ := AsAPIError(fe)
		switch {
		case status >= 500 || status == http.StatusTooManyRequests || status == http.StatusRequestTimeout:
			fe.Kind, fe.Code = fault.Transient, CodeTokenRefreshFailed
		case strings.Contains(strings.ToLower(ae.Message), "invalid refresh token"):
			fe.Kind, fe.Code, fe.Message = fault.Auth, CodeTokenRevoked, "refresh token revoked or invalid; re-authorize the account"
		default:
			fe.Kind, fe.Code = fault.Auth, CodeTokenRefreshRejected
		}
		a.log.Warn("twitch token request failed", "grantType", form.Get("grant_type"), "status", status,
			"code", fe.Code, "twitchMessage", ae.Message)
		return nil, fe
	}
	var t TokenResponse
	if err := jsonUnmarshal(body, &t); err != nil {
		return nil, fault.Wrap(fault.Transient, CodeTokenRefreshFailed, malformed(endpoint, err), "twitch %s", endpoint)
	}
	if t.AccessToken == "" {
		return nil, fault.Wrap(fault.Transient, CodeTokenRefreshFailed, malformed(endpoint, errorf("no access_token")), "twitch %s", endpoint)
	}
	return &t, nil
}

func (a *OAuth) roundTrip(req *http.Request) (int, http.Header, []byte, error) {
	resp, err := a.http.Do(req)
	if err != nil {
		return 0, nil, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	if err != nil {
		return 0, nil, nil, err
	}
	return resp.StatusCode, resp.Header, b, nil
}
