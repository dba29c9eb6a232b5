package soak

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/bitbrat/twitch-edge/infra/faketwitch"
	"github.com/bitbrat/twitch-edge/shared/twitch/twitchtest"
)

// sent is one notification the fake Twitch accepted for delivery.
type sent struct {
	id    string
	at    time.Time
	phase string
	// event numbers the Notify call: the ids of one event share it (during a
	// hand-off Twitch sends one event to two sessions, each copy with its own id).
	event int
	// channel is the broadcaster's user id.
	channel string
}

// stream sends channel.follow notifications to the seeded channels at a steady rate,
// remembering every message id the fake wrote to a socket. It can be paused, so that
// a fault that cuts the socket does so with nothing in flight: what Twitch delivered
// is then exactly what Notify returned.
type stream struct {
	tw   *twitchtest.Server
	rate int
	// channels are the broadcasters the stream follows, in turn (the seeded ones,
	// plus a channel added at runtime in conduit mode).
	channels []twitchtest.User

	mu     sync.Mutex // held while sending; Pause takes it to wait out a tick
	paused bool
	phase  string
	sent   []sent
	// noSub counts notifications the fake could not deliver (no enabled
	// subscription: between a socket's end and the new subscriptions). Twitch does
	// not deliver those either; they are not expected on the topic.
	noSub   int
	noSubBy map[string]int // by phase
	noSubCh map[string]int // by broadcaster id
	// phases numbers the phases in order; phaseOf is each message id's phase number
	// (for the raw topic's counts by phase).
	phases  []string
	phaseOf map[string]int
	seq     int
	err     error
}

func newStream(tw *twitchtest.Server, rate int) *stream {
	return &stream{tw: tw, rate: rate, paused: true, noSubBy: map[string]int{}, noSubCh: map[string]int{}, phaseOf: map[string]int{},
		channels: append([]twitchtest.User(nil), faketwitch.Channels...)}
}

// run sends until ctx ends, in 10 ms ticks.
func (s *stream) run(ctx context.Context) {
	t := time.NewTicker(10 * time.Millisecond)
	defer t.Stop()
	begin := time.Now()
	due := 0.0
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		s.mu.Lock()
		if s.paused || s.err != nil {
			s.mu.Unlock()
			begin, due = time.Now(), 0
			continue
		}
		target := float64(s.rate) * time.Since(begin).Seconds()
		for ; due < target; due++ {
			ch := s.channels[s.seq%len(s.channels)]
			v := faketwitch.Viewers[s.seq%len(faketwitch.Viewers)]
			s.seq++
			ids, err := s.tw.Notify(twitchtest.Notification{Type: "channel.follow",
				Condition: map[string]string{"broadcaster_user_id": ch.ID}, Event: s.tw.FollowEvent(ch.ID, v.ID, time.Now())})
			if errors.Is(err, twitchtest.ErrNoSubscription) {
				s.noSub++
				s.noSubBy[s.phase]++
				s.noSubCh[ch.ID]++
				continue
			}
			if err != nil {
				s.err = fmt.Errorf("notify: %w", err)
				break
			}
			now := time.Now()
			for _, id := range ids {
				s.sent = append(s.sent, sent{id: id, at: now, phase: s.phase, event: s.seq, channel: ch.ID})
				s.phaseOf[id] = s.phaseNumber(s.phase)
			}
		}
		s.mu.Unlock()
	}
}

// Pause stops sending; when it returns no Notify is in progress.
func (s *stream) Pause() {
	s.mu.Lock()
	s.paused = true
	s.mu.Unlock()
}

// Resume starts sending again, tagging what it sends with phase.
func (s *stream) Resume(phase string) {
	s.mu.Lock()
	s.paused, s.phase = false, phase
	s.mu.Unlock()
}

// AddChannel adds a broadcaster to those the stream follows.
func (s *stream) AddChannel(u twitchtest.User) {
	s.mu.Lock()
	s.channels = append(s.channels, u)
	s.mu.Unlock()
}

// RemoveChannel takes a broadcaster out of those the stream follows.
func (s *stream) RemoveChannel(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.channels = slices.DeleteFunc(s.channels, func(u twitchtest.User) bool { return u.ID == id })
}

// SetPhase tags what is sent from now on.
func (s *stream) SetPhase(phase string) {
	s.mu.Lock()
	s.phase = phase
	s.mu.Unlock()
}

// Sent returns a copy of what was sent so far.
func (s *stream) Sent() []sent {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]sent(nil), s.sent...)
}

// Err is the first unexpected Notify error.
func (s *stream) Err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}

// NoSubscription is how many notifications found no enabled subscription.
func (s *stream) NoSubscription() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.noSub
}

// NoSubscriptionIn is how many notifications of phase found no enabled subscription.
func (s *stream) NoSubscriptionIn(phase string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.noSubBy[phase]
}

// NoSubscriptionFor is how many notifications for broadcaster id found no enabled
// subscription.
func (s *stream) NoSubscriptionFor(id string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.noSubCh[id]
}

// Phase is the tag of what is sent now.
func (s *stream) Phase() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.phase
}

// phaseNumber numbers phase (1, 2, ... in order of first use). Call with mu held.
func (s *stream) phaseNumber(phase string) int {
	for i, p := range s.phases {
		if p == phase {
			return i + 1
		}
	}
	s.phases = append(s.phases, phase)
	return len(s.phases)
}

// PhaseIndex is the number of the phase the notification messageID was sent in (0:
// not sent by the stream).
func (s *stream) PhaseIndex(messageID string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.phaseOf[messageID]
}

// PhaseNumberOf is phase's number (0: nothing sent in it).
func (s *stream) PhaseNumberOf(phase string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, p := range s.phases {
		if p == phase {
			return i + 1
		}
	}
	return 0
}
