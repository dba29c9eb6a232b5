package soak

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/bitbrat/twitch-edge/infra/collect"
	"github.com/bitbrat/twitch-edge/infra/faketwitch"
	"github.com/bitbrat/twitch-edge/infra/load"
	"github.com/bitbrat/twitch-edge/infra/stack"
	"github.com/bitbrat/twitch-edge/shared/bus"
	"github.com/bitbrat/twitch-edge/shared/emulators"
)

// kind is how a step relates to the stream of notifications.
type kind int

const (
	// streamOn: the fault happens with the stream running (Twitch keeps sending).
	streamOn kind = iota
	// cutsSocket: the stream is paused and drained first, so that nothing is in
	// flight in the fake's send queue when the socket ends, and resumed after.
	cutsSocket
	// settled: the step runs with the periodic session_reconnect held off.
	settled
	// pause: a gap between faults, not reported as a phase.
	pause
)

// step is one named step of the script.
type step struct {
	name string
	kind kind
	run  func(*script) (note string, err error)
}

// steps is the fault script, in order. Each fault is its own method of script.
var steps = []step{
	{"stream", streamOn, (*script).stream},
	// The Firestore restart first: the emulator loses its data, as Firestore never
	// does, and later steps leave frames in the relay's spill for a while.
	{"firestore emulator restarted, stream on", streamOn, (*script).restartFirestore},
	{"pubsub emulator paused (SIGSTOP) 5 s, stream on", streamOn, (*script).pausePubSub},
	{"keepalive silence", cutsSocket, (*script).silence},
	{"gap", pause, (*script).gap},
	{"abrupt TCP drop", cutsSocket, (*script).drop},
	{"gap", pause, (*script).gap},
	{"pubsub emulator restarted", cutsSocket, (*script).restartPubSub},
	{"gap", pause, (*script).longGap},
	{"pubsub frozen past the relay buffer (spill), stream on", streamOn, (*script).pubSubPastBuffer},
	{"gap", pause, (*script).gap},
	{stepRestartPending, settled, (*script).restartConnector},
	{"duplicate and stale frames", streamOn, (*script).duplicateAndStale},
	{stepFirestoreFrozen, cutsSocket, (*script).firestoreFrozenRenewal},
	{"gap", pause, (*script).gap},
	{stepSigtermFrozen, settled, (*script).sigtermPubSubFrozen},
	{"gap", pause, (*script).gap},
	{stepHandOff, settled, (*script).handOff},
	{"egress events (dm and chat), stream on", streamOn, (*script).egress},
	{"egress: lost Helix answers (chat, whisper), stream on", streamOn, (*script).lostAnswers},
	{"egress: two instances under a burst, stream on", streamOn, (*script).burstTwoInstances},
	{"drain", streamOn, (*script).drain},
}

// Step names other code refers to (stream phases).
const (
	stepFirestoreFrozen = "firestore frozen across lease renewals (fencing)"
	stepSigtermFrozen   = "SIGTERM with pubsub frozen, then restart (spill replays)"
	stepHandOff         = "deploy-style hand-off, stream on"
	stepRestartPending  = "connector restart (SIGTERM with publishes pending)"
)

// script is one run of the fault script: the stack, the stream, what is counted.
type script struct {
	ctx          context.Context
	o            Options
	gapLen       time.Duration
	egressN      int
	st           *stack.Stack
	psEmu, fsEmu *emulators.Emulator
	h            *harness
	fin          *collect.Events
	proxy        *helixProxy // the functions' Helix API
	fleet        *fleet      // conduit mode's connector instances
	hc           *http.Client
	res          *Result
	logf         func(string, ...any)

	// faultMu keeps the periodic session_reconnect out of the faults that need one
	// settled session.
	faultMu    sync.Mutex
	reconnects int

	fsRestarted, connRestart, connBack time.Time
}

// watch pulls sub until ctx ends, starting again after a failure (an emulator
// restart).
func (sc *script) watch(ctx context.Context, sub string, add func(bus.Received)) {
	for ctx.Err() == nil {
		if err := sc.st.Watch(ctx, sub, add); err != nil {
			sc.logf("pull %s: %v (retrying)", sub, err)
		}
		select {
		case <-ctx.Done():
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// reconnectEvery sends session_reconnect on the newest session every
// ReconnectEvery, outside the steps that need one settled session.
func (sc *script) reconnectEvery(ctx context.Context) {
	t := time.NewTicker(sc.o.ReconnectEvery)
	defer t.Stop()
	tw := sc.st.Fake.Twitch
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		sc.faultMu.Lock()
		if id, ok := newestSession(tw); ok {
			if _, err := tw.Reconnect(id); err == nil {
				sc.reconnects++
				sc.logf("session_reconnect sent on %s", id)
			}
		}
		sc.faultMu.Unlock()
	}
}

func (sc *script) readReconnects() int {
	sc.faultMu.Lock()
	defer sc.faultMu.Unlock()
	return sc.reconnects
}

// do runs one step as its kind says and records it as a phase.
func (sc *script) do(stp step) error {
	if stp.kind == pause {
		_, err := stp.run(sc)
		return err
	}
	if stp.kind != streamOn {
		sc.faultMu.Lock()
		defer sc.faultMu.Unlock()
	}
	if err := sc.h.s.Err(); err != nil {
		return err
	}
	sc.logf("phase: %s", stp.name)
	sc.h.s.SetPhase(stp.name)
	start := time.Now()
	run := stp.run
	if stp.kind == cutsSocket {
		run = func(sc *script) (string, error) {
			sc.h.s.Pause()
			if err := sc.h.drain(sc.ctx, 60*time.Second); err != nil {
				return "", err
			}
			note, err := stp.run(sc)
			if err == nil {
				sc.h.s.Resume(stp.name)
			}
			return note, err
		}
	}
	note, err := run(sc)
	sc.res.Phases = append(sc.res.Phases, Phase{Name: stp.name, Took: time.Since(start), Note: note})
	if err != nil {
		return fmt.Errorf("%s: %w", stp.name, err)
	}
	return nil
}

// sleep waits d or until the run is cancelled.
func (sc *script) sleep(d time.Duration) {
	select {
	case <-sc.ctx.Done():
	case <-time.After(d):
	}
}

func (sc *script) gap() (string, error)     { sc.sleep(sc.gapLen); return "", nil }
func (sc *script) longGap() (string, error) { sc.sleep(sc.gapLen + 2*time.Second); return "", nil }

func (sc *script) stream() (string, error) {
	sc.h.s.Resume("stream")
	sc.sleep(sc.gapLen + time.Second)
	return fmt.Sprintf("%d/s", sc.o.Rate), nil
}

func (sc *script) pausePubSub() (string, error) {
	if err := sc.psEmu.Pause(); err != nil {
		return "", fmt.Errorf("pause: %w", err)
	}
	sc.sleep(5 * time.Second)
	if err := sc.psEmu.Resume(); err != nil {
		return "", fmt.Errorf("resume: %w", err)
	}
	sc.sleep(sc.gapLen)
	return "", nil
}

func (sc *script) restartFirestore() (string, error) {
	// The emulator loses its data on a restart, as Firestore never does: frames the
	// relay spilled during the Pub/Sub pause must have been replayed first.
	if _, err := sc.spillEmpty(); err != nil {
		return "", err
	}
	if err := sc.fsEmu.Restart(sc.ctx); err != nil {
		return "", err
	}
	if err := faketwitch.SeedBotToken(sc.ctx, sc.st.Firestore, sc.st.Fake.BotToken()); err != nil {
		return "", err
	}
	sc.fsRestarted = time.Now()
	sc.sleep(sc.gapLen)
	return "all data lost; bot token re-seeded", nil
}

func (sc *script) silence() (string, error) {
	id, err := sc.h.settledSession(sc.ctx)
	if err != nil {
		return "", err
	}
	if err := sc.st.Fake.Twitch.Silence(id); err != nil {
		return "", err
	}
	t0 := time.Now()
	if err := sc.h.waitNewSession(sc.ctx, id, 40*time.Second); err != nil {
		return "", err
	}
	return fmt.Sprintf("new session subscribed %s after the silence began", time.Since(t0).Round(100*time.Millisecond)), nil
}

func (sc *script) drop() (string, error) {
	id, err := sc.h.settledSession(sc.ctx)
	if err != nil {
		return "", err
	}
	if err := sc.st.Fake.Twitch.Drop(id); err != nil {
		return "", err
	}
	t0 := time.Now()
	if err := sc.h.waitNewSession(sc.ctx, id, 40*time.Second); err != nil {
		return "", err
	}
	return fmt.Sprintf("resubscribed after %s", time.Since(t0).Round(100*time.Millisecond)), nil
}

func (sc *script) restartPubSub() (string, error) {
	t0 := time.Now()
	if err := sc.psEmu.Restart(sc.ctx); err != nil {
		return "", err
	}
	if err := sc.st.EnsureTopology(sc.ctx); err != nil {
		return "", err
	}
	return fmt.Sprintf("topics and subscriptions re-created after %s", time.Since(t0).Round(100*time.Millisecond)), nil
}

func (sc *script) restartConnector() (string, error) {
	if _, err := sc.h.settledSession(sc.ctx); err != nil {
		return "", err
	}
	// Pub/Sub hangs: the relay buffers; then the socket goes quiet and the
	// connector is told to stop while holding unpublished frames.
	if err := sc.psEmu.Pause(); err != nil {
		return "", err
	}
	sc.sleep(2 * time.Second)
	sc.h.s.Pause()
	sc.sleep(500 * time.Millisecond)
	if m, err := load.Scrape(sc.ctx, sc.hc, sc.st.ConnectorURL+"/metrics"); err == nil {
		sc.res.PendingAtRestart = int(m.Get("eventsub_notifications_total") - m.Get("relay_published_total"))
	}
	sc.connRestart = time.Now()
	resumed := make(chan error, 1)
	go func() { time.Sleep(1500 * time.Millisecond); resumed <- sc.psEmu.Resume() }()
	t0 := time.Now()
	err := sc.st.RestartConnector(sc.ctx)
	if rerr := <-resumed; rerr != nil && err == nil {
		err = rerr
	}
	if err != nil {
		return "", err
	}
	sc.res.ConnectorRestarts++
	sc.connBack = time.Now()
	sc.h.s.Resume(stepRestartPending)
	return fmt.Sprintf("%d unpublished at SIGTERM; stopped, flushed, restarted and ready in %s",
		sc.res.PendingAtRestart, time.Since(t0).Round(100*time.Millisecond)), nil
}

func (sc *script) duplicateAndStale() (string, error) {
	sc.sleep(2 * time.Second)
	n, err := sc.h.duplicates(sc.ctx, sc.fsRestarted, sc.connRestart, sc.connBack, 10)
	sc.res.DuplicateFrames = n
	if err != nil {
		return "", err
	}
	stale, err := sc.h.stale(10)
	sc.res.StaleFrames = len(stale)
	sc.h.staleIDs = stale
	if err != nil {
		return "", err
	}
	sc.sleep(sc.gapLen)
	return fmt.Sprintf("%d duplicates, %d stale", n, len(stale)), nil
}

func (sc *script) egress() (string, error) {
	eg, err := sc.h.egress(sc.ctx, sc.fin, sc.egressN)
	sc.res.Egress = eg
	return fmt.Sprintf("%d events", len(eg)), err
}

func (sc *script) drain() (string, error) {
	sc.h.s.Pause()
	sc.faultMu.Lock() // no reconnect while counting
	defer sc.faultMu.Unlock()
	err := sc.h.drain(sc.ctx, 60*time.Second)
	sc.sleep(2 * time.Second) // late duplicates
	if m, merr := load.Scrape(sc.ctx, sc.hc, sc.st.ConnectorURL+"/metrics"); merr == nil {
		sc.res.DroppedDuplicates = int(m.Get("eventsub_duplicates_dropped_total"))
		sc.res.DroppedStale = int(m.Get("eventsub_stale_dropped_total"))
	}
	return "", err
}
