package twitch

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/bitbrat/twitch-edge/shared/fault"
)

// Default base URLs; the fake Twitch (twitchtest) and the local stack override them.
const (
	DefaultAPIBaseURL  = "https://api.twitch.tv/helix"
	DefaultAuthBaseURL = "https://id.twitch.tv/oauth2"
)

// maxBody bounds how much of a response is read: Helix pages are a few tens of KB, so
// anything near this is a broken proxy, not data.
const maxBody = 4 << 20

// Options configure a Client. Zero values take the documented defaults.
type Options struct {
	// APIBaseURL is Helix's base URL. Default DefaultAPIBaseURL.
	APIBaseURL string
	// AuthBaseURL is the OAuth server's base URL (…/oauth2). Default DefaultAuthBaseURL.
	AuthBaseURL string
	// EventSubSubscriptionsURL is where EventSub subscriptions are created, listed and
	// deleted. Default APIBaseURL + "/eventsub/subscriptions".
	EventSubSubscriptionsURL string
	// ClientID is sent as Client-Id on every Helix request. Required for Helix.
	ClientID string
	// HTTPClient sends the requests. Default: a client with a 30 s timeout.
	HTTPClient *http.Client
	// Tokens supplies the user access token. Required for Helix calls (ValidateToken
	// does not need it).
	Tokens TokenSource
	// AppTokens supplies the app access token (an AppTokenProvider): conduits, and
	// conduit and webhook subscriptions, use it. Optional; without it those calls fail
	// with TWITCH_NO_TOKEN.
	AppTokens TokenSource
	// Logger receives one debug line per request and warnings for 401/429/5xx.
	// Default: discard.
	Logger *slog.Logger
	// Now is the clock. Default time.Now.
	Now func() time.Time
	// MaxRateLimitWait bounds how long a call waits for an empty Helix bucket to
	// refill before it gives up with a RateLimited error. Default 15 s: long enough
	// for Twitch's per-minute bucket to pass a burst, short enough for a Cloud Function.
	MaxRateLimitWait time.Duration
}

// Client calls Helix. It is safe for concurrent use; share one per process so that
// the users cache and the rate-limit view are shared too.
type Client struct {
	apiBase  string
	subsURL  string
	clientID string
	http     *http.Client
	tokens   TokenSource
	log      *slog.Logger
	now      func() time.Time
	maxWait  time.Duration
	oauth    *OAuth
	// sleep waits for d or until ctx ends; tests replace it to observe waits without
	// spending them.
	sleep func(ctx context.Context, d time.Duration) error

	rlMu        sync.Mutex
	rlKnown     bool
	rlLimit     int
	rlRemaining int
	rlReset     time.Time

	users userCache

	// app makes the calls that need the app access token. It has its own rate-limit
	// view: Twitch keeps a separate bucket per token.
	app *Client
}

// NewClient returns a Helix client.
func NewClient(o Options) *Client {
	if o.APIBaseURL == "" {
		o.APIBaseURL = DefaultAPIBaseURL
	}
	if o.AuthBaseURL == "" {
		o.AuthBaseURL = DefaultAuthBaseURL
	}
	o.APIBaseURL = strings.TrimRight(o.APIBaseURL, "/")
	if o.EventSubSubscriptionsURL == "" {
		o.EventSubSubscriptionsURL = o.APIBaseURL + "/eventsub/subscriptions"
	}
	if o.HTTPClient == nil {
		o.HTTPClient = &http.Client{Timeout: 30 * time.Second}
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.MaxRateLimitWait <= 0 {
		o.MaxRateLimitWait = 15 * time.Second
	}
	var app *Client
	if o.AppTokens != nil {
		ao := o
		ao.Tokens, ao.AppTokens = o.AppTokens, nil
		app = NewClient(ao)
	}
	return &Client{
		app:      app,
		apiBase:  o.APIBaseURL,
		subsURL:  o.EventSubSubscriptionsURL,
		clientID: o.ClientID,
		http:     o.HTTPClient,
		tokens:   o.Tokens,
		log:      o.Logger,
		now:      o.Now,
		maxWait:  o.MaxRateLimitWait,
		oauth: NewOAuth(OAuthOptions{
			BaseURL:    o.AuthBaseURL,
			ClientID:   o.ClientID,
			HTTPClient: o.HTTPClient,
			Logger:     o.Logger,
		}),
		sleep: sleepCtx,
		users: userCache{byLogin: map[string]User{}, byID: map[string]User{}},
	}
}

// ValidateToken checks token with the OAuth server's /validate endpoint. A revoked or
// expired token gives an Auth error with code TOKEN_INVALID.
func (c *Client) ValidateToken(ctx context.Context, token string) (*Validation, error) {
	return c.oauth.ValidateToken(ctx, token)
}

// RateLimit returns the Helix bucket as of the last response: its size, what is
// left, and when it is full again. All zero before the first response.
func (c *Client) RateLimit() (limit, remaining int, reset time.Time) {
	c.rlMu.Lock()
	defer c.rlMu.Unlock()
	return c.rlLimit, c.rlRemaining, c.rlReset
}

// observe records the Ratelimit-* headers of a response.
func (c *Client) observe(h http.Header) {
	lim, err1 := strconv.Atoi(h.Get("Ratelimit-Limit"))
	rem, err2 := strconv.Atoi(h.Get("Ratelimit-Remaining"))
	reset, ok := parseReset(h)
	if err1 != nil && err2 != nil && !ok {
		return
	}
	c.rlMu.Lock()
	defer c.rlMu.Unlock()
	c.rlKnown = true
	if err1 == nil {
		c.rlLimit = lim
	}
	if err2 == nil {
		c.rlRemaining = rem
	}
	if ok {
		c.rlReset = reset
	}
}

// awaitHeadroom waits for the bucket's reset when the last response said it is
// empty, instead of spending a request on a certain 429.
func (c *Client) awaitHeadroom(ctx context.Context, endpoint string) error {
	c.rlMu.Lock()
	known, rem, reset := c.rlKnown, c.rlRemaining, c.rlReset
	c.rlMu.Unlock()
	if !known || rem > 0 || reset.IsZero() {
		return nil
	}
	wait := reset.Sub(c.now())
	if wait <= 0 {
		return nil
	}
	if wait > c.maxWait {
		return classify(&APIError{
			Status:   http.StatusTooManyRequests,
			Endpoint: endpoint,
			Message:  "helix rate-limit bucket empty; not waiting " + wait.Round(time.Second).String(),
			Flavour:  FlavourBucket,
			RetryAt:  reset,
		})
	}
	c.log.Info("twitch rate limit: waiting for bucket reset", "endpoint", endpoint, "wait", wait.String())
	if err := c.sleep(ctx, wait); err != nil {
		return fault.Wrap(fault.Transient, CodeRateLimited, err, "twitch %s: waiting for rate-limit reset", endpoint)
	}
	// The bucket is full again at reset. Assume so until the next response says
	// otherwise, so that concurrent waiters (and a clock that did not move) do not
	// wait a second time.
	c.rlMu.Lock()
	if c.rlReset.Equal(reset) && c.rlRemaining <= 0 {
		c.rlRemaining = max(c.rlLimit, 1)
	}
	c.rlMu.Unlock()
	return nil
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// request is one Helix call.
type request struct {
	method string
	// path names the endpoint in errors and logs ("/chat/messages").
	path string
	// url is the full URL including the query.
	url  string
	body []byte
}

type response struct {
	status int
	header http.Header
	body   []byte
}

// do sends r with the current token and applies the retry rules Twitch documents:
// after a 401 it refreshes the token once and retries; a 503 is retried once; a
// bucket 429 is retried once after waiting for the reset (if the wait is bounded).
// Every error it returns carries a *fault.Error.
func (c *Client) do(ctx context.Context, r request) (*response, error) {
	endpoint := r.method + " " + r.path
	if c.tokens == nil {
		return nil, fault.New(fault.Auth, CodeNoToken, "twitch %s: no token source configured", endpoint)
	}
	tok, err := c.tokens.Token(ctx)
	if err != nil {
		return nil, err
	}
	var retried401, retried503, retried429 bool
	for {
		if err := c.awaitHeadroom(ctx, endpoint); err != nil {
			return nil, err
		}
		resp, err := c.send(ctx, r, tok)
		if err != nil {
			return nil, networkError(endpoint, err)
		}
		c.observe(resp.header)
		if resp.status >= 200 && resp.status < 300 {
			return resp, nil
		}
		fe := errorFromResponse(endpoint, resp.status, resp.header, resp.body, c.now())
		ae, _ := AsAPIError(fe)
		switch {
		case resp.status == http.StatusUnauthorized && !retried401:
			retried401 = true
			c.log.Warn("twitch answered 401; refreshing token", "endpoint", endpoint, "twitchMessage", ae.Message)
			fresh, rerr := c.tokens.Refresh(ctx, tok)
			if rerr != nil {
				// The refresh's kind wins: a refresh that failed transiently is worth
				// retrying later, a revoked token is not.
				return nil, fmt.Errorf("%w (refresh after: %w)", rerr, fe)
			}
			tok = fresh
			continue
		case resp.status == http.StatusServiceUnavailable && !retried503:
			retried503 = true
			c.log.Warn("twitch answered 503; retrying once", "endpoint", endpoint)
			continue
		case resp.status == http.StatusTooManyRequests && ae.Flavour == FlavourBucket && !retried429 &&
			!ae.RetryAt.IsZero() && ae.RetryAt.Sub(c.now()) <= c.maxWait:
			retried429 = true
			c.log.Warn("twitch answered 429; waiting for bucket reset", "endpoint", endpoint, "retryAt", ae.RetryAt)
			c.rlMu.Lock()
			c.rlKnown, c.rlRemaining, c.rlReset = true, 0, ae.RetryAt
			c.rlMu.Unlock()
			continue
		}
		c.log.Warn("twitch request failed", "endpoint", endpoint, "status", resp.status,
			"code", fe.Code, "twitchMessage", ae.Message, "flavour", string(ae.Flavour))
		return nil, fe
	}
}

func (c *Client) send(ctx context.Context, r request, tok string) (*response, error) {
	var body io.Reader
	if r.body != nil {
		body = bytes.NewReader(r.body)
	}
	req, err := http.NewRequestWithContext(ctx, r.method, r.url, body)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Client-Id", c.clientID)
	req.Header.Set("Authorization", "Bearer "+tok)
	req.Header.Set("Accept", "application/json")
	if r.body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	start := time.Now()
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	if err != nil {
		return nil, err
	}
	c.log.Debug("twitch request", "endpoint", r.method+" "+r.path, "status", resp.StatusCode,
		"ratelimitRemaining", resp.Header.Get("Ratelimit-Remaining"), "elapsed", time.Since(start).String())
	return &response{status: resp.StatusCode, header: resp.Header, body: b}, nil
}

// jsonUnmarshal decodes b, refusing empty input with a clear error (json.Unmarshal's
// "unexpected end of JSON input" does not say the body was empty).
func jsonUnmarshal(b []byte, v any) error {
	if len(bytes.TrimSpace(b)) == 0 {
		return errors.New("empty body")
	}
	return json.Unmarshal(b, v)
}

// decode parses a successful Helix response body into v.
func decode(endpoint string, resp *response, v any) error {
	if err := jsonUnmarshal(resp.body, v); err != nil {
		return malformed(endpoint, err)
	}
	return nil
}

// IsUserID reports whether s has the shape of a Twitch user id: a non-empty string of
// ASCII digits. Checking it before calling Twitch turns garbage into an Invalid error
// instead of a confusing 400.
func IsUserID(s string) bool {
	if s == "" || len(s) > 32 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}
