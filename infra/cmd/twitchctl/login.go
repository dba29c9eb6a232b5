package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	"cloud.google.com/go/firestore"

	"github.com/bitbrat/twitch-edge/shared/store"
	"github.com/bitbrat/twitch-edge/shared/twitch"
)

func loginFlags(fs *flag.FlagSet, a *cmdArgs) {
	fs.StringVar(&a.clientID, "client-id", os.Getenv("TWITCH_CLIENT_ID"), "the Twitch app's client id (TWITCH_CLIENT_ID); TWITCH_CLIENT_SECRET is sent too when set")
	fs.StringVar(&a.authURL, "auth-url", envOr("TWITCH_AUTH_BASE_URL", twitch.DefaultAuthBaseURL), "Twitch's OAuth server (TWITCH_AUTH_BASE_URL)")
	fs.StringVar(&a.role, "role", string(twitch.RoleBot), "whose token: bot or broadcaster (the Firestore document oauth/twitch/<role>/token)")
	fs.StringVar(&a.scopes, "scopes", strings.Join(twitch.BotScopes(), " "), "scopes to ask for, space-separated (default: what the edge needs)")
}

// leaseHolder names twitchctl in the refresh lease it takes to write the token, so a
// component refreshing at that moment is not overwritten.
const leaseHolder = "twitchctl-login"

// login obtains a user token through Twitch's Device Code Grant flow, validates it
// and stores it where the components read it. The token is never printed.
func login(ctx context.Context, e *cmdEnv, a *cmdArgs) error {
	if strings.TrimSpace(a.clientID) == "" {
		return usageError{"login needs the Twitch app's client id: --client-id or TWITCH_CLIENT_ID (https://dev.twitch.tv/console/apps)"}
	}
	role := twitch.Role(a.role)
	if role != twitch.RoleBot && role != twitch.RoleBroadcaster {
		return usageError{fmt.Sprintf("--role %q: want bot or broadcaster", a.role)}
	}
	scopes := strings.Fields(a.scopes)
	if len(scopes) == 0 {
		return usageError{"--scopes is empty; the edge needs " + strings.Join(twitch.BotScopes(), " ")}
	}
	where, fs, err := openFirestore(ctx, e.g)
	if err != nil {
		return err
	}
	defer fs.Close()
	// Reach Firestore before the user approves anything, not after.
	call, cancel := context.WithTimeout(ctx, e.g.timeout)
	_, err = store.NewTokenStore(fs).LoadToken(call, role)
	cancel()
	if err != nil && !errors.Is(err, twitch.ErrTokenNotFound) {
		return fmt.Errorf("read oauth/twitch/%s/token on %s (is it running? --firestore): %w", role, where, err)
	}

	oa := twitch.NewOAuth(twitch.OAuthOptions{BaseURL: a.authURL, ClientID: a.clientID, ClientSecret: e.secret})
	call, cancel = context.WithTimeout(ctx, e.g.timeout)
	d, err := oa.StartDeviceAuthorization(call, scopes)
	cancel()
	if err != nil {
		return fmt.Errorf("start the device code flow at %s: %w", a.authURL, err)
	}
	life := time.Duration(d.ExpiresIn) * time.Second
	fmt.Fprintf(e.out, "To authorize, open %s\nand enter the code %s (as the %s account).\n", d.VerificationURI, d.UserCode, role)
	fmt.Fprintf(e.out, "waiting up to %s for your approval on Twitch (polling every %ds; Ctrl-C cancels)...\n", life, d.Interval)
	poll := e.hooks.poll
	poll.OnSlowDown = func(iv time.Duration) {
		fmt.Fprintf(e.out, "Twitch asked to poll more slowly; now every %s\n", iv)
	}
	tok, err := oa.PollDeviceToken(ctx, d, poll)
	if err != nil {
		return fmt.Errorf("login: %w", err)
	}
	now := time.Now()
	if poll.Now != nil {
		now = poll.Now()
	}
	call, cancel = context.WithTimeout(ctx, e.g.timeout)
	defer cancel()
	v, err := oa.ValidateToken(call, tok.AccessToken)
	if err != nil {
		return fmt.Errorf("validate the new token: %w", err)
	}
	if v.UserID == "" {
		return errors.New("validate the new token: Twitch says it is not a user token")
	}
	fmt.Fprintf(e.out, "authorized as %s (user id %s); the token is valid for %s\n", v.Login, v.UserID, time.Duration(v.ExpiresIn)*time.Second)
	fmt.Fprintf(e.out, "scopes granted: %s\n", strings.Join(v.Scopes, " "))
	missing := twitch.MissingScopes(twitch.BotScopes(), v.Scopes)
	if len(missing) == 0 {
		fmt.Fprintln(e.out, "scopes missing: none (the edge needs "+strings.Join(twitch.BotScopes(), ", ")+")")
	} else {
		fmt.Fprintf(e.out, "scopes missing: %s (the edge needs them: followers for channel.follow, whispers for EgressWhisper, chat for EgressChat; log in again with them)\n",
			strings.Join(missing, " "))
	}
	if id := os.Getenv("TWITCH_BOT_USER_ID"); role == twitch.RoleBot && id != "" && id != v.UserID {
		fmt.Fprintf(e.out, "warning: TWITCH_BOT_USER_ID is %s, but you authorized user %s (%s)\n", id, v.UserID, v.Login)
	}

	expires := tok.ExpiresIn
	if expires <= 0 {
		expires = v.ExpiresIn
	}
	st := twitch.Token{
		AccessToken: tok.AccessToken, RefreshToken: tok.RefreshToken, Scopes: v.Scopes,
		ExpiresIn: expires, ObtainedAt: now, UserID: v.UserID, UpdatedAt: now,
	}
	if err := saveToken(call, store.NewTokenStore(fs), role, st); err != nil {
		return err
	}
	fmt.Fprintf(e.out, "stored in oauth/twitch/%s/token (%s, project %s)\n", role, where, e.g.project)
	return nil
}

// saveToken writes tok through the refresh lease the components use, so that a
// refresh in flight and this write do not overwrite each other.
func saveToken(ctx context.Context, ts *store.TokenStore, role twitch.Role, tok twitch.Token) error {
	for {
		ok, err := ts.AcquireRefreshLease(ctx, role, leaseHolder, 30*time.Second)
		if err != nil {
			return fmt.Errorf("store the token: %w", err)
		}
		if ok {
			break
		}
		// A component is refreshing this token right now: its lease lasts seconds.
		select {
		case <-ctx.Done():
			return fmt.Errorf("store the token: a component held the oauth/twitch/%s refresh lease until the deadline: %w", role, ctx.Err())
		case <-time.After(500 * time.Millisecond):
		}
	}
	if err := ts.SaveRefreshedToken(ctx, role, leaseHolder, tok); err != nil {
		return fmt.Errorf("store the token: %w", err)
	}
	return nil
}

// openFirestore connects to the emulator named by --firestore, or with "cloud" to the
// project's Firestore with the default credentials.
func openFirestore(ctx context.Context, g *globals) (string, *firestore.Client, error) {
	var opts []store.ClientOption
	where := "Google Cloud Firestore"
	if g.firestore != "cloud" {
		opts = append(opts, store.WithEmulator(g.firestore))
		where = "Firestore emulator " + g.firestore
	}
	fs, err := store.NewClient(ctx, g.project, g.database, opts...)
	if err != nil {
		return "", nil, fmt.Errorf("connect to %s: %w", where, err)
	}
	return where, fs, nil
}
