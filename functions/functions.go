// Package functions is the Cloud Functions entry point: it registers every function
// of this edge with the functions framework in init, and builds their clients lazily,
// once per instance, on first use (every instance runs every init, so init does no
// I/O and cannot fail).
//
// Each entry point is a thin trigger.Wrap around a service from its own package:
// Normalize (functions/normalize), EgressChat and EgressWhisper (functions/egress)
// and Finalize (functions/finalize), and EventSubReconcile (functions/reconcile).
// EventSubWebhook (functions/webhook) is the one HTTP function.
package functions

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"time"

	"cloud.google.com/go/firestore"
	"github.com/GoogleCloudPlatform/functions-framework-go/functions"
	cloudevent "github.com/cloudevents/sdk-go/v2/event"
	"github.com/google/uuid"

	"github.com/bitbrat/twitch-edge/functions/egress"
	"github.com/bitbrat/twitch-edge/functions/finalize"
	"github.com/bitbrat/twitch-edge/functions/normalize"
	"github.com/bitbrat/twitch-edge/functions/trigger"
	"github.com/bitbrat/twitch-edge/shared/bus"
	"github.com/bitbrat/twitch-edge/shared/config"
	"github.com/bitbrat/twitch-edge/shared/event"
	"github.com/bitbrat/twitch-edge/shared/fault"
	"github.com/bitbrat/twitch-edge/shared/logging"
	"github.com/bitbrat/twitch-edge/shared/store"
	"github.com/bitbrat/twitch-edge/shared/telemetry"
	"github.com/bitbrat/twitch-edge/shared/twitchclient"
)

// Entry point names, as deployed (Terraform's entry_point) and served locally.
const (
	NameNormalize     = "Normalize"
	NameEgressChat    = "EgressChat"
	NameEgressWhisper = "EgressWhisper"
	NameFinalize      = "Finalize"
)

// CloudEventFunc is the shape of every entry point.
type CloudEventFunc = func(context.Context, cloudevent.Event) error

// Handlers returns every entry point by name. The local server uses it to also serve
// each function under /<Name>/projects/P/topics/T, which keeps the topic that a
// Pub/Sub push carries in its URL.
func Handlers() map[string]CloudEventFunc { return handlers() }

var handlers = sync.OnceValue(func() map[string]CloudEventFunc {
	return map[string]CloudEventFunc{
		NameNormalize:     lazy(NameNormalize, event.TypeEventSubRawNotification, buildNormalize),
		NameEgressChat:    lazy(NameEgressChat, originalEgress, buildEgressChat),
		NameEgressWhisper: lazy(NameEgressWhisper, originalEgress, buildEgressWhisper),
		NameFinalize:      lazy(NameFinalize, event.TypeEgressDeliver, buildFinalize),
		// Serverless mode's conduit upkeep; without its configuration every tick fails
		// (logged) and nothing else is affected.
		NameEventSubReconcile: lazy(NameEventSubReconcile, reconcileTick, buildReconcile),
	}
})

func init() {
	for name, fn := range Handlers() {
		functions.CloudEvent(name, fn)
	}
	functions.HTTP(NameEventSubWebhook, eventSubWebhook)
}

// env is what every function shares within one instance.
type env struct {
	common config.Common
	topics config.Topics
	fns    Settings
	log    *slog.Logger
	pub    *bus.Publisher
	fs     *firestore.Client
	owner  string
	tel    *telemetry.Telemetry
	ins    *telemetry.Instruments

	twitchMu sync.Mutex
	twitch   *twitchclient.Twitch

	tokenMu sync.Mutex
	tokenFS *firestore.Client // TWITCH_TOKEN_DATABASE's client, when apart
}

// originalEgress names egress events in dead letters.
const originalEgress = "internal.egress.v1"

var (
	envMu     sync.Mutex
	envVal    *env
	envConfig error // a configuration error, remembered: it does not fix itself
)

// sharedEnv reads the configuration and connects the clients, once. A configuration
// error is remembered and returned to every call: each message is then retried by
// Pub/Sub and, after the subscription's maximum attempts, dead-lettered — not lost
// while someone fixes the deployment. A client that could not be built is tried again
// on the next message.
func sharedEnv(ctx context.Context) (*env, error) {
	envMu.Lock()
	defer envMu.Unlock()
	if envVal != nil || envConfig != nil {
		return envVal, envConfig
	}
	e, err := newEnv(ctx)
	var cfgErr *configError
	if errors.As(err, &cfgErr) {
		envConfig = err
	}
	if err != nil {
		return nil, err
	}
	envVal = e
	return e, nil
}

type configError struct{ err error }

func (c *configError) Error() string { return "configuration: " + c.err.Error() }
func (c *configError) Unwrap() error { return c.err }

func newEnv(ctx context.Context) (*env, error) {
	r := config.NewReader(config.Env())
	common := config.ReadCommon(r)
	topics := config.ReadTopics(r, common.BusPrefix)
	fns := readSettings(r)
	host, _ := os.Hostname()
	// Hostnames and pids repeat across containers; claims compare owners.
	owner := fmt.Sprintf("%s-%s", host, uuid.NewString()[:8])
	tcfg := telemetry.ReadConfig(r, common.Project, "functions", owner)
	tcfg.Prometheus = true // pull-only: no work unless the local server's /metrics is read
	if err := r.Err(); err != nil {
		return nil, &configError{err}
	}
	log := logging.New(os.Stdout, common.LogLevel, "functions", logging.TraceProject(common.Project))
	// Client construction does not dial; it cannot outlive this request's context
	// being cancelled, so it gets a background one.
	bg := context.WithoutCancel(ctx)
	tel, err := telemetry.Setup(bg, tcfg)
	if err != nil {
		return nil, err
	}
	if tcfg.Endpoint != "" {
		tel.Install(log) // the Pub/Sub client traces through the globals
	}
	ins, err := telemetry.NewInstruments(tel.Meter(scope))
	if err != nil {
		return nil, err
	}
	ps, err := bus.NewClient(bg, common.Project, bus.WithTracing(tcfg.Endpoint != ""))
	if err != nil {
		return nil, err
	}
	fs, err := store.NewClient(bg, common.Project, common.Database)
	if err != nil {
		return nil, err
	}
	return &env{
		common: common, topics: topics, fns: fns, log: log, tel: tel, ins: ins,
		// Functions publish one message per invocation and wait for it: don't hold it
		// back for batching.
		pub:   bus.NewPublisher(ps, &bus.FunctionPublishSettings),
		fs:    fs,
		owner: owner,
	}, nil
}

// lazy returns an entry point that builds its handler on first use. A failed build
// is retried on the next message (which Pub/Sub redelivers meanwhile).
// originalType names what the function's input messages are, for dead letters.
func lazy(name, originalType string, build func(context.Context, *env) (trigger.Handler, error)) CloudEventFunc {
	var (
		mu sync.Mutex
		fn CloudEventFunc
	)
	get := func(ctx context.Context) (CloudEventFunc, error) {
		mu.Lock()
		defer mu.Unlock()
		if fn != nil {
			return fn, nil
		}
		env, err := sharedEnv(ctx)
		if err != nil {
			return nil, err
		}
		h, err := build(ctx, env)
		if err != nil {
			env.log.ErrorContext(ctx, name+": cannot start", "error", err.Error())
			return nil, err
		}
		dl := trigger.DeadLetters{
			Pub: env.pub, Topic: env.topics.DeadLetter,
			Source: "twitch-edge." + strings.ToLower(name), OriginalType: originalType,
		}
		fn = trigger.Wrap(name, env.log.With("function", name), dl, h, observed(name, env))
		return fn, nil
	}
	return func(ctx context.Context, e cloudevent.Event) error {
		f, err := get(ctx)
		if err != nil {
			slog.New(slog.NewJSONHandler(os.Stderr, nil)).Error(name+": cannot start", "error", err.Error())
			return fault.Wrap(fault.Transient, "FUNCTION_NOT_CONFIGURED", err, "%s", name)
		}
		return f(ctx, e)
	}
}

func buildNormalize(_ context.Context, env *env) (trigger.Handler, error) {
	var pub normalize.Publisher = env.pub
	if env.fns.WhisperSeenWithin > 0 {
		pub = seenPublisher{next: env.pub, ingress: env.topics.Ingress, now: time.Now,
			seen: store.NewSeenUsers(env.fs, env.fns.WhisperSeenWithin)}
	}
	s := &normalize.Service{
		Builder:      &normalize.Builder{Normalizers: normalize.Registry(), EgressDestination: env.fns.EgressDestination},
		Pub:          pub,
		Ledger:       store.NewClaims(env.fs, store.CollectionIdempotency, 7*24*time.Hour, nil),
		IngressTopic: env.topics.Ingress,
		MaxAge:       env.fns.NormalizeMaxAge,
		Owner:        env.owner,
		Lease:        time.Minute,
		Now:          time.Now,
		Log:          env.log.With("function", NameNormalize),
	}
	return s.Handle, nil
}

func buildFinalize(_ context.Context, env *env) (trigger.Handler, error) {
	svc := finalize.New(store.NewEvents(env.fs, nil), time.Now, env.fns.EventTTL, env.log.With("function", NameFinalize))
	return svc.Handle, nil
}

// egressLease outlasts the egress functions' timeout (120 s in the deployment): a
// claim never expires while the attempt that holds it may still be sending.
const egressLease = 3 * time.Minute

func egressTopics(env *env) egress.Topics {
	return egress.Topics{Finalize: env.topics.Finalize, Whisper: env.topics.Whisper, Egress: env.topics.Egress}
}

func buildEgressChat(ctx context.Context, env *env) (trigger.Handler, error) {
	bot, err := env.botUserID(ctx)
	if err != nil {
		return nil, err
	}
	if len(env.fns.EgressChannels) == 0 {
		env.log.WarnContext(ctx, NameEgressChat+": no EGRESS_CHANNELS or TWITCH_CHANNELS: the bot may post in any channel")
	}
	svc, err := egress.NewChatService(egress.ChatConfig{
		Helix: lazyHelix{env}, Pub: outcomes{env.pub, env.topics.Finalize, "chat", env.ins}, Topics: egressTopics(env),
		Channels:  env.fns.EgressChannels,
		Budgets:   env.budgets(),
		Claims:    store.NewClaims(env.fs, store.CollectionDeliveries, 7*24*time.Hour, nil),
		BotUserID: bot, Owner: env.owner, Lease: egressLease, MaxAge: env.fns.EgressMaxAge, Now: time.Now,
		Log: env.log.With("function", NameEgressChat),
	})
	if err != nil {
		return nil, err
	}
	return svc.Handle, nil
}

func buildEgressWhisper(ctx context.Context, env *env) (trigger.Handler, error) {
	bot, err := env.botUserID(ctx)
	if err != nil {
		return nil, err
	}
	svc, err := egress.NewWhisperService(egress.WhisperConfig{
		Helix: lazyHelix{env}, Pub: outcomes{env.pub, env.topics.Finalize, "whisper", env.ins}, Topics: egressTopics(env),
		Claims:     store.NewClaims(env.fs, store.CollectionDeliveries, 7*24*time.Hour, nil),
		Recipients: recipients{store.NewWhisperRecipients(env.fs), env.ins}, Budgets: env.budgets(),
		SeenWithin: env.fns.WhisperSeenWithin, Seen: store.NewSeenUsers(env.fs, env.fns.WhisperSeenWithin),
		BotUserID: bot, Owner: env.owner, Lease: egressLease, MaxAge: env.fns.EgressMaxAge, Now: time.Now,
		Log: env.log.With("function", NameEgressWhisper),
	})
	if err != nil {
		return nil, err
	}
	return svc.Handle, nil
}
