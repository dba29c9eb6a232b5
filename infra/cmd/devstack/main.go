// Command devstack is `make run`: it brings the whole pipeline up on loopback (the
// emulators, every topic and push subscription, the functions server, the connector
// and the fake Twitch), prints each event as it passes, and on Ctrl-C stops
// everything it started.
//
// With TWITCH_CLIENT_ID set it connects to real Twitch instead of the fake (see
// infra/README.md); the other variables of the README's configuration table work as
// in the deployment.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/bitbrat/twitch-edge/infra/faketwitch"
	"github.com/bitbrat/twitch-edge/infra/stack"
	"github.com/bitbrat/twitch-edge/shared/config"
)

// The fixed loopback addresses `make run` uses, so that twitchctl and other tools
// find them without being told.
const (
	defaultPubSub    = "127.0.0.1:8085"
	defaultFirestore = "127.0.0.1:8086"
	defaultFunctions = "127.0.0.1:8087"
	defaultConnector = 8088
	defaultTwitch    = "127.0.0.1:8089"
	defaultControl   = "127.0.0.1:8090"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "devstack:", err)
		os.Exit(1)
	}
}

type flags struct {
	pubsub, firestore, functions, twitch, control string
	connectorPort                                 int
	binDir, logDir                                string
	verbose                                       bool
	transport                                     string
	connectors, webhookShards                     int
	reconcileEvery                                time.Duration
}

func parseFlags() (flags, error) {
	var f flags
	cache, err := os.UserCacheDir()
	if err != nil {
		cache = os.TempDir()
	}
	base := filepath.Join(cache, "bitbrat-twitch-edge")
	flag.StringVar(&f.pubsub, "pubsub", defaultPubSub, "Pub/Sub emulator address")
	flag.StringVar(&f.firestore, "firestore", defaultFirestore, "Firestore emulator address")
	flag.StringVar(&f.functions, "functions", defaultFunctions, "functions server address")
	flag.IntVar(&f.connectorPort, "connector-port", defaultConnector, "connector health port (PORT)")
	flag.StringVar(&f.twitch, "twitch", defaultTwitch, "fake Twitch address (Helix, OAuth, EventSub WebSocket)")
	flag.StringVar(&f.control, "control", defaultControl, "fake Twitch control API address (twitchctl)")
	flag.StringVar(&f.binDir, "bin", filepath.Join(base, "bin"), "where the functions server and the connector are built")
	flag.StringVar(&f.logDir, "logs", filepath.Join(base, "logs"), "where each run's folder of component logs (JSON) is made; <logs>/latest is the newest")
	flag.BoolVar(&f.verbose, "v", false, "also print every log line of the components")
	flag.StringVar(&f.transport, "transport", stack.TransportWebSocket,
		"EventSub transport: websocket (one connector), conduit (-connectors instances sharing a conduit) or serverless (no connector; EventSubReconcile on a timer)")
	flag.IntVar(&f.connectors, "connectors", 2, "conduit mode: connector instances (one WebSocket shard each; 1 with -webhook-shards is a hybrid conduit)")
	flag.IntVar(&f.webhookShards, "webhook-shards", 0, "webhook shards on the functions server's /EventSubWebhook (conduit: after the WebSocket shards; serverless: at least 1)")
	flag.DurationVar(&f.reconcileEvery, "reconcile-every", 10*time.Second, "serverless mode: how often EventSubReconcile is ticked")
	flag.Parse()
	if flag.NArg() > 0 {
		return f, fmt.Errorf("unexpected arguments %q (flags: -h)", flag.Args())
	}
	return f, nil
}

func run() (err error) {
	f, err := parseFlags()
	if err != nil {
		return err
	}
	begin := time.Now()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	out := newPrinter(os.Stdout)
	opts, real, err := options(f)
	if err != nil {
		return err
	}
	// Each run keeps its logs in its own folder, named in the first line.
	logs, err := openLogs(f.logDir, begin)
	if err != nil {
		return err
	}
	defer logs.Close()
	if real {
		out.line("stack", "starting with REAL Twitch (TWITCH_CLIENT_ID is set), channels %s; logs in %s",
			strings.Join(opts.RealTwitch.Channels, ", "), logs.dir)
	} else {
		out.line("stack", "starting: building the functions server and the connector, starting the emulators and the fake Twitch (a first build takes a few minutes); logs in %s", logs.dir)
	}
	events := &eventLog{p: out, verbose: f.verbose}
	opts.Output = func(component, line string) {
		logs.write(component, line)
		events.componentLine(component, line)
	}
	opts.Progress = func(step string, took time.Duration) {
		events.progress(step, took)
	}

	if err := checkPorts(f, real); err != nil {
		return err
	}
	if real {
		// Before any emulator starts: a missing or dead token is the commonest
		// start-up failure with real Twitch, and takes a second to find.
		if err := checkRealToken(ctx, out, opts); err != nil {
			return err
		}
	}
	st, err := stack.Start(ctx, opts)
	if err != nil {
		if ctx.Err() != nil {
			return errors.New("interrupted during start-up; everything started was stopped")
		}
		return err
	}
	defer func() {
		// Ctrl-C, an error or a panic: everything goes.
		r := recover()
		out.line("stack", "stopping everything this run started")
		t := time.Now()
		st.Stop()
		out.line("stack", "stopped in %s; nothing left running", time.Since(t).Round(100*time.Millisecond))
		if r != nil {
			panic(r)
		}
	}()
	events.st = st

	printReady(out, st, f, real, time.Since(begin), logs.dir)

	// Deferred in this order so that the watchers are cancelled, then waited for,
	// before the stack stops (also when a panic unwinds).
	var wg sync.WaitGroup
	defer wg.Wait()
	watchCtx, cancelWatch := context.WithCancel(ctx)
	defer cancelWatch()
	events.watchAll(watchCtx, &wg)

	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			fmt.Fprintln(os.Stdout)
			cancelWatch()
			return nil
		case <-tick.C:
			if gone := st.Exited(); len(gone) > 0 {
				cancelWatch()
				tails := ""
				for _, c := range gone {
					text := st.FunctionsLogs()
					if c == "connector" {
						text = st.ConnectorLogs()
					}
					tails += "\n--- last lines of the " + c + " output ---\n" + lastLines(text, 15)
				}
				return fmt.Errorf("%s exited unexpectedly (logs in %s)%s", strings.Join(gone, " and "), logs.dir, tails)
			}
		}
	}
}

// checkPorts fails early, naming the flag, when a fixed address is taken (another
// `make run`, say), rather than after the emulators started.
func checkPorts(f flags, real bool) error {
	type port struct{ addr, what, flag string }
	ports := []port{
		{f.functions, "the functions server", "-functions"},
		{"127.0.0.1:" + strconv.Itoa(f.connectorPort), "the connector", "-connector-port"},
	}
	if os.Getenv("PUBSUB_EMULATOR_HOST") == "" {
		ports = append(ports, port{f.pubsub, "the Pub/Sub emulator", "-pubsub"})
	}
	if os.Getenv("FIRESTORE_EMULATOR_HOST") == "" {
		ports = append(ports, port{f.firestore, "the Firestore emulator", "-firestore"})
	}
	if !real {
		ports = append(ports, port{f.twitch, "the fake Twitch", "-twitch"}, port{f.control, "the fake Twitch's control API", "-control"})
	}
	for _, p := range ports {
		l, err := net.Listen("tcp", p.addr)
		if err != nil {
			return fmt.Errorf("%s cannot listen on %s (is another `make run` up?): %w; choose another address with %s", p.what, p.addr, err, p.flag)
		}
		l.Close()
	}
	return nil
}

// options builds the stack's options from the flags and the environment.
func options(f flags) (stack.Options, bool, error) {
	r := config.NewReader(config.Env())
	// Locally everything runs on the emulators, where the project is only a
	// namespace (config.ReadCommon would require it outside the emulators).
	r.LogLevel("LOG_LEVEL")
	o := stack.Options{
		Project:       r.String("GOOGLE_CLOUD_PROJECT", config.DefaultLocalProject),
		BusPrefix:     r.String("BUS_PREFIX", ""),
		PubSubAddr:    f.pubsub,
		FirestoreAddr: f.firestore,
		FunctionsAddr: f.functions,
		ConnectorPort: f.connectorPort,
		FakeTwitch:    faketwitch.Options{Addr: f.twitch, ControlAddr: f.control},
		BinDir:        f.binDir,
		// A user who runs their own emulators (say, one holding a real token
		// document) points the variables at them.
		PubSubHost:    r.String("PUBSUB_EMULATOR_HOST", ""),
		FirestoreHost: r.String("FIRESTORE_EMULATOR_HOST", ""),
		Env:           map[string]string{},
		Transport:     f.transport, Connectors: f.connectors, WebhookShards: f.webhookShards, ReconcileEvery: f.reconcileEvery,
	}
	for _, k := range config.TunedNames() {
		if v, ok := os.LookupEnv(k); ok && v != "" {
			o.Env[k] = v
		}
	}
	_, real := os.LookupEnv("TWITCH_CLIENT_ID")
	if real {
		tw := config.ReadTwitch(r)
		if len(tw.Channels) == 0 {
			r.Required("TWITCH_CHANNELS")
		}
		o.RealTwitch = &tw
	}
	if err := r.Err(); err != nil {
		return o, real, fmt.Errorf("configuration: %w", err)
	}
	return o, real, nil
}

func printReady(out *printer, st *stack.Stack, f flags, real bool, took time.Duration, logDir string) {
	out.line("stack", "ready in %s", took.Round(100*time.Millisecond))
	out.line("stack", "Pub/Sub emulator %s, Firestore emulator %s, project %s", st.PubSubHost, st.FirestoreHost, st.Project)
	out.line("stack", "functions %s (Normalize, EgressChat, EgressWhisper, Finalize via push subscriptions)", st.FunctionsURL)
	switch urls := st.ConnectorURLs(); {
	case len(urls) == 0:
		out.line("stack", "serverless mode: no connector; EventSubReconcile ticked every %s, webhook shards at %s; this run's logs in %s",
			f.reconcileEvery, st.WebhookURL(), logDir)
	case len(urls) > 1:
		out.line("stack", "conduit mode: %d connector instances %s (/readyz each); this run's logs in %s", len(urls), strings.Join(urls, ", "), logDir)
	default:
		out.line("stack", "connector %s/readyz; this run's logs in %s", st.ConnectorURL, logDir)
	}
	if !real {
		out.line("stack", "fake Twitch %s (bot %s, channels %s), control API %s", st.Fake.URL(), faketwitch.BotLogin,
			strings.Join(st.Fake.ChannelLogins(), ", "), st.Fake.ControlURL())
	}
	ctl := "go run ./infra/cmd/twitchctl"
	if fi, err := os.Stat("bin/twitchctl"); err == nil && !fi.IsDir() { // make run built it
		ctl = "bin/twitchctl"
	}
	if f.control != defaultControl {
		ctl += " --control http://" + f.control
	}
	if st.PubSubHost != defaultPubSub {
		ctl += " --pubsub " + st.PubSubHost
	}
	if st.Project != config.DefaultLocalProject {
		ctl += " --project " + st.Project
	}
	var try []string
	if !real {
		try = append(try,
			ctl+" trigger channel.follow --broadcaster bitbrat_demo --user pixel_pioneer",
			ctl+" trigger channel.update --broadcaster cooler_user --title \"Speedrun night\"",
			ctl+" egress --type chat --channel '#bitbrat_demo' --text \"hello chat\"",
			ctl+" egress --type dm --user 2001 --text \"psst, hi\"",
			ctl+" reconnect    (also: revoke channel.follow, close 4000, drop, silence, sessions, deliveries)")
		if f.transport != stack.TransportWebSocket {
			try = append(try,
				ctl+" conduits     (then: shard disable <conduit> <shard>, shard kill-socket <conduit> <shard>)",
				ctl+" channel add late_streamer --id 1003    (channel remove 1003)")
		}
	} else {
		try = append(try, ctl+" egress --type chat --channel '#<your channel>' --text \"hello from the local stack\"")
	}
	out.line("stack", "try, in another terminal:")
	for _, c := range try {
		out.plain("    " + c)
	}
	out.line("stack", "Ctrl-C stops everything")
}

// printer writes timestamped, colourless lines, one event per line.
type printer struct {
	mu sync.Mutex
	w  io.Writer
}

func newPrinter(w io.Writer) *printer { return &printer{w: w} }

func (p *printer) line(kind, format string, args ...any) {
	p.mu.Lock()
	defer p.mu.Unlock()
	fmt.Fprintf(p.w, "%s  %-10s %s\n", time.Now().Format("15:04:05.000"), kind, fmt.Sprintf(format, args...))
}

func (p *printer) plain(s string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	fmt.Fprintln(p.w, s)
}

// logFiles keeps each component's JSON log in its own file.
type logFiles struct {
	dir   string
	mu    sync.Mutex
	files map[string]*os.File
}

// openLogs makes this run's folder under base, named for its start time, and points
// base/latest at it.
func openLogs(base string, begin time.Time) (*logFiles, error) {
	name := begin.Format("20060102-150405")
	dir := filepath.Join(base, name)
	for i := 2; ; i++ { // two runs in one second
		if _, err := os.Stat(dir); errors.Is(err, os.ErrNotExist) {
			break
		}
		dir = filepath.Join(base, fmt.Sprintf("%s-%d", name, i))
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("log directory: %w", err)
	}
	latest := filepath.Join(base, "latest")
	_ = os.Remove(latest)
	_ = os.Symlink(filepath.Base(dir), latest)
	return &logFiles{dir: dir, files: map[string]*os.File{}}, nil
}

func (l *logFiles) write(component, line string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	f := l.files[component]
	if f == nil {
		var err error
		f, err = os.Create(filepath.Join(l.dir, component+".log"))
		if err != nil {
			return
		}
		l.files[component] = f
	}
	_, _ = f.WriteString(line + "\n")
}

func (l *logFiles) Close() {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, f := range l.files {
		_ = f.Close()
	}
}

func lastLines(s string, n int) string {
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

func short(id string) string {
	if len(id) > 8 {
		return id[:8]
	}
	return id
}
