package soak

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"sync"
	"time"

	"github.com/bitbrat/twitch-edge/infra/collect"
	"github.com/bitbrat/twitch-edge/infra/faketwitch"
	"github.com/bitbrat/twitch-edge/infra/stack"
	"github.com/bitbrat/twitch-edge/shared/emulators"
)

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
	switch o.Transport {
	case "", stack.TransportWebSocket, stack.TransportConduit:
	default:
		return nil, fmt.Errorf("transport %q: want %s or %s", o.Transport, stack.TransportWebSocket, stack.TransportConduit)
	}
	sc := &script{ctx: ctx, o: o, gapLen: 15 * time.Second, egressN: 10, res: &Result{Transport: o.Transport}, hc: &http.Client{Timeout: 5 * time.Second}}
	if o.Short {
		sc.gapLen, sc.egressN = 2*time.Second, 3
	}
	begin := time.Now()
	sc.logf = func(format string, args ...any) {
		fmt.Fprintf(o.Log, "%s soak: %s\n", time.Now().Format("15:04:05"), fmt.Sprintf(format, args...))
	}
	res = sc.res
	defer func() { res.Took = time.Since(begin) }()
	if o.Transport == stack.TransportConduit {
		return res, sc.runConduit(begin)
	}
	return res, sc.runWebSocket(begin)
}

// runWebSocket is the script in WebSocket mode: one connector, one session.
func (sc *script) runWebSocket(begin time.Time) (err error) {
	ctx, o := sc.ctx, sc.o
	sc.proxy, err = newHelixProxy()
	if err != nil {
		return err
	}
	defer sc.proxy.Close()
	sc.logf("starting the stack (build, functions server, connector)")
	st, err := stack.Start(ctx, stack.Options{
		// No PubSubHost/FirestoreHost: the stack starts its own emulators, so that
		// they can be paused and restarted.
		Project:      fmt.Sprintf("soak-%d", time.Now().Unix()),
		BinDir:       o.BinDir,
		FakeTwitch:   faketwitch.Options{ReconnectGrace: 2 * time.Second},
		Output:       o.Output,
		MinBackoff:   500 * time.Millisecond,
		MaxBackoff:   5 * time.Second,
		FunctionsEnv: map[string]string{"TWITCH_API_BASE_URL": sc.proxy.BaseURL()},
		ConnectorEnv: map[string]string{"EVENTSUB_KEEPALIVE_GRACE": "250ms",
			"CONNECTOR_BUFFER_BYTES": soakBufferBytes},
	})
	if err != nil {
		return fmt.Errorf("start the stack: %w", err)
	}
	defer st.Stop()
	stopSignals := st.StopOnSignal()
	defer stopSignals()
	sc.st = st
	sc.proxy.SetTarget(st.Fake.Twitch.APIBaseURL())
	sc.psEmu, sc.fsEmu = st.Emulator(emulators.PubSub), st.Emulator(emulators.Firestore)
	sc.logf("stack ready after %s", time.Since(begin).Round(100*time.Millisecond))
	return sc.play(steps, true)
}

// play runs steps against the running stack with the stream, the collectors and
// (periodic) the session_reconnect timer in the background, and counts.
func (sc *script) play(steps []step, periodic bool) error {
	st, tw := sc.st, sc.st.Fake.Twitch
	s := newStream(tw, sc.o.Rate)
	// Raw-topic counts by the phase each notification was sent in.
	col := collect.NewNotifications(s.PhaseIndex)
	sc.fin = collect.NewEvents()
	ing := collect.NewEvents()
	bg, stopBG := context.WithCancel(sc.ctx)
	var bgwg sync.WaitGroup
	defer func() { stopBG(); bgwg.Wait() }()
	bgwg.Add(3)
	go func() { defer bgwg.Done(); sc.watch(bg, st.Subs.WatchIngress, ing.Add) }()
	go func() {
		defer bgwg.Done()
		col.Receive(bg, st.PubSub, st.Subs.WatchRaw, func(err error) { sc.logf("pull raw: %v (retrying)", err) })
	}()
	go func() { defer bgwg.Done(); sc.watch(bg, st.Subs.WatchFinalize, sc.fin.Add) }()

	bgwg.Add(1)
	go func() { defer bgwg.Done(); s.run(bg) }()
	sc.h = &harness{st: st, tw: tw, col: col, ing: ing, s: s, logf: sc.logf}

	if periodic {
		bgwg.Add(1)
		go func() { defer bgwg.Done(); sc.reconnectEvery(bg) }()
	}

	for _, stp := range steps {
		if err := sc.ctx.Err(); err != nil {
			return err
		}
		if err := sc.do(stp); err != nil {
			sc.h.count(sc.res, s, sc.readReconnects())
			return err
		}
	}
	sc.h.count(sc.res, s, sc.readReconnects())
	return s.Err()
}
