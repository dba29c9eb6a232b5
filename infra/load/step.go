package load

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/bitbrat/twitch-edge/infra/collect"
	"github.com/bitbrat/twitch-edge/infra/load/opcount"
	"github.com/bitbrat/twitch-edge/infra/stack"
	"github.com/bitbrat/twitch-edge/shared/twitch/twitchtest"
)

// runStep streams rate notifications a second for o.Duration, waits for them on the
// raw topic and measures the connector (metrics, CPU, memory) and the emulators.
func runStep(ctx context.Context, step, rate int, o Options, tw *twitchtest.Server, evt json.RawMessage, conn *stack.Process,
	emuPIDs [2]int, px [2]*opcount.Proxy, connURL string, hc *http.Client, col *collect.Notifications, logf func(string, ...any)) (Step, error) {
	st := Step{Rate: rate, Duration: o.Duration, LoadBefore: LoadAverage()}
	pid := conn.PID()
	before, err := Scrape(ctx, hc, connURL+"/metrics")
	if err != nil {
		return st, err
	}
	cpu0, err := CPUSeconds(pid)
	if err != nil {
		return st, err
	}
	var emu0 [2]float64
	for i, p := range emuPIDs {
		if p != 0 {
			emu0[i], _ = CPUSeconds(p)
		}
	}
	ops0 := [2]opcount.Counts{px[0].Counts(), px[1].Counts()}
	if err := ResetPeak(pid); err != nil {
		logf("%v (peak from samples only)", err)
	}
	var peak int64
	sctx, stopSampling := context.WithCancel(ctx)
	var swg sync.WaitGroup
	swg.Add(1)
	go func() {
		defer swg.Done()
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		for {
			if m, err := ReadMem(pid); err == nil {
				peak = max(peak, m.RSS, m.Peak)
			}
			select {
			case <-sctx.Done():
				return
			case <-t.C:
			}
		}
	}()
	defer func() { stopSampling(); swg.Wait() }()

	logf("rate %d/s for %s (load %s)", rate, o.Duration, st.LoadBefore)
	total := int(float64(rate) * o.Duration.Seconds())
	cond := map[string]string{"broadcaster_user_id": broadcasterID}
	begin := time.Now()
	hardStop := begin.Add(o.Duration + 30*time.Second) // every loop is bounded in time too
	sent := 0
	for sent < total && ctx.Err() == nil && time.Now().Before(hardStop) {
		due := min(total, int(float64(rate)*time.Since(begin).Seconds())+1)
		for ; sent < due; sent++ {
			if _, err := tw.Notify(twitchtest.Notification{Type: "channel.follow", Condition: cond, Event: evt,
				MessageID: messageID(step, sent)}); err != nil {
				return st, fmt.Errorf("notification %d: %w", sent, err)
			}
		}
		time.Sleep(2 * time.Millisecond)
	}
	st.Sent, st.SendTime = sent, time.Since(begin)
	if sent < total {
		logf("rate %d/s: only %d of %d notifications sent before the time limit", rate, sent, total)
	}

	// Wait until every notification arrived or nothing more arrives for Drain.
	dctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	last, lastChange := -1, time.Now()
	for {
		c := col.Counts(step)
		if c.Distinct >= sent {
			break
		}
		if c.Distinct != last {
			last, lastChange = c.Distinct, time.Now()
		} else if time.Since(lastChange) > o.Drain {
			logf("rate %d/s: %d of %d arrived, nothing more for %s", rate, c.Distinct, sent, o.Drain)
			break
		}
		select {
		case <-dctx.Done():
			return st, fmt.Errorf("waiting for delivery: %w", dctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
	// A short grace for late duplicates to show up.
	time.Sleep(time.Second)

	after, err := Scrape(ctx, hc, connURL+"/metrics")
	if err != nil {
		return st, err
	}
	cpu1, err := CPUSeconds(pid)
	if err != nil {
		return st, err
	}
	m, err := ReadMem(pid)
	if err != nil {
		return st, err
	}
	stopSampling()
	swg.Wait()
	st.RSSPeak, st.RSSEnd = max(peak, m.Peak, m.RSS), m.RSS
	st.RSSAnonEnd, st.RSSFileEnd = m.Anon, m.File
	st.CPU = cpu1 - cpu0
	var emu1 [2]float64
	for i, p := range emuPIDs {
		if p != 0 {
			emu1[i], _ = CPUSeconds(p)
		}
	}
	st.PubSubCPU, st.FirestoreCPU = emu1[0]-emu0[0], emu1[1]-emu0[1]
	st.LoadAfter = LoadAverage()
	st.PubSub, st.Firestore = px[0].Counts().Sub(ops0[0]), px[1].Counts().Sub(ops0[1])

	c := col.Counts(step)
	st.Delivered, st.Duplicates, st.Redeliveries = c.Distinct, c.Duplicates, c.Redeliveries
	st.E2EP50, st.E2EP99, st.E2EMax = Quantile(c.Latencies, 0.50), Quantile(c.Latencies, 0.99), Quantile(c.Latencies, 1)
	const h = "relay_frame_to_publish_seconds"
	st.ConnP50, st.ConnObserved = HistQuantile(before, after, h, 0.50)
	st.ConnP99, _ = HistQuantile(before, after, h, 0.99)
	st.BufferFull = after.Get("relay_buffer_full_total") - before.Get("relay_buffer_full_total")
	st.Reconnects = after.Sum("eventsub_reconnects_total") - before.Sum("eventsub_reconnects_total")
	return st, nil
}

// CPUPerNotification is the connector's whole-process CPU time per notification
// sent, in microseconds.
func (s Step) CPUPerNotification() float64 {
	if s.Sent == 0 {
		return 0
	}
	return s.CPU * 1e6 / float64(s.Sent)
}

// PerEvent is n per notification sent.
func (s Step) PerEvent(n int64) float64 {
	if s.Sent == 0 {
		return 0
	}
	return float64(n) / float64(s.Sent)
}
