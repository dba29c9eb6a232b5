// Package load measures the connector under a steady stream of EventSub
// notifications: the fake Twitch (in-process) pushes channel.follow notifications
// over a real WebSocket to the connector (built from this checkout and run as a
// subprocess, so that its memory and CPU can be read from /proc), which publishes them
// to the official Pub/Sub emulator (with the Firestore emulator behind its lease and
// ledger). Each rate runs for a fixed time; every notification is then counted on a
// pull subscription of the raw topic by its EventSub message id.
//
// It also measures the functions server's start-up (process start to first request
// served) and writes the results as a Markdown table and an SVG plot.
package load

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/bitbrat/twitch-edge/infra/collect"
	"github.com/bitbrat/twitch-edge/infra/faketwitch"
	"github.com/bitbrat/twitch-edge/infra/load/opcount"
	"github.com/bitbrat/twitch-edge/infra/stack"
	"github.com/bitbrat/twitch-edge/shared/bus"
	"github.com/bitbrat/twitch-edge/shared/emulators"
	"github.com/bitbrat/twitch-edge/shared/event"
)

// Options configure a run. Zero values take the defaults in the comments.
type Options struct {
	// Rates are the notification rates per second, run in order. Default 500,
	// 1000, 2000, 5000.
	Rates []int
	// Rounds runs the whole list of rates this many times (default 1); the report
	// gives every step and the median per rate (the machine is shared: medians
	// of interleaved rounds say more than one run).
	Rounds int
	// Duration of each rate. Default 60 s.
	Duration time.Duration
	// Drain bounds the wait, after a step's last notification, for nothing more to
	// arrive. Default 30 s.
	Drain time.Duration
	// StartupRuns is how many times the functions server is started to measure its
	// start-up (the median is reported). Default 5; negative skips it.
	StartupRuns int
	// BinDir receives the built binaries. Default: a temporary directory.
	BinDir string
	// ConnectorBin runs this connector binary instead of building one from the
	// module (to compare two builds side by side, or the deployment's
	// -trimpath -ldflags="-s -w" build).
	ConnectorBin string
	// PubSubHost and FirestoreHost name emulators already running to reuse
	// ("127.0.0.1:PORT"); for each one left empty the run starts its own.
	PubSubHost, FirestoreHost string
	// ConnectorEnv are further variables for the connector (e.g. GOGC,
	// GOMEMLIMIT, CONNECTOR_BUFFER), to try settings.
	ConnectorEnv map[string]string
	// Log receives progress lines. Default: discarded.
	Log io.Writer
}

// Step is the result of one rate.
type Step struct {
	Rate int
	// Round is which pass over the rates (from 1).
	Round    int
	Duration time.Duration
	// Sent is how many notifications the fake Twitch wrote; SendTime how long that
	// took (longer than Duration when the socket could not take the rate).
	Sent     int
	SendTime time.Duration
	// Delivered are distinct notifications on the raw topic's pull subscription;
	// Duplicates were published twice; Redeliveries are the subscription's own
	// repeats (not duplicates on the topic).
	Delivered, Duplicates, Redeliveries int
	// E2E are frame built at the fake → publish accepted by the emulator
	// (the message's publishTime), per notification.
	E2EP50, E2EP99, E2EMax time.Duration
	// Conn are the connector's relay_frame_to_publish_seconds (frame read →
	// publish acknowledged), interpolated from the histogram's buckets.
	ConnP50, ConnP99 time.Duration
	// ConnObserved is how many observations that histogram gained in the step.
	ConnObserved float64
	// RSSPeak is the connector's peak resident memory during the step (VmHWM
	// after a reset, and 100 ms samples), RSSEnd at the end; bytes.
	RSSPeak, RSSEnd int64
	// RSSAnonEnd and RSSFileEnd split RSSEnd: anonymous memory (heap, stacks) and
	// file-backed pages (the binary's text and data).
	RSSAnonEnd, RSSFileEnd int64
	// CPU is the connector's user+system CPU time during the step.
	CPU float64
	// PubSubCPU and FirestoreCPU are the emulators' CPU time during the step (0
	// when a process could not be found): on 2 cores they compete with the
	// connector.
	PubSubCPU, FirestoreCPU float64
	// Firestore and PubSub are what the connector asked of each during the step,
	// counted by a gRPC proxy in front of the emulator (infra/load/opcount).
	Firestore, PubSub opcount.Counts
	// BufferFull counts the relay's waits on a full buffer; Reconnects the
	// connector's reconnects (any reason) during the step.
	BufferFull, Reconnects float64
	// LoadBefore and LoadAfter are the machine's load averages.
	LoadBefore, LoadAfter string
}

// Startup is the functions server's start-up.
type Startup struct {
	Runs int
	// Listen is process start → first HTTP response (any status); First is process
	// start → first Normalize push acknowledged (2xx), which includes building the
	// Pub/Sub and Firestore clients lazily and one publish. Medians, and every run.
	Listen, First       time.Duration
	ListenAll, FirstAll []time.Duration
}

// Report is a whole run.
type Report struct {
	Steps   []Step
	Startup *Startup
	Machine Machine
	// Command is the command line that produced the report.
	Command string
	// ConnectorEnv are the extra connector variables of the run (Options).
	ConnectorEnv map[string]string
	Started      time.Time
	Took         time.Duration
}

// The load streams follows of the first seeded viewer in the first seeded channel.
var (
	broadcasterID = faketwitch.Channels[0].ID
	followerID    = faketwitch.Viewers[0].ID
)

const rawSub = "load.raw"

// Run performs the load run.
func Run(ctx context.Context, o Options) (rep *Report, err error) {
	if len(o.Rates) == 0 {
		o.Rates = []int{500, 1000, 2000, 5000}
	}
	if o.Duration <= 0 {
		o.Duration = 60 * time.Second
	}
	if o.Rounds <= 0 {
		o.Rounds = 1
	}
	if o.Drain <= 0 {
		o.Drain = 30 * time.Second
	}
	if o.StartupRuns == 0 {
		o.StartupRuns = 5
	}
	if o.Log == nil {
		o.Log = io.Discard
	}
	logf := func(format string, args ...any) {
		fmt.Fprintf(o.Log, "%s load: %s\n", time.Now().Format("15:04:05"), fmt.Sprintf(format, args...))
	}
	rep = &Report{Started: time.Now(), Machine: ReadMachine(), ConnectorEnv: o.ConnectorEnv}
	defer func() { rep.Took = time.Since(rep.Started) }()

	root, err := stack.ModuleRoot()
	if err != nil {
		return nil, err
	}
	bin := o.BinDir
	if bin == "" {
		if bin, err = os.MkdirTemp("", "bitbrat-load-"); err != nil {
			return nil, fmt.Errorf("binary directory: %w", err)
		}
		defer os.RemoveAll(bin)
	}
	logf("building the connector and the functions server")
	var bins []stack.Binary
	if o.ConnectorBin == "" {
		bins = append(bins, stack.Connector)
	}
	if o.StartupRuns > 0 {
		bins = append(bins, stack.Functions)
	}
	if err := stack.Build(ctx, root, bin, bins...); err != nil {
		return nil, err
	}
	connBin, fnBin := filepath.Join(bin, stack.Connector.Name), filepath.Join(bin, stack.Functions.Name)
	if o.ConnectorBin != "" {
		connBin = o.ConnectorBin
	}

	emus, stopEmus, err := startEmulators(ctx, o.PubSubHost, o.FirestoreHost)
	if err != nil {
		return nil, err
	}
	defer stopEmus()
	logf("emulators: pubsub %s, firestore %s", emus[emulators.PubSub], emus[emulators.Firestore])

	// The connector reaches each emulator through a counting proxy; the harness's
	// own pulls go direct and are not counted.
	var px [2]*opcount.Proxy
	for i, k := range []emulators.Kind{emulators.PubSub, emulators.Firestore} {
		if px[i], err = opcount.Start(emus[k]); err != nil {
			return nil, err
		}
		defer px[i].Close()
	}

	project := fmt.Sprintf("load-%d", time.Now().Unix())
	ps, err := bus.NewClient(ctx, project, bus.WithEmulator(emus[emulators.PubSub]))
	if err != nil {
		return nil, err
	}
	defer ps.Close()
	raw := event.TopicEventSubRaw
	if err := bus.EnsureTopics(ctx, ps, raw); err != nil {
		return nil, err
	}
	if err := bus.EnsureSubscription(ctx, ps, bus.SubscriptionSpec{Name: rawSub, Topic: raw, AckDeadline: 60 * time.Second}); err != nil {
		return nil, err
	}

	fake, err := faketwitch.Start(faketwitch.Options{})
	if err != nil {
		return nil, err
	}
	defer fake.Close()
	tw := fake.Twitch

	port, err := freePort()
	if err != nil {
		return nil, err
	}
	connURL := "http://127.0.0.1:" + strconv.Itoa(port)
	vars := map[string]string{
		"PUBSUB_EMULATOR_HOST": px[0].Addr, "FIRESTORE_EMULATOR_HOST": px[1].Addr,
		"GOOGLE_CLOUD_PROJECT": project, "PORT": strconv.Itoa(port), "CONNECTOR_INSTANCE_ID": "load-connector",
		"TWITCH_CLIENT_ID": tw.ClientID(), "TWITCH_BOT_USER_ID": faketwitch.BotID, "TWITCH_BOT_ACCESS_TOKEN": fake.BotToken().AccessToken,
		"TWITCH_CHANNELS": broadcasterID, "TWITCH_API_BASE_URL": tw.APIBaseURL(), "TWITCH_AUTH_BASE_URL": tw.AuthBaseURL(),
		"TWITCH_EVENTSUB_WS_URL": tw.EventSubWSURL(),
	}
	for k, v := range o.ConnectorEnv {
		vars[k] = v
	}
	conn := stack.NewProcess("connector", connBin, stack.ChildEnv(vars), nil)
	if err := conn.Start(); err != nil {
		return nil, err
	}
	defer conn.Stop(syscall.SIGTERM, 15*time.Second)
	hc := &http.Client{Timeout: 5 * time.Second}
	if err := stack.WaitHTTP(ctx, hc, connURL+"/readyz", 90*time.Second, conn.Exited(), func(c int) bool { return c == http.StatusOK }); err != nil {
		return nil, fmt.Errorf("connector not ready: %w\n--- connector output ---\n%s", err, lastLines(conn.LogTail(), 30))
	}
	logf("connector ready (pid %d)", conn.PID())

	emuPIDs := [2]int{}
	for i, k := range []emulators.Kind{emulators.PubSub, emulators.Firestore} {
		if emuPIDs[i], err = ListenerPID(emus[k]); err != nil {
			logf("%v: the %s emulator's CPU time is not reported", err, k)
		}
	}
	col := collect.NewNotifications(stepOf)
	rctx, stopReceive := context.WithCancel(ctx)
	var rwg sync.WaitGroup
	rwg.Add(1)
	go func() {
		defer rwg.Done()
		col.Receive(rctx, ps, rawSub, func(err error) { logf("pull %s: %v (retrying)", rawSub, err) })
	}()
	defer func() { stopReceive(); rwg.Wait() }()

	evt, err := json.Marshal(tw.FollowEvent(broadcasterID, followerID, time.Now()))
	if err != nil {
		return nil, fmt.Errorf("follow event: %w", err)
	}
	for round := range o.Rounds {
		for i, rate := range o.Rates {
			if err := ctx.Err(); err != nil {
				return rep, err
			}
			// The step number is in the message ids: unique across rounds.
			st, err := runStep(ctx, round*len(o.Rates)+i, rate, o, tw, json.RawMessage(evt), conn, emuPIDs, px, connURL, hc, col, logf)
			if err != nil {
				return rep, fmt.Errorf("rate %d/s: %w", rate, err)
			}
			st.Round = round + 1
			rep.Steps = append(rep.Steps, st)
			logf("round %d, rate %d/s: sent %d in %s, delivered %d, duplicates %d, e2e p50 %s p99 %s, connector p50 %s p99 %s, RSS peak %.1f MB, CPU %.1f s (%.1f µs per notification); firestore %s; pubsub %s",
				round+1, rate, st.Sent, st.SendTime.Round(time.Millisecond), st.Delivered, st.Duplicates, ms(st.E2EP50), ms(st.E2EP99),
				ms(st.ConnP50), ms(st.ConnP99), mb(st.RSSPeak), st.CPU, st.CPUPerNotification(), st.Firestore, st.PubSub)
			select { // let the machine settle between steps
			case <-ctx.Done():
			case <-time.After(3 * time.Second):
			}
		}
	}
	conn.Stop(syscall.SIGTERM, 15*time.Second)

	if o.StartupRuns > 0 {
		logf("measuring the functions server's start-up, %d runs", o.StartupRuns)
		su, err := MeasureStartup(ctx, fnBin, project, emus, ps, o.StartupRuns)
		if err != nil {
			return rep, fmt.Errorf("functions start-up: %w", err)
		}
		rep.Startup = su
		logf("functions start-up: listening after %s, first Normalize served after %s (medians)", ms(su.Listen), ms(su.First))
	}
	return rep, nil
}

// messageID builds the EventSub message id of notification seq of step: a UUID
// whose first group is the step, so that the collector can attribute it.
func messageID(step, seq int) string {
	return fmt.Sprintf("%08x-0000-4000-8000-%012x", step, seq)
}

func stepOf(id string) int {
	if len(id) < 8 {
		return -1
	}
	n, err := strconv.ParseUint(id[:8], 16, 32)
	if err != nil {
		return -1
	}
	return int(n)
}

// Quantile returns quantile q (0..1) of ds (nearest rank).
func Quantile(ds []time.Duration, q float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	i := int(q*float64(len(s))+0.5) - 1
	return s[min(max(i, 0), len(s)-1)]
}

// startEmulators starts the Pub/Sub and Firestore emulators not given (a host of
// one already running) and returns their hosts and a stop function.
func startEmulators(ctx context.Context, pubsubHost, firestoreHost string) (map[emulators.Kind]string, func(), error) {
	hosts := map[emulators.Kind]string{}
	want := map[emulators.Kind]string{}
	for k, h := range map[emulators.Kind]string{emulators.PubSub: pubsubHost, emulators.Firestore: firestoreHost} {
		if h != "" {
			hosts[k] = h
		} else {
			want[k] = ""
		}
	}
	started, err := emulators.StartAll(ctx, want)
	if err != nil {
		return nil, nil, err
	}
	for k, e := range started {
		hosts[k] = e.Host
	}
	stop := func() {
		for _, e := range started {
			e.Stop()
		}
	}
	return hosts, stop, nil
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

func ms(d time.Duration) string { return fmt.Sprintf("%.1f ms", float64(d)/float64(time.Millisecond)) }

func mb(b int64) float64 { return float64(b) / (1 << 20) }
