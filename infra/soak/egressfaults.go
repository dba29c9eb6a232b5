package soak

import (
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/bitbrat/twitch-edge/functions/egress"
	"github.com/bitbrat/twitch-edge/infra/faketwitch"
	"github.com/bitbrat/twitch-edge/shared/event"
)

// The egress faults of #15: a Helix answer lost after the request reached Twitch
// (chat and whisper: one send each, finalized FAILED DELIVERY_UNKNOWN, never sent
// again), and two egress instances under a burst (none sent twice, Twitch's chat
// budget and whisper limits held across both, no 429).

// EgressFault is one egress fault's outcome.
type EgressFault struct {
	Name   string
	Events []Egress
	// SentTwice: events the fake delivered more than once; Unsent: not at all.
	SentTwice, Unsent int
	// BudgetViolations are chat messages the fake accepted beyond Twitch's rate
	// limit (twitchtest's ChatBudgetViolations, counted over this fault);
	// TooManyRequests are 429 answers to the functions' sends.
	BudgetViolations, TooManyRequests int
	// ProxyHits are the functions' Helix requests through the soak's proxy during the
	// fault (more than 0: the proxy is in the path).
	ProxyHits int64
	Note      string
}

// OK reports every event delivered once with its expected outcome, no budget
// violation and no 429: the shared budgets count a send by when its answer came
// (store.Budget), so however late a send reaches Twitch on a loaded machine, the next
// one is held back until Twitch has room.
func (f EgressFault) OK() bool {
	for _, e := range f.Events {
		if !e.OK() {
			return false
		}
	}
	return len(f.Events) > 0 && f.BudgetViolations == 0 && f.TooManyRequests == 0 && f.ProxyHits > 0
}

func (sc *script) egressFault(name string, run func() ([]Egress, error)) (EgressFault, error) {
	v0, t0, h0 := sc.st.Fake.Twitch.ChatBudgetViolations(), sc.proxy.TooMany(), sc.proxy.Hits()
	evs, err := run()
	f := EgressFault{Name: name, Events: evs, BudgetViolations: sc.st.Fake.Twitch.ChatBudgetViolations() - v0,
		TooManyRequests: int(sc.proxy.TooMany() - t0), ProxyHits: sc.proxy.Hits() - h0}
	for _, e := range evs {
		switch {
		case e.Deliveries > 1:
			f.SentTwice++
		case e.Deliveries == 0:
			f.Unsent++
		}
	}
	if f.TooManyRequests > 0 {
		d := sc.proxy.TooManyDetails()
		f.Note = strings.Join(d[max(0, len(d)-f.TooManyRequests):], "; ")
	}
	sc.res.EgressFaults = append(sc.res.EgressFaults, f)
	return f, err
}

// lostAnswers sends one chat message and one whisper whose Helix answers are lost.
func (sc *script) lostAnswers() (string, error) {
	f, err := sc.egressFault("lost Helix answer (chat, whisper)", func() ([]Egress, error) {
		var ps []pendingEgress
		for _, kind := range []string{"chat", "dm"} {
			text := fmt.Sprintf("soak lost answer %s %s", kind, uuid.NewString()[:8])
			sc.proxy.LoseAnswerTo(text)
			p, err := sc.h.publishEgress(sc.ctx, kind, faketwitch.Channels[0], faketwitch.Viewers[0], text)
			if err != nil {
				return nil, err
			}
			ps = append(ps, p)
		}
		// Longer than Pub/Sub's redeliveries in the soak (backoff up to 5 s), and than
		// the 10 s Helix timeout.
		out := sc.h.settle(sc.ctx, sc.fin, ps, 90*time.Second)
		sc.sleep(5 * time.Second)
		for i := range out {
			out[i].WantStatus, out[i].WantCode = event.StatusFailed, egress.CodeDeliveryUnknown
		}
		return sc.recount(out, ps), nil
	})
	if err != nil {
		return "", err
	}
	if n := len(sc.proxy.Lost()); n != 2 {
		return "", fmt.Errorf("the proxy lost %d answers, want 2 (is it in the functions' Helix path? %d requests through it)", n, f.ProxyHits)
	}
	return fmt.Sprintf("%d answers lost; %d sent twice", len(sc.proxy.Lost()), f.SentTwice), nil
}

// recount counts deliveries and finalize messages again after a further wait.
func (sc *script) recount(out []Egress, ps []pendingEgress) []Egress {
	whispers, chats := sc.st.Fake.Twitch.Whispers(), sc.st.Fake.Twitch.ChatMessages()
	for i, p := range ps {
		out[i].Finalized = sc.fin.Distinct(p.e.CorrelationID)
		out[i].Deliveries = 0
		for _, w := range whispers {
			if p.e.Egress.Type == "dm" && w.Message == p.text {
				out[i].Deliveries++
			}
		}
		for _, m := range chats {
			if p.e.Egress.Type == "chat" && m.Message == p.text && m.IsSent {
				out[i].Deliveries++
			}
		}
	}
	return out
}

// burstTwoInstances publishes a burst of chat messages to one channel and whispers,
// all at once, with a second functions server racing the first for every message.
func (sc *script) burstTwoInstances() (string, error) {
	stop, err := sc.st.StartSecondFunctions(sc.ctx)
	if err != nil {
		return "", err
	}
	defer stop()
	chats, whispers := 30, 8
	if !sc.o.Short {
		// Past the moderator's 100 per 30 s: the budget must hold some back.
		chats, whispers = 120, 20
	}
	t0 := time.Now()
	f, err := sc.egressFault("two egress instances, burst", func() ([]Egress, error) {
		var ps []pendingEgress
		for i := 0; i < chats+whispers; i++ {
			kind, v := "chat", faketwitch.Viewers[i%len(faketwitch.Viewers)]
			if i%((chats+whispers)/whispers) == 0 && countKind(ps, "dm") < whispers {
				kind = "dm"
			}
			p, err := sc.h.publishEgress(sc.ctx, kind, faketwitch.Channels[1], v,
				fmt.Sprintf("soak burst %s %d %s", kind, i, uuid.NewString()[:8]))
			if err != nil {
				return nil, err
			}
			ps = append(ps, p)
		}
		return sc.h.settle(sc.ctx, sc.fin, ps, 180*time.Second), nil
	})
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("%d chat messages and %d whispers in %s; %d sent twice, %d budget violations, %d 429s",
		chats, whispers, time.Since(t0).Round(100*time.Millisecond), f.SentTwice,
		f.BudgetViolations, f.TooManyRequests), nil
}

func countKind(ps []pendingEgress, kind string) int {
	n := 0
	for _, p := range ps {
		if p.e.Egress.Type == kind {
			n++
		}
	}
	return n
}

func writeEgressFaults(b *strings.Builder, fs []EgressFault) {
	if len(fs) == 0 {
		return
	}
	b.WriteString("egress faults (deliveries counted at the fake Twitch)\n")
	fmt.Fprintf(b, "  %-40s %6s %5s %6s %6s %6s %5s %6s\n", "fault", "events", "ok", "twice", "unsent", "budget", "429s", "proxy")
	for _, f := range fs {
		ok := 0
		for _, e := range f.Events {
			if e.OK() {
				ok++
			}
		}
		m := mark(f.OK())
		fmt.Fprintf(b, "  %-40s %6d %5d %6d %6d %6d %5d %6d  %s\n", f.Name, len(f.Events), ok, f.SentTwice, f.Unsent,
			f.BudgetViolations, f.TooManyRequests, f.ProxyHits, m)
		if f.Note != "" {
			fmt.Fprintf(b, "    %s\n", f.Note)
		}
		for _, e := range f.Events {
			if !e.OK() {
				fmt.Fprintf(b, "    %s %s: %d deliveries, %d finalized, %s %s\n", e.Kind, e.CorrelationID, e.Deliveries,
					e.Finalized, e.Status, e.Code)
			}
		}
	}
}
