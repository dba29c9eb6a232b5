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
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"cloud.google.com/go/firestore"
	"cloud.google.com/go/pubsub/v2"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/bitbrat/twitch-edge/infra/faketwitch"
	"github.com/bitbrat/twitch-edge/shared/bus"
	"github.com/bitbrat/twitch-edge/shared/config"
	"github.com/bitbrat/twitch-edge/shared/emulators"
	"github.com/bitbrat/twitch-edge/shared/event"
	"github.com/bitbrat/twitch-edge/shared/store"
)

// Options configure a stack. Zero values take the defaults in the comments.
type Options struct {
	// Project is the Google Cloud project id on the emulators. Default
	// config.DefaultLocalProject ("bitbrat-local"); tests pass their own.
	Project string
	// BusPrefix is BUS_PREFIX, applied to every topic and subscription.
	BusPrefix string

	// UseEnvEmulators reuses the emulators named by PUBSUB_EMULATOR_HOST and
	// FIRESTORE_EMULATOR_HOST when they are set (`make test` shares one pair); such
	// emulators cannot be restarted through the stack.
	UseEnvEmulators bool
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
	functions *process
	connector *process
	twitchEnv map[string]string

	pubOnce sync.Once
	pub     *bus.Publisher

	stopOnce sync.Once
	stopping chan struct{} // closed when Stop begins
	stopped  chan struct{} // closed when Stop has finished
}

// Start brings the stack up. On error (or a panic) everything already started is
// stopped again. It sets PUBSUB_EMULATOR_HOST and FIRESTORE_EMULATOR_HOST in this
// process to the stack's emulators (the client libraries read them from there).
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
		if s.Fake, err = faketwitch.Start(o.FakeTwitch); err != nil {
			return nil, err
		}
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
			if err := build(ctx, s.root, s.BinDir); err != nil {
				fail(err)
			}
		}()
	}
	want := map[emulators.Kind]string{}
	for k, addr := range map[emulators.Kind]string{emulators.PubSub: o.PubSubAddr, emulators.Firestore: o.FirestoreAddr} {
		if host := os.Getenv(k.EnvVar()); o.UseEnvEmulators && host != "" {
			s.setHost(k, host)
		} else {
			want[k] = addr
		}
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		started, err := emulators.StartAll(ctx, want)
		if err != nil {
			fail(err)
			return
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

	if err = s.connectClients(ctx); err != nil {
		return nil, err
	}
	if err = s.EnsureTopology(ctx); err != nil {
		return nil, err
	}
	if err = s.prepareToken(ctx); err != nil {
		return nil, err
	}
	s.twitchEnv = s.twitchVars()

	_, fnPort, _ := net.SplitHostPort(fnAddr)
	s.functions = newProcess("functions", s.BinDir+"/"+binFunctions, s.env(map[string]string{
		"PORT": fnPort, "HOST": "127.0.0.1",
	}, o.FunctionsEnv, "TWITCH_CHANNELS", "TWITCH_EVENTSUB_WS_URL", "TWITCH_EVENTSUB_SUBSCRIPTIONS_URL"), o.Output)
	s.connector = newProcess("connector", s.BinDir+"/"+binConnector, s.env(map[string]string{
		"PORT": strconv.Itoa(connPort), "HOST": "127.0.0.1", "CONNECTOR_INSTANCE_ID": ConnectorInstanceID,
	}, o.ConnectorEnv), o.Output)

	if err = s.StartFunctions(ctx); err != nil {
		return nil, err
	}
	if err = s.StartConnector(ctx); err != nil {
		return nil, err
	}
	return s, nil
}

func (s *Stack) setHost(k emulators.Kind, host string) {
	if k == emulators.PubSub {
		s.PubSubHost = host
	} else {
		s.FirestoreHost = host
	}
}

// connectClients builds the stack's own clients. The client libraries read the
// emulator hosts from the environment, so they are set for this process too (the
// same values every component gets).
func (s *Stack) connectClients(ctx context.Context) error {
	os.Setenv(emulators.PubSub.EnvVar(), s.PubSubHost)
	os.Setenv(emulators.Firestore.EnvVar(), s.FirestoreHost)
	var err error
	if s.PubSub, err = bus.NewClient(ctx, s.Project); err != nil {
		return err
	}
	if s.Firestore, err = store.NewClient(ctx, s.Project, ""); err != nil {
		return err
	}
	return nil
}

// prepareToken seeds the fake's bot token document, or with real Twitch checks that
// a token is available.
func (s *Stack) prepareToken(ctx context.Context) error {
	if s.Fake != nil {
		return faketwitch.SeedBotToken(ctx, s.Firestore, s.Fake.BotToken())
	}
	if s.opts.RealTwitch.BotAccessToken.Set() {
		return nil
	}
	_, err := s.Firestore.Doc(faketwitch.BotTokenDocPath).Get(ctx)
	if status.Code(err) == codes.NotFound {
		return fmt.Errorf("real Twitch: no bot token: set TWITCH_BOT_ACCESS_TOKEN, or point FIRESTORE_EMULATOR_HOST at an emulator whose project %s holds %s",
			s.Project, faketwitch.BotTokenDocPath)
	}
	if err != nil {
		return fmt.Errorf("real Twitch: read %s: %w", faketwitch.BotTokenDocPath, err)
	}
	return nil
}

// twitchVars are the TWITCH_* variables of both components.
func (s *Stack) twitchVars() map[string]string {
	if s.Fake != nil {
		tw := s.Fake.Twitch
		return map[string]string{
			"TWITCH_CLIENT_ID":       tw.ClientID(),
			"TWITCH_CLIENT_SECRET":   tw.ClientSecret(),
			"TWITCH_BOT_USER_ID":     faketwitch.BotID,
			"TWITCH_CHANNELS":        strings.Join(s.Fake.ChannelLogins(), ","),
			"TWITCH_API_BASE_URL":    tw.APIBaseURL(),
			"TWITCH_AUTH_BASE_URL":   tw.AuthBaseURL(),
			"TWITCH_EVENTSUB_WS_URL": tw.EventSubWSURL(),
		}
	}
	t := s.opts.RealTwitch
	v := map[string]string{}
	set := func(k, val string) {
		if val != "" {
			v[k] = val
		}
	}
	set("TWITCH_CLIENT_ID", t.ClientID)
	set("TWITCH_CLIENT_SECRET", t.ClientSecret.Reveal())
	set("TWITCH_BOT_USER_ID", t.BotUserID)
	set("TWITCH_BOT_ACCESS_TOKEN", t.BotAccessToken.Reveal())
	set("TWITCH_CHANNELS", strings.Join(t.Channels, ","))
	set("TWITCH_API_BASE_URL", t.APIBaseURL)
	set("TWITCH_AUTH_BASE_URL", t.AuthBaseURL)
	set("TWITCH_EVENTSUB_WS_URL", t.EventSubWSURL)
	set("TWITCH_EVENTSUB_SUBSCRIPTIONS_URL", t.EventSubSubscriptionsURL)
	return v
}

// ownedVars are variables the stack decides for its components; inherited values are
// dropped so that a developer's shell cannot point a component elsewhere by accident.
var ownedPrefixes = []string{"TWITCH_", "EVENTSUB_", "CONNECTOR_", "GOOGLE_CLOUD_PROJECT=", "FIRESTORE_", "PUBSUB_",
	"BUS_PREFIX=", "PORT=", "HOST=", "FUNCTION_TARGET=", "WHISPER_TOPIC=", "EGRESS_DESTINATION=", "NORMALIZE_MAX_AGE=",
	"EVENT_TTL=", "LOG_LEVEL="}

// env is a component's environment: this process's, minus what the stack owns, plus
// the stack's settings, plus the caller's overrides. drop removes stack variables
// the component does not read.
func (s *Stack) env(own map[string]string, extra map[string]string, drop ...string) []string {
	var out []string
	for _, kv := range os.Environ() {
		if !slices.ContainsFunc(ownedPrefixes, func(p string) bool { return strings.HasPrefix(kv, p) }) {
			out = append(out, kv)
		}
	}
	vars := map[string]string{
		"GOOGLE_CLOUD_PROJECT":    s.Project,
		"PUBSUB_EMULATOR_HOST":    s.PubSubHost,
		"FIRESTORE_EMULATOR_HOST": s.FirestoreHost,
	}
	if s.Prefix != "" {
		vars["BUS_PREFIX"] = string(s.Prefix)
	}
	for k, v := range s.twitchEnv {
		vars[k] = v
	}
	for _, k := range drop {
		delete(vars, k)
	}
	for _, m := range []map[string]string{own, s.opts.Env, extra} {
		for k, v := range m {
			vars[k] = v
		}
	}
	for k, v := range vars {
		out = append(out, k+"="+v)
	}
	return out
}

// StartFunctions starts the functions server and waits until it answers HTTP.
func (s *Stack) StartFunctions(ctx context.Context) error {
	if err := s.functions.start(); err != nil {
		return err
	}
	err := s.waitHTTP(ctx, s.functions, s.FunctionsURL+"/", func(int) bool { return true })
	if err != nil {
		return fmt.Errorf("functions server at %s: %w\n--- functions output ---\n%s", s.FunctionsURL, err, s.functions.logTail())
	}
	return nil
}

// StopFunctions stops the functions server (SIGTERM, then SIGKILL after 5 s).
func (s *Stack) StopFunctions() { s.functions.stop(syscall.SIGTERM, 5*time.Second) }

// RestartFunctions stops and starts the functions server.
func (s *Stack) RestartFunctions(ctx context.Context) error {
	s.StopFunctions()
	return s.StartFunctions(ctx)
}

// StartConnector starts the connector and waits until its /readyz answers 200.
func (s *Stack) StartConnector(ctx context.Context) error {
	if err := s.connector.start(); err != nil {
		return err
	}
	return s.WaitConnectorReady(ctx)
}

// WaitConnectorReady waits until the connector's /readyz answers 200 (session
// welcomed, every subscription enabled).
func (s *Stack) WaitConnectorReady(ctx context.Context) error {
	err := s.waitHTTP(ctx, s.connector, s.ConnectorURL+"/readyz", func(code int) bool { return code == http.StatusOK })
	if err != nil {
		return fmt.Errorf("connector at %s not ready: %w\n--- connector output ---\n%s", s.ConnectorURL, err, s.connector.logTail())
	}
	return nil
}

// StopConnector stops the connector gracefully (SIGTERM: it flushes its relay and
// releases its lease), killing it after 15 s.
func (s *Stack) StopConnector() { s.connector.stop(syscall.SIGTERM, 15*time.Second) }

// KillConnector kills the connector at once (SIGKILL), as a crash would. Its lease
// stays held until it expires, so the next StartConnector waits up to
// CONNECTOR_LEASE_TTL (30 s unless ConnectorEnv sets it) before it is ready, as a
// replacement instance would in the cloud.
func (s *Stack) KillConnector() { s.connector.stop(syscall.SIGKILL, 5*time.Second) }

// RestartConnector stops the connector gracefully, starts it again and waits until
// it is ready.
func (s *Stack) RestartConnector(ctx context.Context) error {
	s.StopConnector()
	return s.StartConnector(ctx)
}

// ConnectorPID and FunctionsPID are the subprocesses' ids (0 when stopped).
func (s *Stack) ConnectorPID() int { return s.connector.pid() }

// FunctionsPID is the functions server's process id (0 when stopped).
func (s *Stack) FunctionsPID() int { return s.functions.pid() }

// ChildPIDs are the ids of every subprocess the stack runs now.
func (s *Stack) ChildPIDs() []int {
	var out []int
	for _, p := range []*process{s.functions, s.connector} {
		if p != nil {
			if pid := p.pid(); pid != 0 {
				out = append(out, pid)
			}
		}
	}
	return out
}

// Exited names the components whose process ended without the stack stopping it (a
// crash, or a configuration error at start).
func (s *Stack) Exited() []string {
	var out []string
	for _, p := range []*process{s.functions, s.connector} {
		if p != nil && p.hasExited() {
			out = append(out, p.name)
		}
	}
	return out
}

// ConnectorLogs and FunctionsLogs are the components' last lines of output.
func (s *Stack) ConnectorLogs() string { return s.connector.logTail() }

// FunctionsLogs is the functions server's last lines of output.
func (s *Stack) FunctionsLogs() string { return s.functions.logTail() }

// RestartEmulator restarts one of the stack's own emulators on the same address.
// Emulator state is lost, as after a real outage, so the stack re-creates its topics
// and subscriptions (Pub/Sub) or re-seeds the bot's token (Firestore); anything else
// is gone.
func (s *Stack) RestartEmulator(ctx context.Context, k emulators.Kind) error {
	e := s.emus[k]
	if e == nil {
		return fmt.Errorf("the %s emulator was not started by this stack (it came from %s); it cannot be restarted here", k, k.EnvVar())
	}
	if err := e.Restart(ctx); err != nil {
		return fmt.Errorf("restart the %s emulator: %w", k, err)
	}
	if k == emulators.PubSub {
		return s.EnsureTopology(ctx)
	}
	return s.prepareToken(ctx)
}

// waitHTTP polls url until ok(status) or the process exits or ReadyTimeout passes.
func (s *Stack) waitHTTP(ctx context.Context, p *process, url string, ok func(int) bool) error {
	err := WaitHTTP(ctx, &http.Client{Timeout: 2 * time.Second}, url, s.opts.ReadyTimeout, p.exited(), ok)
	if errors.Is(err, errExited) {
		return fmt.Errorf("%s %w", p.name, errExited)
	}
	return err
}

// WaitHTTP polls url every 100 ms until ok(status), the process exits (exited is
// closed: an error wrapping "exited"), or timeout passes.
func WaitHTTP(ctx context.Context, hc *http.Client, url string, timeout time.Duration, exited <-chan struct{}, ok func(int) bool) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	last := "no answer"
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if resp, err := hc.Do(req); err == nil {
			b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
			resp.Body.Close()
			if ok(resp.StatusCode) {
				return nil
			}
			last = fmt.Sprintf("HTTP %d %s", resp.StatusCode, strings.TrimSpace(string(b)))
		}
		select {
		case <-exited:
			return errExited
		case <-ctx.Done():
			return fmt.Errorf("%s: %w (last answer: %s)", url, ctx.Err(), last)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// Publisher is a publisher on the stack's Pub/Sub client (created on first use,
// stopped by Stop).
func (s *Stack) Publisher() *bus.Publisher {
	s.pubOnce.Do(func() { s.pub = bus.NewPublisher(s.PubSub, &bus.FunctionPublishSettings) })
	return s.pub
}

// PublishEgress publishes e to the egress topic with upstream's attributes, as a
// BitBrat service would.
func (s *Stack) PublishEgress(ctx context.Context, e *event.InternalEventV2) error {
	_, err := s.Publisher().PublishJSON(ctx, s.Topics.Egress, e, event.Attributes(e))
	return err
}

// Outcome reads the delivery outcome recorded on events/{correlationId}.
func (s *Stack) Outcome(ctx context.Context, correlationID string) (store.Outcome, bool, error) {
	return store.NewEvents(s.Firestore, nil).GetOutcome(ctx, correlationID)
}

// Watch receives from a pull subscription (one of Subs.Watch*) until ctx ends or
// the stack stops, calling fn for each message and acknowledging it afterwards.
func (s *Stack) Watch(ctx context.Context, sub string, fn func(bus.Received)) error {
	err := s.PubSub.Subscriber(sub).Receive(ctx, func(_ context.Context, m *pubsub.Message) {
		fn(bus.Received{ID: m.ID, Data: m.Data, Attributes: m.Attributes})
		m.Ack()
	})
	select {
	case <-s.stopping:
		return nil // the client was closed under it
	default:
	}
	if err != nil && ctx.Err() == nil {
		return fmt.Errorf("watch %s: %w", sub, err)
	}
	return nil
}

// Done is closed when Stop has finished.
func (s *Stack) Done() <-chan struct{} { return s.stopped }

// Stop stops everything the stack started, in dependency order (the connector first,
// so it can flush to Pub/Sub; the emulators last), and removes a temporary binary
// directory. It is safe to call more than once and from any goroutine.
func (s *Stack) Stop() {
	s.stopOnce.Do(func() {
		close(s.stopping)
		defer close(s.stopped)
		if s.connector != nil {
			s.StopConnector()
		}
		if s.functions != nil {
			s.StopFunctions()
		}
		if s.Fake != nil {
			s.Fake.Close()
		}
		if s.pub != nil {
			s.pub.Close()
		}
		if s.PubSub != nil {
			_ = s.PubSub.Close()
		}
		if s.Firestore != nil {
			_ = s.Firestore.Close()
		}
		for _, e := range s.emus {
			e.Stop()
		}
		if s.ownBinDir && s.BinDir != "" {
			_ = os.RemoveAll(s.BinDir)
		}
	})
}

// StopOnSignal stops the stack when this process gets SIGINT or SIGTERM, then lets
// the signal take its default course (the process ends), so that an interrupted
// test run leaves nothing behind. The returned function uninstalls the handler.
func (s *Stack) StopOnSignal() (cancel func()) {
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, os.Interrupt, syscall.SIGTERM)
	done := make(chan struct{})
	go func() {
		select {
		case sig := <-ch:
			s.Stop()
			signal.Reset(sig)
			if p, err := os.FindProcess(os.Getpid()); err == nil {
				_ = p.Signal(sig)
			}
		case <-done:
		}
	}()
	var once sync.Once
	return func() {
		once.Do(func() {
			signal.Stop(ch)
			close(done)
		})
	}
}

// loopbackAddr returns addr, or a free loopback address when addr is empty.
func loopbackAddr(addr string) (string, error) {
	if addr != "" {
		return addr, nil
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}
