package main

import (
	"errors"
	"fmt"
	"os"
	"regexp"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/bitbrat/twitch-edge/connector/eventsub"
	"github.com/bitbrat/twitch-edge/shared/config"
	"github.com/bitbrat/twitch-edge/shared/telemetry"
)

// Config is the connector's configuration, read once from the environment.
type Config struct {
	Common config.Common
	Twitch config.Twitch
	Topics config.Topics
	// InstanceID names this instance in the lease: CONNECTOR_INSTANCE_ID (default the
	// hostname) plus a random suffix.
	InstanceID string
	// Extra are further subscription types (EVENTSUB_EXTRA_SUBSCRIPTIONS,
	// "type:version" items).
	Extra []eventsub.TypeVersion
	// Addr is where /healthz, /readyz and /metrics are served ("$HOST:$PORT"; HOST
	// default empty, every interface, as Cloud Run needs; PORT default 8080).
	Addr string
	// Buffer is the relay's capacity in notifications (CONNECTOR_BUFFER, 10,000).
	Buffer int
	// BufferBytes bounds the notifications held in memory for publishing; past it
	// they are spilled to Firestore (CONNECTOR_BUFFER_BYTES, 64 MiB).
	BufferBytes int64
	// LeaseTTL bounds how long a dead instance keeps others from taking over
	// (CONNECTOR_LEASE_TTL, 30 s).
	LeaseTTL time.Duration
	// ShutdownGrace is how long SIGTERM may take (CONNECTOR_SHUTDOWN_GRACE, 8 s: Cloud
	// Run allows 10).
	ShutdownGrace time.Duration
	// KeepaliveGrace is added to Twitch's keepalive timeout before the socket is
	// declared dead (EVENTSUB_KEEPALIVE_GRACE, 1 s).
	KeepaliveGrace time.Duration
	// RevokedRetry is how often subscriptions revoked for good are tried again (30 min;
	// also whenever the bot's token document changes, checked every TokenCheck, 1 min).
	RevokedRetry, TokenCheck time.Duration
	// ShardCheck is how often a conduit shard's holder reads the shard back from
	// Twitch and re-associates it if disabled (10 s; conduit.shard.disabled makes the
	// holder look at once).
	ShardCheck time.Duration
	// ReconcileEvery is the conduit reconciler's round interval (30 s: a channel added
	// to or removed from the Firestore channels collection takes effect within it).
	ReconcileEvery time.Duration
	// PubSubEmulator and FirestoreEmulator are the emulators' hosts
	// (PUBSUB_EMULATOR_HOST, FIRESTORE_EMULATOR_HOST; unset in a deployment).
	PubSubEmulator, FirestoreEmulator string
	// Transport is how the connector receives EventSub (EVENTSUB_TRANSPORT):
	// TransportWebSocket (one session, held by one instance) or TransportConduit
	// (a conduit whose shards every instance shares; connector/conduit).
	Transport string
	// ConduitShards is the number of WebSocket shards (CONDUIT_SHARDS, 1..20000,
	// default 2): at most the number of instances that always run (the layout rule).
	ConduitShards int
	// ConduitWebhookShards is the number of webhook shards after the WebSocket ones
	// (CONDUIT_WEBHOOK_SHARDS, default 0), kept by conduit.KeepWebhookShards.
	ConduitWebhookShards int
	// WebhookCallback is where webhook shards point (EVENTSUB_WEBHOOK_CALLBACK_URL);
	// their secret is TWITCH_EVENTSUB_WEBHOOK_SECRET.
	WebhookCallback string
	WebhookSecret   config.Secret
	// Telemetry says where metrics and traces go (OTEL_*); /metrics is always served.
	Telemetry telemetry.Config
}

// The EVENTSUB_TRANSPORT values.
const (
	TransportWebSocket = "websocket"
	TransportConduit   = "conduit"
)

// ReadConfig reads the connector's configuration.
func ReadConfig(get config.Lookup) (Config, error) {
	r := config.NewReader(get)
	c := Config{
		Common: config.ReadCommon(r),
		Twitch: config.ReadTwitch(r),
	}
	c.Topics = config.ReadTopics(r, c.Common.BusPrefix)
	// Container hostnames and pids repeat (two revisions during a deploy may share
	// both), and the lease treats one id as one holder: a random part keeps ids apart.
	host, _ := os.Hostname()
	c.InstanceID = r.String("CONNECTOR_INSTANCE_ID", host) + "-" + uuid.NewString()[:8]
	extra, err := eventsub.ParseTypeVersions(r.List("EVENTSUB_EXTRA_SUBSCRIPTIONS"))
	if err != nil {
		r.Invalid("EVENTSUB_EXTRA_SUBSCRIPTIONS", err)
	}
	c.Extra = extra
	// Cloud Run needs every interface (HOST empty); local runs bind loopback.
	c.Addr = r.String("HOST", "") + ":" + fmt.Sprint(r.Int("PORT", 8080, 1, 65535))
	c.Buffer = r.Int("CONNECTOR_BUFFER", 10_000, 10, 10_000_000)
	c.BufferBytes = int64(r.Int("CONNECTOR_BUFFER_BYTES", 64<<20, 64<<10, 1<<34))
	c.LeaseTTL = r.Duration("CONNECTOR_LEASE_TTL", 30*time.Second)
	c.ShutdownGrace = r.Duration("CONNECTOR_SHUTDOWN_GRACE", 8*time.Second)
	c.KeepaliveGrace = r.Duration("EVENTSUB_KEEPALIVE_GRACE", time.Second)
	c.RevokedRetry, c.TokenCheck, c.ShardCheck, c.ReconcileEvery = 30*time.Minute, time.Minute, 10*time.Second, 30*time.Second
	c.PubSubEmulator = r.String("PUBSUB_EMULATOR_HOST", "")
	c.FirestoreEmulator = r.String("FIRESTORE_EMULATOR_HOST", "")
	c.Transport = r.String("EVENTSUB_TRANSPORT", TransportWebSocket)
	switch c.Transport {
	case TransportWebSocket, TransportConduit:
	default:
		r.Invalid("EVENTSUB_TRANSPORT", fmt.Errorf("%q is neither %q nor %q", c.Transport, TransportWebSocket, TransportConduit))
	}
	c.ConduitShards = r.Int("CONDUIT_SHARDS", 2, 1, 20_000)
	c.ConduitWebhookShards = r.Int("CONDUIT_WEBHOOK_SHARDS", 0, 0, 20_000)
	c.WebhookCallback = r.URL("EVENTSUB_WEBHOOK_CALLBACK_URL", "", "https", "http")
	if c.ConduitWebhookShards > 0 {
		c.WebhookSecret = r.Secret("TWITCH_EVENTSUB_WEBHOOK_SECRET")
		if c.WebhookCallback == "" || !c.WebhookSecret.Set() {
			r.Invalid("CONDUIT_WEBHOOK_SHARDS", errors.New("webhook shards need EVENTSUB_WEBHOOK_CALLBACK_URL and TWITCH_EVENTSUB_WEBHOOK_SECRET"))
		}
	}
	if c.Transport == TransportConduit && !c.Twitch.ClientSecret.Set() {
		r.Invalid("TWITCH_CLIENT_SECRET", errors.New("conduit mode needs the app's client secret (the app access token)"))
	}
	if err := checkChannels(c.Twitch.Channels); err != nil {
		r.Invalid("TWITCH_CHANNELS", err)
	}
	c.Telemetry = telemetry.ReadConfig(r, c.Common.Project, "connector", c.InstanceID)
	c.Telemetry.Prometheus = true
	return c, r.Err()
}

// loginSyntax is what Twitch allows in a login: lower-case letters, digits and
// underscores, at most 25 (a few old accounts are shorter than today's minimum of 4).
var loginSyntax = regexp.MustCompile(`^[a-z0-9_]{1,25}$`)

// checkChannels validates TWITCH_CHANNELS at start, before Helix is asked: at least
// one channel, each a login (optionally with '#') or a numeric user id, none twice.
func checkChannels(channels []string) error {
	if len(channels) == 0 {
		return errors.New("no channel given: list logins or user ids, comma-separated (e.g. bitbrat_demo,cooler_user)")
	}
	seen := make(map[string]bool, len(channels))
	for _, ch := range channels {
		name := strings.ToLower(strings.TrimPrefix(ch, "#"))
		if !loginSyntax.MatchString(name) {
			return fmt.Errorf("%q is not a Twitch login (letters, digits and _, at most 25) nor a user id", ch)
		}
		if seen[name] {
			return fmt.Errorf("%q is listed twice", ch)
		}
		seen[name] = true
	}
	return nil
}
