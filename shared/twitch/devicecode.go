package twitch

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/bitbrat/twitch-edge/shared/fault"
)

// The Device Code Grant flow (dev.twitch.tv, "Getting OAuth Access Tokens"): a CLI
// obtains a user token without a redirect server. StartDeviceAuthorization asks for
// a user code, the user enters it on twitch.tv/activate, PollDeviceToken waits for
// the token.

// DeviceGrantType is the grant_type of the device-code poll.
const DeviceGrantType = "urn:ietf:params:oauth:grant-type:device_code"

// Failure codes of the device flow (Auth: a human must start again).
const (
	CodeDeviceExpired = "DEVICE_CODE_EXPIRED"
	CodeDeviceDenied  = "DEVICE_ACCESS_DENIED"
)

// BotScopes are the scopes the edge needs on the bot's token (CONTRACT.md):
// followers for channel.follow, whispers for EgressWhisper, chat for EgressChat.
func BotScopes() []string {
	// user:read:moderated_channels is not in CONTRACT.md's list: without it egress still
	// works, with the 20-per-30 s chat budget instead of a moderator's 100.
	return []string{"moderator:read:followers", "user:manage:whispers", "user:write:chat", "user:read:moderated_channels"}
}

// MissingScopes are the scopes of want that have lacks.
func MissingScopes(want, have []string) []string {
	var out []string
	for _, w := range want {
		found := false
		for _, h := range have {
			found = found || h == w
		}
		if !found {
			out = append(out, w)
		}
	}
	return out
}

// DeviceAuthorization is POST /device's answer. DeviceCode is a credential of the
// pending grant: never print it; show UserCode and VerificationURI to the user.
type DeviceAuthorization struct {
	DeviceCode      string `json:"device_code"`
	UserCode        string `json:"user_code"`
	VerificationURI string `json:"verification_uri"`
	ExpiresIn       int    `json:"expires_in"`
	Interval        int    `json:"interval"`
	// Scopes are the scopes asked for (the poll repeats them, as Twitch documents).
	Scopes []string `json:"-"`
}

// StartDeviceAuthorization calls POST /device for scopes.
func (a *OAuth) StartDeviceAuthorization(ctx context.Context, scopes []string) (*DeviceAuthorization, error) {
	const endpoint = "POST /device"
	form := url.Values{"client_id": {a.clientID}, "scopes": {strings.Join(scopes, " ")}}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, a.base+"/device", strings.NewReader(form.Encode()))
	if err != nil {
		return nil, invalidInput("device: %v", err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	status, h, body, err := a.roundTrip(req)
	if err != nil {
		return nil, networkError(endpoint, err)
	}
	if status != http.StatusOK {
		return nil, errorFromResponse(endpoint, status, h, body, time.Now())
	}
	var d DeviceAuthorization
	if err := jsonUnmarshal(body, &d); err != nil {
		return nil, malformed(endpoint, err)
	}
	if d.DeviceCode == "" || d.UserCode == "" || d.VerificationURI == "" {
		return nil, malformed(endpoint, errorf("no device_code, user_code or verification_uri"))
	}
	d.Scopes = append([]string(nil), scopes...)
	return &d, nil
}

// DevicePoll tunes PollDeviceToken. Zero values take the defaults in the comments.
type DevicePoll struct {
	// Sleep waits d or until ctx ends. Default: a timer.
	Sleep func(ctx context.Context, d time.Duration) error
	// Now is the clock for the device code's expiry. Default time.Now.
	Now func() time.Time
	// OnSlowDown is told the new interval after a slow_down.
	OnSlowDown func(interval time.Duration)
}

// PollDeviceToken polls POST /token until the user approves (the token), denies
// (DEVICE_ACCESS_DENIED) or the code expires (DEVICE_CODE_EXPIRED, also when
// expires_in passes locally without an answer). authorization_pending keeps
// polling at the interval; slow_down adds 5 s to it (RFC 8628 §3.5); a network
// error or a 5xx is retried at the interval until the code expires. ctx bounds it
// too.
func (a *OAuth) PollDeviceToken(ctx context.Context, d *DeviceAuthorization, o DevicePoll) (*TokenResponse, error) {
	const endpoint = "POST /token (device_code)"
	if o.Sleep == nil {
		o.Sleep = sleepCtx
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	interval := time.Duration(max(d.Interval, 1)) * time.Second
	life := time.Duration(d.ExpiresIn) * time.Second
	if life <= 0 {
		life = 30 * time.Minute // Twitch's documented lifetime
	}
	deadline := o.Now().Add(life)
	form := url.Values{
		"client_id": {a.clientID}, "device_code": {d.DeviceCode},
		"scopes": {strings.Join(d.Scopes, " ")}, "grant_type": {DeviceGrantType},
	}
	if a.secret != "" { // confidential clients authenticate; public ones cannot
		form.Set("client_secret", a.secret)
	}
	var last error
	for {
		if err := o.Sleep(ctx, interval); err != nil {
			return nil, fault.Wrap(fault.Transient, CodeTokenRefreshFailed, err, "waiting for the user to approve the device code")
		}
		if !o.Now().Before(deadline) {
			return nil, deviceExpired(last)
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, a.base+"/token", strings.NewReader(form.Encode()))
		if err != nil {
			return nil, invalidInput("token: %v", err)
		}
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		status, h, body, err := a.roundTrip(req)
		if err != nil {
			if ctx.Err() != nil {
				return nil, fault.Wrap(fault.Transient, CodeTokenRefreshFailed, ctx.Err(), "waiting for the user to approve the device code")
			}
			last = networkError(endpoint, err)
			a.log.Warn("twitch device-code poll failed; polling on", "error", err)
			continue
		}
		if status == http.StatusOK {
			var t TokenResponse
			if err := jsonUnmarshal(body, &t); err != nil || t.AccessToken == "" {
				return nil, malformed(endpoint, errorf("no access_token in the device-code answer"))
			}
			return &t, nil
		}
		fe := errorFromResponse(endpoint, status, h, body, time.Now())
		msg := ""
		if ae, ok := AsAPIError(fe); ok {
			msg = strings.ToLower(strings.TrimSpace(ae.Message))
		}
		switch {
		case msg == "authorization_pending":
		case msg == "slow_down":
			interval += 5 * time.Second
			if o.OnSlowDown != nil {
				o.OnSlowDown(interval)
			}
		case strings.Contains(msg, "invalid device code") || msg == "expired_token":
			return nil, deviceExpired(nil)
		case strings.Contains(msg, "denied"):
			return nil, fault.New(fault.Auth, CodeDeviceDenied, "the user declined the authorization on Twitch")
		case status >= 500 || status == http.StatusTooManyRequests:
			last = fe
			a.log.Warn("twitch device-code poll failed; polling on", "status", status, "twitchMessage", msg)
		default:
			fe.Kind, fe.Code = fault.Auth, CodeTokenRefreshRejected
			return nil, fe
		}
	}
}

func deviceExpired(last error) error {
	if last != nil {
		return fault.Wrap(fault.Auth, CodeDeviceExpired, last, "the device code expired before the user approved it (last poll failed); start again")
	}
	return fault.New(fault.Auth, CodeDeviceExpired, "the device code expired before the user approved it; start again")
}

// IsDeviceFailure reports whether err is a device-flow failure that a new login
// fixes (denied or expired).
func IsDeviceFailure(err error) bool {
	var fe *fault.Error
	return errors.As(err, &fe) && (fe.Code == CodeDeviceDenied || fe.Code == CodeDeviceExpired)
}
