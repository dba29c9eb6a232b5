// Package soak runs the fault script: during a sustained stream of EventSub
// notifications through the whole local pipeline (infra/stack: the official Pub/Sub
// and Firestore emulators, the connector and the functions server as subprocesses,
// the fake Twitch in-process), it injects every fault the connector must survive —
// session_reconnect every 30 s, keepalive silence, an abrupt TCP drop, a Pub/Sub
// emulator pause and restart, a Firestore emulator restart, duplicate and stale
// frames, a connector restart (SIGTERM with publishes pending) — and then counts.
//
// What is counted, precisely:
//
//   - Expected: every notification the fake Twitch wrote to an open socket. Before a
//     fault that cuts the socket (silence, drop, connector restart, and the Pub/Sub
//     restart that discards topics) the stream is paused until what was sent has been
//     read, so that nothing is in flight in the fake's send queue when the socket
//     ends: Twitch itself gives no guarantee for a frame in flight on a dying socket,
//     and it disables the subscriptions, so nothing is sent until the connector has
//     subscribed again (the few notifications the fake could not deliver for want of
//     an enabled subscription are reported and not expected). session_reconnect, the
//     Pub/Sub pause and the Firestore restart happen with the stream running.
//   - Delivered: distinct EventSub message ids on a pull subscription of the raw
//     topic. Lost = expected and not delivered. Pub/Sub keeps no message published to
//     a topic that has no subscription, and a restarted emulator has neither: so
//     before the Pub/Sub restart everything expected must already be on the pull
//     subscription, and the topology is re-created before the stream resumes.
//   - Duplicates: an EventSub message id published twice (a second Pub/Sub message
//     id). Redeliveries by the pull subscription itself are reported, not counted.
//   - Egress: each egress event published must reach the fake Helix exactly once (a
//     whisper or a chat message with its text), be recorded SENT on
//     events/{correlationId}, and appear exactly once on the finalize topic.
package soak

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/bitbrat/twitch-edge/infra/faketwitch"
	"github.com/bitbrat/twitch-edge/infra/load"
	"github.com/bitbrat/twitch-edge/infra/stack"
	"github.com/bitbrat/twitch-edge/shared/bus"
	"github.com/bitbrat/twitch-edge/shared/emulators"
	"github.com/bitbrat/twitch-edge/shared/event"
	"github.com/bitbrat/twitch-edge/shared/twitch/twitchtest"
)

// Options configure a soak run. Zero values take the defaults in the comments.
type Options struct {
	// Short runs the CI version: shorter gaps between faults (2 s instead of 15 s),
	// 3 egress events of each kind instead of 10. Well under 3 minutes.
	Short bool
	// Rate is the notification rate per second. Default 50 (short) or 100.
	Rate int
	// ReconnectEvery is the session_reconnect period. Default 30 s.
	ReconnectEvery time.Duration
	// BinDir receives the built binaries. Default: a temporary directory.
	BinDir string
	// Log receives progress lines. Default: discarded.
	Log io.Writer
	// Output receives the components' log lines. Default: discarded.
	Output func(component, line string)
}

// Phase is one step of the script.
type Phase struct {
	Name string
	Took time.Duration
	Note string
}

// Egress is the outcome of one egress event.
type Egress struct {
	CorrelationID, Kind string
	// Deliveries at the fake Helix with the event's text; Finalized messages on the
	// finalize topic with its correlation id; Status on events/{correlationId}.
	Deliveries, Finalized int
	Status                string
	Updates               int64
}

// OK reports exactly one delivery and one finalize, recorded SENT.
func (e Egress) OK() bool {
	return e.Deliveries == 1 && e.Finalized == 1 && e.Status == event.StatusSent
}

// Result are the counts.
type Result struct {
	Expected, Delivered          int
	Missing                      []string
	Duplicates, Redeliveries     int
	DuplicateFrames, StaleFrames int
	StaleForwarded               int
	NoSubscription               int
	Reconnects                   int
	Egress                       []Egress
	Phases                       []Phase
	Took                         time.Duration
	ConnectorRestarts            int
	// PendingAtRestart is how many notifications the connector had read but not
	// yet published when it was told to stop (its counters, just before SIGTERM).
	PendingAtRestart int
	// DroppedDuplicates and DroppedStale are the connector's own counters at the
	// end (since its restart, which precedes the duplicate and stale frames).
	DroppedDuplicates, DroppedStale int
}

// OK reports no loss, no duplicate, no stale frame forwarded and every egress event
// delivered and finalized exactly once.
func (r *Result) OK() bool {
	if len(r.Missing) > 0 || r.Duplicates > 0 || r.StaleForwarded > 0 || r.Expected == 0 || r.Delivered < r.Expected {
		return false
	}
	for _, e := range r.Egress {
		if !e.OK() {
			return false
		}
	}
	return true
}

// String prints the counts.
func (r *Result) String() string {
	var b strings.Builder
	row := func(what string, v any, note string) { fmt.Fprintf(&b, "  %-64s %8v  %s\n", what, v, note) }
	b.WriteString("soak counts\n")
	row("notifications Twitch delivered while a socket was open", r.Expected, "(expected on the raw topic)")
	row("on the raw topic (distinct EventSub message ids)", r.Delivered, "")
	row("lost (expected, not on the raw topic)", len(r.Missing), mark(len(r.Missing) == 0))
	row("published twice (same message id, second Pub/Sub message)", r.Duplicates, mark(r.Duplicates == 0))
	row("redelivered by the pull subscription (not duplicates)", r.Redeliveries, "")
	row("duplicate frames sent (same message_id, before and after restart)", r.DuplicateFrames, "must not be forwarded again")
	row("stale frames sent (message_timestamp 11 min old)", r.StaleFrames, "")
	row("stale frames forwarded", r.StaleForwarded, mark(r.StaleForwarded == 0))
	row("connector's counters: duplicates dropped / stale dropped", fmt.Sprintf("%d/%d", r.DroppedDuplicates, r.DroppedStale), "")
	row("read but unpublished when the connector got SIGTERM", r.PendingAtRestart, "(flushed before exit)")
	row("not sent by Twitch: no enabled subscription at the time", r.NoSubscription, "(not expected)")
	row("session_reconnect messages sent", r.Reconnects, "")
	okE := 0
	for _, e := range r.Egress {
		if e.OK() {
			okE++
		}
	}
	row("egress events published", len(r.Egress), "")
	row("egress events delivered once, finalized once, recorded SENT", okE, mark(okE == len(r.Egress)))
	for _, e := range r.Egress {
		if !e.OK() {
			row("  "+e.Kind+" "+e.CorrelationID, fmt.Sprintf("%d/%d", e.Deliveries, e.Finalized), "deliveries/finalized, status "+e.Status)
		}
	}
	if len(r.Missing) > 0 {
		n := min(len(r.Missing), 10)
		fmt.Fprintf(&b, "  first lost: %s\n", strings.Join(r.Missing[:n], ", "))
	}
	b.WriteString("phases\n")
	for _, p := range r.Phases {
		fmt.Fprintf(&b, "  %-44s %8s  %s\n", p.Name, p.Took.Round(100*time.Millisecond), p.Note)
	}
	fmt.Fprintf(&b, "total %s: %s\n", r.Took.Round(time.Second), map[bool]string{true: "PASS", false: "FAIL"}[r.OK()])
	return b.String()
}

func mark(ok bool) string {
	if ok {
		return "ok"
	}
	return "FAIL"
}

// Run runs the script and returns the counts. An error means the script could not
// run (or a fault could not be injected); loss and duplicates are in the Result.
func Run(ctx context.Context, o Options) (res *Result, err error) {
	if o.Rate <= 0 {
		o.Rate = 100
		if o.Short {
			o.Rate = 50
		}
	}
	if o.ReconnectEvery <= 0 {
		o.ReconnectEvery = 30 * time.Second
	}
	if o.Log == nil {
		o.Log = io.Discard
	}
	gap, egressN := 15*time.Second, 10
	if o.Short {
		gap, egressN = 2*time.Second, 3
	}
	begin := time.Now()
	logf := func(format string, args ...any) {
		fmt.Fprintf(o.Log, "%s soak: %s\n", time.Now().Format("15:04:05"), fmt.Sprintf(format, args...))
	}
	res = &Result{}
	defer func() { res.Took = time.Since(begin) }()

	// Own emulators, so that they can be paused and restarted.
	emus := map[emulators.Kind]*emulators.Emulator{}
	restoreEnv := map[string]string{}
	defer func() {
		for _, e := range emus {
			e.Stop()
		}
		for k, v := range restoreEnv {
			if v == "" {
				os.Unsetenv(k)
			} else {
				os.Setenv(k, v)
			}
		}
	}()
	started, err := emulators.StartAll(ctx, map[emulators.Kind]string{emulators.PubSub: "", emulators.Firestore: ""})
	if err != nil {
		return res, err
	}
	for k, e := range started {
		emus[k] = e
	}
	for k, e := range emus {
		restoreEnv[k.EnvVar()] = os.Getenv(k.EnvVar())
		os.Setenv(k.EnvVar(), e.Host)
	}
	psEmu, fsEmu := emus[emulators.PubSub], emus[emulators.Firestore]

	logf("starting the stack (build, functions server, connector)")
	st, err := stack.Start(ctx, stack.Options{
		Project:         fmt.Sprintf("soak-%d", time.Now().Unix()),
		UseEnvEmulators: true,
		BinDir:          o.BinDir,
		FakeTwitch:      faketwitch.Options{ReconnectGrace: 2 * time.Second},
		Output:          o.Output,
		MinBackoff:      500 * time.Millisecond,
		MaxBackoff:      5 * time.Second,
		ConnectorEnv:    map[string]string{"EVENTSUB_KEEPALIVE_GRACE": "250ms"},
	})
	if err != nil {
		return res, fmt.Errorf("start the stack: %w", err)
	}
	defer st.Stop()
	stopSignals := st.StopOnSignal()
	defer stopSignals()
	tw := st.Fake.Twitch
	logf("stack ready after %s", time.Since(begin).Round(100*time.Millisecond))

	col := load.NewCollector(nil)
	fin := newFinalizeCollector()
	bg, stopBG := context.WithCancel(ctx)
	var bgwg sync.WaitGroup
	defer func() { stopBG(); bgwg.Wait() }()
	bgwg.Add(2)
	go func() {
		defer bgwg.Done()
		col.Receive(bg, st.PubSub, st.Subs.WatchRaw, func(err error) { logf("pull raw: %v (retrying)", err) })
	}()
	go func() {
		defer bgwg.Done()
		for bg.Err() == nil {
			if err := st.Watch(bg, st.Subs.WatchFinalize, fin.add); err != nil {
				logf("pull finalize: %v (retrying)", err)
			}
			select {
			case <-bg.Done():
			case <-time.After(500 * time.Millisecond):
			}
		}
	}()

	s := newStream(tw, o.Rate)
	bgwg.Add(1)
	go func() { defer bgwg.Done(); s.run(bg) }()

	// faultMu keeps the periodic session_reconnect out of the faults that need one
	// settled session.
	var faultMu sync.Mutex
	reconnects := 0
	bgwg.Add(1)
	go func() {
		defer bgwg.Done()
		t := time.NewTicker(o.ReconnectEvery)
		defer t.Stop()
		for {
			select {
			case <-bg.Done():
				return
			case <-t.C:
			}
			faultMu.Lock()
			if id, ok := newestSession(tw); ok {
				if _, err := tw.Reconnect(id); err == nil {
					reconnects++
					logf("session_reconnect sent on %s", id)
				}
			}
			faultMu.Unlock()
		}
	}()

	readReconnects := func() int {
		faultMu.Lock()
		defer faultMu.Unlock()
		return reconnects
	}
	h := &harness{st: st, tw: tw, col: col, s: s, logf: logf}
	hc := &http.Client{Timeout: 5 * time.Second}
	phase := func(name string, fn func() (string, error)) error {
		if err := s.Err(); err != nil {
			return err
		}
		logf("phase: %s", name)
		start := time.Now()
		note, err := fn()
		res.Phases = append(res.Phases, Phase{Name: name, Took: time.Since(start), Note: note})
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		return nil
	}
	sleep := func(d time.Duration) {
		select {
		case <-ctx.Done():
		case <-time.After(d):
		}
	}
	disruptive := func(name string, fn func() (string, error)) error {
		faultMu.Lock()
		defer faultMu.Unlock()
		return phase(name, func() (string, error) {
			s.Pause()
			if err := h.drain(ctx, 60*time.Second); err != nil {
				return "", err
			}
			note, err := fn()
			if err == nil {
				s.Resume(name)
			}
			return note, err
		})
	}

	var fsRestarted, connRestart time.Time
	steps := []func() error{
		func() error {
			return phase("stream", func() (string, error) {
				s.Resume("stream")
				sleep(gap + time.Second)
				return fmt.Sprintf("%d/s", o.Rate), nil
			})
		},
		func() error {
			return phase("pubsub emulator paused (SIGSTOP) 5 s, stream on", func() (string, error) {
				if err := psEmu.Pause(); err != nil {
					return "", fmt.Errorf("pause: %w", err)
				}
				sleep(5 * time.Second)
				if err := psEmu.Resume(); err != nil {
					return "", fmt.Errorf("resume: %w", err)
				}
				sleep(gap)
				return "", nil
			})
		},
		func() error {
			return phase("firestore emulator restarted, stream on", func() (string, error) {
				if err := fsEmu.Restart(ctx); err != nil {
					return "", err
				}
				if err := faketwitch.SeedBotToken(ctx, st.Firestore, st.Fake.BotToken()); err != nil {
					return "", err
				}
				fsRestarted = time.Now()
				sleep(gap)
				return "all data lost; bot token re-seeded", nil
			})
		},
		func() error {
			return disruptive("keepalive silence", func() (string, error) {
				id, err := h.settledSession(ctx)
				if err != nil {
					return "", err
				}
				if err := tw.Silence(id); err != nil {
					return "", err
				}
				t0 := time.Now()
				if err := h.waitNewSession(ctx, id, 40*time.Second); err != nil {
					return "", err
				}
				return fmt.Sprintf("new session subscribed %s after the silence began", time.Since(t0).Round(100*time.Millisecond)), nil
			})
		},
		func() error { sleep(gap); return nil },
		func() error {
			return disruptive("abrupt TCP drop", func() (string, error) {
				id, err := h.settledSession(ctx)
				if err != nil {
					return "", err
				}
				if err := tw.Drop(id); err != nil {
					return "", err
				}
				t0 := time.Now()
				if err := h.waitNewSession(ctx, id, 40*time.Second); err != nil {
					return "", err
				}
				return fmt.Sprintf("resubscribed after %s", time.Since(t0).Round(100*time.Millisecond)), nil
			})
		},
		func() error { sleep(gap); return nil },
		func() error {
			return disruptive("pubsub emulator restarted", func() (string, error) {
				t0 := time.Now()
				if err := psEmu.Restart(ctx); err != nil {
					return "", err
				}
				if err := st.EnsureTopology(ctx); err != nil {
					return "", err
				}
				return fmt.Sprintf("topics and subscriptions re-created after %s", time.Since(t0).Round(100*time.Millisecond)), nil
			})
		},
		func() error { sleep(gap + 2*time.Second); return nil },
		func() error {
			faultMu.Lock()
			defer faultMu.Unlock()
			return phase("connector restart (SIGTERM with publishes pending)", func() (string, error) {
				if _, err := h.settledSession(ctx); err != nil {
					return "", err
				}
				// Pub/Sub hangs: the relay buffers; then the socket goes quiet and
				// the connector is told to stop while holding unpublished frames.
				if err := psEmu.Pause(); err != nil {
					return "", err
				}
				sleep(2 * time.Second)
				s.Pause()
				sleep(500 * time.Millisecond)
				if m, err := load.Scrape(ctx, hc, st.ConnectorURL+"/metrics"); err == nil {
					res.PendingAtRestart = int(m.Get("eventsub_notifications_total") - m.Get("relay_published_total"))
				}
				connRestart = time.Now()
				resumed := make(chan error, 1)
				go func() { time.Sleep(1500 * time.Millisecond); resumed <- psEmu.Resume() }()
				t0 := time.Now()
				err := st.RestartConnector(ctx)
				if rerr := <-resumed; rerr != nil && err == nil {
					err = rerr
				}
				if err != nil {
					return "", err
				}
				res.ConnectorRestarts++
				s.Resume("after connector restart")
				return fmt.Sprintf("%d unpublished at SIGTERM; stopped, flushed, restarted and ready in %s",
					res.PendingAtRestart, time.Since(t0).Round(100*time.Millisecond)), nil
			})
		},
		func() error {
			return phase("duplicate and stale frames", func() (string, error) {
				sleep(2 * time.Second)
				n, err := h.duplicates(ctx, fsRestarted, connRestart, 10)
				res.DuplicateFrames = n
				if err != nil {
					return "", err
				}
				stale, err := h.stale(10)
				res.StaleFrames = len(stale)
				h.staleIDs = stale
				if err != nil {
					return "", err
				}
				sleep(gap)
				return fmt.Sprintf("%d duplicates, %d stale", n, len(stale)), nil
			})
		},
		func() error {
			return phase("egress events (dm and chat), stream on", func() (string, error) {
				eg, err := h.egress(ctx, fin, egressN)
				res.Egress = eg
				return fmt.Sprintf("%d events", len(eg)), err
			})
		},
		func() error {
			return phase("drain", func() (string, error) {
				s.Pause()
				faultMu.Lock() // no reconnect while counting
				defer faultMu.Unlock()
				err := h.drain(ctx, 60*time.Second)
				sleep(2 * time.Second) // late duplicates
				if m, merr := load.Scrape(ctx, hc, st.ConnectorURL+"/metrics"); merr == nil {
					res.DroppedDuplicates = int(m.Get("eventsub_duplicates_dropped_total"))
					res.DroppedStale = int(m.Get("eventsub_stale_dropped_total"))
				}
				return "", err
			})
		},
	}
	for _, step := range steps {
		if err := ctx.Err(); err != nil {
			return res, err
		}
		if err := step(); err != nil {
			h.count(res, s, readReconnects())
			return res, err
		}
	}
	h.count(res, s, readReconnects())
	return res, s.Err()
}

type harness struct {
	st       *stack.Stack
	tw       *twitchtest.Server
	col      *load.Collector
	s        *stream
	logf     func(string, ...any)
	staleIDs []string
}

func (h *harness) count(res *Result, s *stream, reconnects int) {
	sentList := s.Sent()
	res.Expected = len(sentList)
	res.Missing = nil
	for _, x := range sentList {
		if !h.col.Has(x.id) {
			res.Missing = append(res.Missing, x.id)
		}
	}
	all := h.col.All()
	res.Delivered = all.Distinct
	res.Duplicates, res.Redeliveries = all.Duplicates, all.Redeliveries
	res.StaleForwarded = 0
	for _, id := range h.staleIDs {
		if h.col.Has(id) {
			res.StaleForwarded++
		}
	}
	// A stale frame that was forwarded is also counted in Delivered; keep Delivered
	// to what was expected and the excess visible.
	res.NoSubscription = s.NoSubscription()
	res.Reconnects = reconnects
}

// drain waits until every notification sent so far is on the raw topic, or
// timeout passes without progress.
func (h *harness) drain(ctx context.Context, timeout time.Duration) error {
	last, lastChange := -1, time.Now()
	for {
		missing := 0
		for _, x := range h.s.Sent() {
			if !h.col.Has(x.id) {
				missing++
			}
		}
		if missing == 0 {
			return nil
		}
		if missing != last {
			last, lastChange = missing, time.Now()
		} else if time.Since(lastChange) > timeout {
			return fmt.Errorf("%d notifications still not on the raw topic after %s without progress", missing, timeout)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// wantSubs is the number of subscriptions the connector keeps: channel.follow and
// channel.update for each seeded channel.
var wantSubs = 2 * len(faketwitch.Channels)

func newestSession(tw *twitchtest.Server) (string, bool) {
	ss := tw.Sessions()
	for i := len(ss) - 1; i >= 0; i-- {
		if !ss[i].Reconnecting && ss[i].Subscriptions > 0 {
			return ss[i].ID, true
		}
	}
	return "", false
}

// settledSession waits until exactly one socket is live and holds every
// subscription (no session_reconnect hand-over in progress) and returns it.
func (h *harness) settledSession(ctx context.Context) (string, error) {
	var id string
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	err := h.tw.Wait(ctx, func() bool {
		ss := h.tw.Sessions()
		if len(ss) == 1 && !ss[0].Reconnecting && ss[0].Subscriptions == wantSubs {
			id = ss[0].ID
			return true
		}
		return false
	})
	if err != nil {
		return "", fmt.Errorf("no settled session: %+v: %w", h.tw.Sessions(), err)
	}
	return id, nil
}

// waitNewSession waits until old is gone and another session holds every
// subscription, then for the connector's /readyz.
func (h *harness) waitNewSession(ctx context.Context, old string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	err := h.tw.Wait(ctx, func() bool {
		for _, x := range h.tw.Sessions() {
			if x.ID != old && x.Subscriptions == wantSubs {
				return true
			}
		}
		return false
	})
	if err != nil {
		return fmt.Errorf("the connector did not subscribe on a new session within %s: %+v: %w", timeout, h.tw.Sessions(), err)
	}
	return h.st.WaitConnectorReady(ctx)
}

// duplicates sends n byte-identical redeliveries of notifications forwarded on the
// current session, and n notifications reusing the message ids of notifications the
// previous connector process forwarded (after the Firestore restart, so that its
// idempotency ledger holds them): the restarted connector must forward none.
func (h *harness) duplicates(ctx context.Context, fsRestarted, connRestart time.Time, n int) (int, error) {
	var current, previous []string
	for _, x := range h.s.Sent() {
		switch {
		case x.phase == "after connector restart":
			current = append(current, x.id)
		case x.at.After(fsRestarted.Add(time.Second)) && x.at.Before(connRestart.Add(-2*time.Second)):
			previous = append(previous, x.id)
		}
	}
	if len(current) < n || len(previous) < n {
		return 0, fmt.Errorf("too few notifications to repeat (%d current, %d previous)", len(current), len(previous))
	}
	current, previous = current[:n], previous[len(previous)-n:]
	// The originals must have been forwarded before the repeats are sent.
	for _, id := range current {
		if err := h.waitHas(ctx, id); err != nil {
			return 0, err
		}
	}
	sentN := 0
	for _, id := range current {
		if err := h.tw.Redeliver(id); err != nil {
			return sentN, fmt.Errorf("redeliver %s: %w", id, err)
		}
		sentN++
	}
	ch := faketwitch.Channels[0]
	for _, id := range previous {
		_, err := h.tw.Notify(twitchtest.Notification{Type: "channel.follow", MessageID: id,
			Condition: map[string]string{"broadcaster_user_id": ch.ID},
			Event:     h.tw.FollowEvent(ch.ID, faketwitch.Viewers[0].ID, time.Now())})
		if err != nil {
			return sentN, fmt.Errorf("repeat %s: %w", id, err)
		}
		sentN++
	}
	return sentN, nil
}

func (h *harness) waitHas(ctx context.Context, id string) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	for !h.col.Has(id) {
		select {
		case <-ctx.Done():
			return fmt.Errorf("notification %s never reached the raw topic: %w", id, ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
	return nil
}

// stale sends n notifications whose message_timestamp is 11 minutes old.
func (h *harness) stale(n int) ([]string, error) {
	var ids []string
	ch := faketwitch.Channels[1]
	for i := 0; i < n; i++ {
		id := uuid.NewString()
		_, err := h.tw.Notify(twitchtest.Notification{Type: "channel.follow", MessageID: id,
			Timestamp: time.Now().Add(-11 * time.Minute),
			Condition: map[string]string{"broadcaster_user_id": ch.ID},
			Event:     h.tw.FollowEvent(ch.ID, faketwitch.Viewers[1].ID, time.Now().Add(-11*time.Minute))})
		if err != nil {
			return ids, fmt.Errorf("stale notification: %w", err)
		}
		ids = append(ids, id)
	}
	return ids, nil
}

// egress publishes n dm and n chat egress events, waits for each to be recorded, and
// counts deliveries and finalize messages.
func (h *harness) egress(ctx context.Context, fin *finalizeCollector, n int) ([]Egress, error) {
	type pending struct {
		e    *event.InternalEventV2
		text string
	}
	var ps []pending
	for i := 0; i < 2*n; i++ {
		kind, ch := "dm", faketwitch.Channels[0]
		if i%2 == 1 {
			kind, ch = "chat", faketwitch.Channels[1]
		}
		v := faketwitch.Viewers[i%len(faketwitch.Viewers)]
		text := fmt.Sprintf("soak %s %d %s", kind, i, uuid.NewString()[:8])
		e := &event.InternalEventV2{
			V: "1", Source: "soak", CorrelationID: uuid.NewString(), Type: "llm.bot.response.v1",
			Channel: "#" + ch.Login, UserID: v.ID,
			Egress: &event.Egress{Destination: h.st.Topics.Egress, Type: kind},
			Candidates: []event.CandidateV1{{
				ID: "c-" + uuid.NewString(), Kind: "text", Source: "soak", CreatedAt: event.Timestamp(time.Now()),
				Status: "proposed", Priority: 1, Text: `"` + text + `"`,
			}},
		}
		if err := h.st.PublishEgress(ctx, e); err != nil {
			return nil, fmt.Errorf("publish egress: %w", err)
		}
		ps = append(ps, pending{e, text})
		time.Sleep(200 * time.Millisecond) // whisper limits are per second
	}
	wctx, cancel := context.WithTimeout(ctx, 90*time.Second)
	defer cancel()
	out := make([]Egress, len(ps))
	for i, p := range ps {
		out[i] = Egress{CorrelationID: p.e.CorrelationID, Kind: p.e.Egress.Type}
		for wctx.Err() == nil {
			o, ok, err := h.st.Outcome(wctx, p.e.CorrelationID)
			if err == nil && ok && o.Delivery.Status != "" && fin.count(p.e.CorrelationID) > 0 {
				out[i].Status, out[i].Updates = o.Delivery.Status, o.UpdateCount
				break
			}
			select {
			case <-wctx.Done():
			case <-time.After(200 * time.Millisecond):
			}
		}
	}
	time.Sleep(3 * time.Second) // let a second delivery or finalize show up, if any
	for i, p := range ps {
		out[i].Finalized = fin.count(p.e.CorrelationID)
		if o, ok, err := h.st.Outcome(ctx, p.e.CorrelationID); err == nil && ok {
			out[i].Status, out[i].Updates = o.Delivery.Status, o.UpdateCount
		}
		if p.e.Egress.Type == "dm" {
			for _, w := range h.tw.Whispers() {
				if w.Message == p.text {
					out[i].Deliveries++
				}
			}
		} else {
			for _, m := range h.tw.ChatMessages() {
				if m.Message == p.text && m.IsSent {
					out[i].Deliveries++
				}
			}
		}
	}
	return out, nil
}

// finalizeCollector counts distinct finalize messages per correlation id.
type finalizeCollector struct {
	mu   sync.Mutex
	byID map[string]map[string]bool
}

func newFinalizeCollector() *finalizeCollector {
	return &finalizeCollector{byID: map[string]map[string]bool{}}
}

func (f *finalizeCollector) add(r bus.Received) {
	cid := r.Attributes[event.AttrCorrelationID]
	if cid == "" {
		var v struct {
			CorrelationID string `json:"correlationId"`
		}
		_ = json.Unmarshal(r.Data, &v)
		cid = v.CorrelationID
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.byID[cid] == nil {
		f.byID[cid] = map[string]bool{}
	}
	f.byID[cid][r.ID] = true
}

func (f *finalizeCollector) count(cid string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.byID[cid])
}
