// Package stack brings the whole pipeline up on loopback, for `make run`, the
// end-to-end tests and the benchmark and soak tooling: the Pub/Sub and Firestore
// emulators, every topic, push subscriptions that drive the functions over HTTP (with
// dead-letter and retry policies, as deployed), pull subscriptions to watch each
// topic, the bot's token document, the functions server and the connector as
// subprocesses (built from this checkout, configured with the same variables the
// deployment sets), and the fake Twitch in-process — or real Twitch.
//
// Start returns once the connector is ready (its /readyz answers 200: session
// welcomed, every subscription enabled). Stop tears everything down and leaves no
// process behind; subprocesses run in their own process groups and die with this
// process even if it crashes (Pdeathsig).
package stack

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"sync"
	"time"

	"cloud.google.com/go/firestore"
	"cloud.google.com/go/pubsub/v2"

	"github.com/bitbrat/twitch-edge/infra/faketwitch"
	"github.com/bitbrat/twitch-edge/shared/bus"
	"github.com/bitbrat/twitch-edge/shared/config"
	"github.com/bitbrat/twitch-edge/shared/emulators"
	"github.com/bitbrat/twitch-edge/shared/event"
)

// Options configure a stack. Zero values take the defaults in the comments.
type Options struct {
	// Project is the Google Cloud project id on the emulators. Default
	// config.DefaultLocalProject ("bitbrat-local"); tests pass their own.
	Project string
	// BusPrefix is BUS_PREFIX, applied to every topic and subscription.
	BusPrefix string

	// PubSubHost and FirestoreHost name emulators already running ("127.0.0.1:PORT")
	// for the stack to use (`make test` shares one pair: emulators.Host); the stack
	// cannot restart those. For each one left empty the stack starts its own.
	PubSubHost, FirestoreHost string
	// PubSubAddr and FirestoreAddr are where the stack starts its own emulators
	// ("127.0.0.1:PORT"). Default: free loopback ports.
	PubSubAddr, FirestoreAddr string

	// FunctionsAddr is the functions server's address. Default: a free loopback port.
	FunctionsAddr string
	// ConnectorPort is the connector's health port (PORT). Default: a free port.
	ConnectorPort int

	// FakeTwitch configures the in-process fake Twitch, used unless RealTwitch is set.
	FakeTwitch faketwitch.Options
	// RealTwitch, when set, connects to real Twitch with these settings instead of
	// the fake: the bot token comes from BotAccessToken or, when that is empty, from
	// the token document already in Firestore (Start checks it is there).
	RealTwitch *config.Twitch

	// BinDir receives the built binaries. Default: a temporary directory that Stop
	// removes. A fixed directory makes the next build a no-op when nothing changed.
	BinDir string
	// SkipBuild uses the binaries already in BinDir.
	SkipBuild bool

	// Output receives every line the subprocesses write (JSON logs), with the
	// component's name ("functions", "connector"). Default: discarded.
	Output func(component, line string)
	// Env are further variables for both subprocesses (LOG_LEVEL, EVENT_TTL, ...);
	// FunctionsEnv and ConnectorEnv for one of them. They override the stack's.
	Env, FunctionsEnv, ConnectorEnv map[string]string

	// MinBackoff and MaxBackoff are the push subscriptions' retry policy. Default
	// 1 s and 10 s.
	MinBackoff, MaxBackoff time.Duration
	// NoWatch leaves out the watch.* pull subscriptions (for long runs that would
	// not consume them).
	NoWatch bool
	// ReadyTimeout bounds the wait for each component to become ready. Default 90 s.
	ReadyTimeout time.Duration
	// Transport is TransportWebSocket (default), TransportConduit or
	// TransportServerless (modes.go); the last two need the fake Twitch.
	Transport string
	// Connectors is the number of connector instances in conduit mode (default 2;
	// 1 with WebhookShards is a hybrid conduit); CONDUIT_SHARDS follows it (one
	// WebSocket shard per instance).
	Connectors int
	// WebhookShards is the number of webhook shards on the functions server's
	// /EventSubWebhook: after the WebSocket shards in conduit mode (default 0), the
	// only shards in serverless mode (default 1).
	WebhookShards int
	// ReconcileEvery is how often the stack ticks EventSubReconcile in serverless
	// mode. Default 10 s.
	ReconcileEvery time.Duration

	// Progress is told each step of Start as it finishes ("fake Twitch", "build",
	// "emulators", "topology", "bot token", "functions server", "connector") with how
	// long it took, so a caller can show start-up as it happens. Default: nothing.
	Progress func(step string, took time.Duration)
}

// ConnectorInstanceID is CONNECTOR_INSTANCE_ID of the stack's connector: the name
// its lease and logs carry (the connector adds a random suffix per process).
const ConnectorInstanceID = "stack-connector"

// Stack is a running local pipeline. Its exported fields are fixed once Start
// returns; its methods are safe for concurrent use.
type Stack struct {
	Project string
	Prefix  event.Prefix
	Topics  config.Topics
	Subs    Subscriptions

	// PubSubHost and FirestoreHost are the emulators' "127.0.0.1:PORT".
	PubSubHost, FirestoreHost string
	// PubSub and Firestore are clients on the stack's project.
	PubSub    *pubsub.Client
	Firestore *firestore.Client

	// Fake is the fake Twitch; nil with real Twitch.
	Fake *faketwitch.Server

	// FunctionsURL is the functions server's base URL; ConnectorURL the connector's
	// health and metrics server.
	FunctionsURL, ConnectorURL string
	// BinDir holds the built binaries.
	BinDir string

	opts      Options
	root      string
	ownBinDir bool
	emus      map[emulators.Kind]*emulators.Emulator
	functions *Process
	connector *Process // nil in serverless mode
	extra     []*extraConnector
	added     addedInstances
	twitchEnv map[string]string

	pubOnce sync.Once
	pub     *bus.Publisher

	stopOnce sync.Once
	stopping chan struct{} // closed when Stop begins
	stopped  chan struct{} // closed when Stop has finished
}

// Start brings the stack up. On error (or a panic) everything already started is
// stopped again.
func Start(ctx context.Context, o Options) (_ *Stack, err error) {
	if o.Project == "" {
		o.Project = config.DefaultLocalProject
	}
	if o.MinBackoff == 0 && o.MaxBackoff == 0 {
		o.MinBackoff, o.MaxBackoff = time.Second, 10*time.Second
	}
	if o.ReadyTimeout <= 0 {
		o.ReadyTimeout = 90 * time.Second
	}
	if err := o.checkTransport(); err != nil {
		return nil, err
	}
	progress := func(step string, since time.Time) {
		if o.Progress != nil {
			o.Progress(step, time.Since(since))
		}
	}
	s := &Stack{
		Project:  o.Project,
		Prefix:   event.Prefix(o.BusPrefix),
		Topics:   config.ReadTopics(config.NewReader(config.Map(nil)), event.Prefix(o.BusPrefix)),
		Subs:     subscriptionNames(o.BusPrefix),
		opts:     o,
		emus:     map[emulators.Kind]*emulators.Emulator{},
		stopping: make(chan struct{}),
		stopped:  make(chan struct{}),
	}
	defer func() {
		if r := recover(); r != nil {
			s.Stop()
			panic(r)
		}
		if err != nil {
			s.Stop()
		}
	}()

	if s.root, err = ModuleRoot(); err != nil {
		return nil, err
	}
	s.BinDir = o.BinDir
	if s.BinDir == "" {
		if s.BinDir, err = os.MkdirTemp("", "bitbrat-stack-"); err != nil {
			return nil, fmt.Errorf("binary directory: %w", err)
		}
		s.ownBinDir = true
	} else if err = os.MkdirAll(s.BinDir, 0o755); err != nil {
		return nil, fmt.Errorf("binary directory: %w", err)
	}

	fnAddr, err := loopbackAddr(o.FunctionsAddr)
	if err != nil {
		return nil, fmt.Errorf("functions server address: %w", err)
	}
	s.FunctionsURL = "http://" + fnAddr
	connPort := o.ConnectorPort
	if connPort == 0 {
		a, err := loopbackAddr("")
		if err != nil {
			return nil, fmt.Errorf("connector port: %w", err)
		}
		_, p, _ := net.SplitHostPort(a)
		connPort, _ = strconv.Atoi(p)
	}
	s.ConnectorURL = "http://127.0.0.1:" + strconv.Itoa(connPort)

	if o.RealTwitch == nil {
		t := time.Now()
		if s.Fake, err = faketwitch.Start(o.FakeTwitch); err != nil {
			return nil, err
		}
		progress("fake Twitch", t)
	}

	// The build and the emulators take the longest: run them side by side.
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
	)
	fail := func(e error) { mu.Lock(); errs = append(errs, e); mu.Unlock() }
	if !o.SkipBuild {
		wg.Add(1)
		go func() {
			defer wg.Done()
			t := time.Now()
			if err := build(ctx, s.root, s.BinDir); err != nil {
				fail(err)
				return
			}
			progress("build", t)
		}()
	}
	want := map[emulators.Kind]string{}
	for k, e := range map[emulators.Kind]struct{ host, addr string }{
		emulators.PubSub:    {o.PubSubHost, o.PubSubAddr},
		emulators.Firestore: {o.FirestoreHost, o.FirestoreAddr},
	} {
		if e.host != "" {
			s.setHost(k, e.host)
		} else {
			want[k] = e.addr
		}
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.Now()
		started, err := emulators.StartAll(ctx, want)
		if err != nil {
			fail(err)
			return
		}
		if len(want) > 0 {
			progress("emulators", t)
		}
		mu.Lock()
		for k, e := range started {
			s.emus[k] = e
		}
		mu.Unlock()
		for k, e := range started {
			s.setHost(k, e.Host)
		}
	}()
	wg.Wait()
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}

	t := time.Now()
	if err = s.connectClients(ctx); err != nil {
		return nil, err
	}
	if err = s.EnsureTopology(ctx); err != nil {
		return nil, err
	}
	progress("topology", t)
	t = time.Now()
	if err = s.prepareToken(ctx); err != nil {
		return nil, err
	}
	progress("bot token", t)
	s.twitchEnv = s.twitchVars()

	_, fnPort, _ := net.SplitHostPort(fnAddr)
	fnMode, connMode := s.modeEnv()
	fnMode["PORT"], fnMode["HOST"] = fnPort, "127.0.0.1"
	s.functions = NewProcess("functions", s.BinDir+"/"+Functions.Name, s.env(fnMode,
		o.FunctionsEnv, "TWITCH_EVENTSUB_WS_URL", "TWITCH_EVENTSUB_SUBSCRIPTIONS_URL"), o.Output)
	if err = s.newConnectors(connPort, connMode); err != nil {
		return nil, err
	}

	t = time.Now()
	if err = s.StartFunctions(ctx); err != nil {
		return nil, err
	}
	progress("functions server", t)
	t = time.Now()
	if s.connector == nil {
		// Serverless mode: EventSubReconcile makes the conduit and its subscriptions.
		s.ConnectorURL = ""
		go s.runTicker()
		if err = s.WaitServerlessReady(ctx); err != nil {
			return nil, err
		}
		progress("EventSubReconcile", t)
		return s, nil
	}
	if err = s.StartConnector(ctx); err != nil {
		return nil, err
	}
	if err = s.startExtraConnectors(ctx); err != nil {
		return nil, err
	}
	progress("connector", t)
	return s, nil
}
