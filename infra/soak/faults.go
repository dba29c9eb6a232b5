package soak

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/bitbrat/twitch-edge/infra/load"
)

// The reliability faults of #14: Pub/Sub frozen past the relay's buffer, SIGTERM
// with Pub/Sub frozen and a restart, Firestore frozen across a lease renewal, and a
// deploy-style hand-off between two connector processes.

// soakBufferBytes is the connector's CONNECTOR_BUFFER_BYTES in the soak: about five
// seconds of the short soak's stream, so that a Pub/Sub freeze of several seconds
// goes past it and frames are spilled to Firestore.
const soakBufferBytes = "262144"

// soakLeaseTTL is the connector's CONNECTOR_LEASE_TTL (its default; not set by the
// soak): fencing — the session dropped when the lease cannot be renewed within 2/3
// of it — comes within 20 s of Firestore freezing, while a Firestore restart (a few
// seconds, longer on a loaded machine) does not reach it.
const soakLeaseTTL = 30 * time.Second

func (sc *script) metric(name string) float64 {
	m, err := load.Scrape(sc.ctx, sc.hc, sc.st.ConnectorURL+"/metrics")
	if err != nil {
		return -1
	}
	return m.Get(name)
}

// pubSubPastBuffer freezes Pub/Sub until the relay has spilled frames to Firestore
// (its byte budget is exceeded), keeps it frozen a little longer, and lets the spill
// replay.
func (sc *script) pubSubPastBuffer() (string, error) {
	spilled0 := sc.metric("relay_spilled_total")
	if err := sc.psEmu.Pause(); err != nil {
		return "", fmt.Errorf("pause: %w", err)
	}
	t0 := time.Now()
	err := sc.until(40*time.Second, "the relay spilling to Firestore", func() bool {
		return sc.metric("relay_spilled_total") > spilled0
	})
	if err == nil {
		sc.sleep(3 * time.Second)
	}
	frozen := time.Since(t0)
	if rerr := sc.psEmu.Resume(); rerr != nil {
		return "", fmt.Errorf("resume: %w", rerr)
	}
	if err != nil {
		return "", err
	}
	paused, err := sc.spillEmpty()
	if err != nil {
		return "", err
	}
	note := ""
	if paused {
		note = "; the spill drained only with the stream paused"
	}
	return fmt.Sprintf("frozen %s; %d frames spilled, %d replayed%s", frozen.Round(100*time.Millisecond),
		int(sc.metric("relay_spilled_total")-spilled0), int(sc.metric("relay_replayed_total")), note), nil
}

// readyz is the connector's /readyz status and body.
func (sc *script) readyz() (int, string) {
	req, err := http.NewRequestWithContext(sc.ctx, http.MethodGet, sc.st.ConnectorURL+"/readyz", nil)
	if err != nil {
		return 0, err.Error()
	}
	resp, err := sc.hc.Do(req)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	return resp.StatusCode, string(b)
}

// spillEmpty waits until the connector's spill is replayed: first with the stream
// on, then, if the relay is still spilling after a while (a steady stream keeps
// feeding the spill while it drains), with the stream paused. It reports whether it
// had to pause.
func (sc *script) spillEmpty() (paused bool, err error) {
	// /readyz names any backlog: frames in memory, on their way to the spill (queued
	// or being written) and in the spill. The metrics leave out the writes in flight.
	empty := func() bool {
		code, body := sc.readyz()
		return code == http.StatusOK && !strings.Contains(body, "backlog")
	}
	onFor := 20 * time.Second
	if sc.o.Short {
		onFor = 5 * time.Second
	}
	if sc.until(onFor, "the spill replayed, stream on", empty) == nil {
		return false, nil
	}
	sc.logf("the relay is still spilling with the stream on; pausing the stream until the spill is replayed")
	sc.h.s.Pause()
	defer sc.h.s.Resume(sc.h.s.Phase())
	return true, sc.until(60*time.Second, "the spill replayed, stream paused", empty)
}

// sigtermPubSubFrozen stops the connector while Pub/Sub is frozen: what it cannot
// publish by its shutdown deadline goes to the spill, and the next process replays
// it once Pub/Sub is back.
func (sc *script) sigtermPubSubFrozen() (string, error) {
	if _, err := sc.h.settledSession(sc.ctx); err != nil {
		return "", err
	}
	if err := sc.psEmu.Pause(); err != nil {
		return "", err
	}
	sc.sleep(2 * time.Second)
	sc.h.s.Pause()
	sc.sleep(500 * time.Millisecond)
	pending := int(sc.metric("eventsub_notifications_total") - sc.metric("relay_published_total"))
	t0 := time.Now()
	sc.st.StopConnector()
	stopped := time.Since(t0)
	if err := sc.psEmu.Resume(); err != nil {
		return "", err
	}
	if err := sc.st.StartConnector(sc.ctx); err != nil {
		return "", err
	}
	sc.res.ConnectorRestarts++
	sc.h.s.Resume(stepSigtermFrozen)
	return fmt.Sprintf("%d unpublished at SIGTERM; stopped in %s with Pub/Sub frozen (spilled), restarted and ready in %s",
		pending, stopped.Round(100*time.Millisecond), time.Since(t0).Round(100*time.Millisecond)), nil
}

// firestoreFrozenRenewal freezes Firestore until the connector drops its session
// (the lease renewal cannot succeed: fencing), then lets it take the lease again.
// The stream was drained first (the connector closes its own socket when it
// fences) and runs during the freeze: what Twitch could not send for want of a
// subscribed socket is reported, not expected.
func (sc *script) firestoreFrozenRenewal() (string, error) {
	id, err := sc.h.settledSession(sc.ctx)
	if err != nil {
		return "", err
	}
	if err := sc.fsEmu.Pause(); err != nil {
		return "", err
	}
	t0 := time.Now()
	err = sc.until(3*soakLeaseTTL, "the connector dropping its session (fencing)", func() bool {
		for _, x := range sc.st.Fake.Twitch.Sessions() {
			if x.ID == id {
				return false
			}
		}
		return true
	})
	fenced := time.Since(t0)
	sc.h.s.Resume(stepFirestoreFrozen)
	sc.sleep(time.Second)
	if rerr := sc.fsEmu.Resume(); rerr != nil {
		return "", rerr
	}
	if err != nil {
		return "", err
	}
	if err := sc.h.waitNewSession(sc.ctx, id, 60*time.Second); err != nil {
		return "", err
	}
	return fmt.Sprintf("session dropped %s after Firestore froze (lease TTL %s); %d not sent (no subscribed socket); resubscribed %s after",
		fenced.Round(100*time.Millisecond), soakLeaseTTL, sc.h.s.NoSubscriptionIn(stepFirestoreFrozen),
		time.Since(t0).Round(100*time.Millisecond)), nil
}

// handOff replaces the connector twice as a deploy does (stack.Redeploy), with the
// stream on: each hand-off is its own fault in the report.
func (sc *script) handOff() (string, error) {
	t0 := time.Now()
	err := sc.st.Redeploy(sc.ctx, func(i int) { sc.h.s.SetPhase(fmt.Sprintf("%s %d", stepHandOff, i)) })
	if err != nil {
		return "", err
	}
	sc.sleep(2 * time.Second)
	return fmt.Sprintf("two hand-offs in %s; %d+%d not sent (no subscribed socket)", time.Since(t0).Round(100*time.Millisecond),
		sc.h.s.NoSubscriptionIn(stepHandOff+" 1"), sc.h.s.NoSubscriptionIn(stepHandOff+" 2")), nil
}

// until polls cond every 100 ms until it holds, or fails after timeout (a hang
// guard), naming what it waited for.
func (sc *script) until(timeout time.Duration, what string, cond func() bool) error {
	ctx, cancel := context.WithTimeout(sc.ctx, timeout)
	defer cancel()
	sc.logf("waiting for %s", what)
	for !cond() {
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for %s: %w", what, ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
	return nil
}
