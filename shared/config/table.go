package config

import "strings"

// Component is a process that reads settings, as the README's table names it.
type Component string

// The components. All is every process of the edge.
const (
	All            Component = "all"
	Connector      Component = "connector"
	Normalize      Component = "normalize"
	Egress         Component = "egress"
	Finalize       Component = "finalize"
	Webhook        Component = "webhook"
	Reconcile      Component = "reconcile"
	LocalFunctions Component = "local functions"
)

// Local is how the local stack (`make run`, the tests' stack, the load run) treats a
// setting.
type Local int

const (
	// Decided: the stack sets it for its components (project, emulators, Twitch
	// endpoints, ports); a value inherited from the developer's shell is dropped.
	Decided Local = iota
	// Tuned: a developer's value is passed through to the components, as the
	// deployment would set it.
	Tuned
)

// Setting is one environment variable a component reads.
type Setting struct {
	Name string
	// ReadBy are the components that read it.
	ReadBy []Component
	// Default is the value when unset, as the README's table says it (Markdown).
	Default string
	// Secret settings are held as Secret and never logged.
	Secret bool
	Local  Local
}

// UsedBy is the README's "Used by" cell.
func (s Setting) UsedBy() string {
	parts := make([]string, len(s.ReadBy))
	for i, c := range s.ReadBy {
		parts[i] = string(c)
	}
	return strings.Join(parts, ", ")
}

// Settings is every variable of the edge: the one list the README's configuration
// table (checked by a test), the local stack's environment and `make run`'s
// pass-through are built from. A new setting is one line here and one row there.
var Settings = []Setting{
	{Name: "GOOGLE_CLOUD_PROJECT", ReadBy: []Component{All}, Default: "`bitbrat-local` with emulators; required in the cloud"},
	{Name: "FIRESTORE_DATABASE", ReadBy: []Component{All}, Default: "`(default)`"},
	{Name: "BUS_PREFIX", ReadBy: []Component{All}, Default: "empty"},
	{Name: "LOG_LEVEL", ReadBy: []Component{All}, Default: "`info`", Local: Tuned},
	{Name: "TWITCH_CLIENT_ID", ReadBy: []Component{Connector, Egress, Reconcile}, Default: "required"},
	{Name: "TWITCH_CLIENT_SECRET", ReadBy: []Component{Connector, Egress, Reconcile}, Default: "empty (no refresh)", Secret: true},
	{Name: "TWITCH_BOT_USER_ID", ReadBy: []Component{Connector, Egress, Reconcile}, Default: "the bot token's user"},
	{Name: "TWITCH_BOT_ACCESS_TOKEN", ReadBy: []Component{Connector, Egress}, Default: "empty", Secret: true},
	{Name: "TWITCH_CHANNELS", ReadBy: []Component{Connector, Egress, Reconcile}, Default: "required (connector)"},
	{Name: "TWITCH_API_BASE_URL", ReadBy: []Component{Connector, Egress, Reconcile}, Default: "`https://api.twitch.tv/helix`"},
	{Name: "TWITCH_AUTH_BASE_URL", ReadBy: []Component{Connector, Egress, Reconcile}, Default: "`https://id.twitch.tv/oauth2`"},
	{Name: "TWITCH_EVENTSUB_WS_URL", ReadBy: []Component{Connector}, Default: "`wss://eventsub.wss.twitch.tv/ws`"},
	{Name: "TWITCH_EVENTSUB_SUBSCRIPTIONS_URL", ReadBy: []Component{Connector, Reconcile}, Default: "`<TWITCH_API_BASE_URL>/eventsub/subscriptions`"},
	{Name: "EVENTSUB_EXTRA_SUBSCRIPTIONS", ReadBy: []Component{Connector, Reconcile}, Default: "empty", Local: Tuned},
	{Name: "EVENTSUB_KEEPALIVE_GRACE", ReadBy: []Component{Connector}, Default: "`1s`", Local: Tuned},
	{Name: "CONNECTOR_INSTANCE_ID", ReadBy: []Component{Connector}, Default: "the hostname"},
	{Name: "CONNECTOR_LEASE_TTL", ReadBy: []Component{Connector}, Default: "`30s`", Local: Tuned},
	{Name: "CONNECTOR_BUFFER", ReadBy: []Component{Connector}, Default: "`10000`", Local: Tuned},
	{Name: "CONNECTOR_BUFFER_BYTES", ReadBy: []Component{Connector}, Default: "`67108864` (64 MiB)", Local: Tuned},
	{Name: "CONNECTOR_SHUTDOWN_GRACE", ReadBy: []Component{Connector}, Default: "`8s`", Local: Tuned},
	{Name: "EVENTSUB_TRANSPORT", ReadBy: []Component{Connector}, Default: "`websocket`", Local: Tuned},
	{Name: "CONDUIT_SHARDS", ReadBy: []Component{Connector}, Default: "`2`", Local: Tuned},
	{Name: "PORT", ReadBy: []Component{Connector, LocalFunctions}, Default: "`8080`"},
	{Name: "HOST", ReadBy: []Component{Connector, LocalFunctions}, Default: "connector: every interface (Cloud Run needs it); local functions: `127.0.0.1`"},
	{Name: "FUNCTION_TARGET", ReadBy: []Component{LocalFunctions}, Default: "empty (every function)"},
	{Name: "EVENTSUB_RAW_TOPIC", ReadBy: []Component{Connector, Normalize, Webhook}, Default: "`twitch.eventsub.raw.v1`"},
	{Name: "WHISPER_TOPIC", ReadBy: []Component{Egress}, Default: "`twitch.egress.whisper.v1`"},
	{Name: "EGRESS_DESTINATION", ReadBy: []Component{Normalize}, Default: "empty", Local: Tuned},
	{Name: "NORMALIZE_MAX_AGE", ReadBy: []Component{Normalize}, Default: "`24h`", Local: Tuned},
	{Name: "EGRESS_MAX_AGE", ReadBy: []Component{Egress}, Default: "`30m`", Local: Tuned},
	{Name: "EGRESS_CHANNELS", ReadBy: []Component{Egress}, Default: "`TWITCH_CHANNELS`", Local: Tuned},
	{Name: "EGRESS_WHISPER_SEEN_WITHIN", ReadBy: []Component{Normalize, Egress}, Default: "`0` (off)", Local: Tuned},
	{Name: "TWITCH_TOKEN_DATABASE", ReadBy: []Component{Egress, Webhook, Reconcile}, Default: "`FIRESTORE_DATABASE`"},
	{Name: "EVENT_TTL", ReadBy: []Component{Finalize}, Default: "`168h`", Local: Tuned},
	{Name: "TWITCH_EVENTSUB_WEBHOOK_SECRET", ReadBy: []Component{Connector, Webhook, Reconcile}, Default: "required (webhook)", Secret: true},
	{Name: "CONDUIT_WEBHOOK_SHARDS", ReadBy: []Component{Connector, Reconcile}, Default: "`0`", Local: Tuned},
	{Name: "EVENTSUB_WEBHOOK_CALLBACK_URL", ReadBy: []Component{Connector, Reconcile}, Default: "required with webhook shards"},
	{Name: "OTEL_EXPORTER_OTLP_ENDPOINT", ReadBy: []Component{All}, Default: "empty (no OTLP export)", Local: Tuned},
	{Name: "OTEL_TRACES_SAMPLER_ARG", ReadBy: []Component{All}, Default: "`0.1`", Local: Tuned},
	{Name: "OTEL_METRIC_EXPORT_INTERVAL", ReadBy: []Component{All}, Default: "`60000` (ms)", Local: Tuned},
	{Name: "PUBSUB_EMULATOR_HOST", ReadBy: []Component{All}, Default: "unset"},
	{Name: "FIRESTORE_EMULATOR_HOST", ReadBy: []Component{All}, Default: "unset"},
}

// SettingNamed is the setting called name.
func SettingNamed(name string) (Setting, bool) {
	for _, s := range Settings {
		if s.Name == name {
			return s, true
		}
	}
	return Setting{}, false
}

// TunedNames are the settings a developer's value is passed through for in a local
// run (Local == Tuned), in table order.
func TunedNames() []string {
	var out []string
	for _, s := range Settings {
		if s.Local == Tuned {
			out = append(out, s.Name)
		}
	}
	return out
}

// OwnedByStack reports whether the local stack decides variable kv ("NAME=value" or
// "NAME") for its components, so that an inherited value must be dropped: every
// setting in the table, and the families whose future members must not leak in from
// a developer's shell either.
func OwnedByStack(kv string) bool {
	name, _, _ := strings.Cut(kv, "=")
	if _, ok := SettingNamed(name); ok {
		return true
	}
	for _, family := range []string{"TWITCH_", "EVENTSUB_", "CONNECTOR_", "PUBSUB_", "FIRESTORE_"} {
		if strings.HasPrefix(name, family) {
			return true
		}
	}
	return false
}
