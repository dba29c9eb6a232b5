package main

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/bitbrat/twitch-edge/shared/fault"
)

// Startup runs the connector's start-up calls (the bot's token from Firestore, the
// channels from Helix) one step at a time: each attempt has a deadline, every wait is
// logged with what it waits for (operation and host), failures are retried with
// jittered backoff, and /readyz says which step is pending and why. A silent hang
// at start is, on Cloud Run, a probe-kill loop nobody can explain.
type Startup struct {
	log *slog.Logger
	// Timeout bounds one attempt (default 15 s); MinBackoff and MaxBackoff bound the
	// wait between attempts (defaults 500 ms and 30 s).
	Timeout, MinBackoff, MaxBackoff time.Duration

	mu      sync.Mutex
	step    string
	host    string
	attempt int
	lastErr string
}

// NewStartup returns a Startup that logs to log.
func NewStartup(log *slog.Logger) *Startup {
	return &Startup{log: log, Timeout: 15 * time.Second, MinBackoff: 500 * time.Millisecond, MaxBackoff: 30 * time.Second}
}

// Do runs fn until it succeeds, ctx ends, or it fails in a way no retry mends
// (fault.Invalid: a configuration or input error). step names the operation and host
// the system it waits on, for the logs and /readyz.
func (s *Startup) Do(ctx context.Context, step, host string, fn func(context.Context) error) error {
	s.mu.Lock()
	s.step, s.host, s.attempt, s.lastErr = step, host, 0, ""
	s.mu.Unlock()
	wait := s.MinBackoff
	for attempt := 1; ; attempt++ {
		s.mu.Lock()
		s.attempt = attempt
		s.mu.Unlock()
		s.log.Info("connector: waiting for "+step, "host", host, "attempt", attempt, "timeout", s.Timeout.String())
		actx, cancel := context.WithTimeout(ctx, s.Timeout)
		err := fn(actx)
		cancel()
		if err == nil {
			s.mu.Lock()
			s.step, s.host, s.lastErr = "", "", ""
			s.mu.Unlock()
			return nil
		}
		if ctx.Err() != nil {
			return fmt.Errorf("%s (%s): %w", step, host, ctx.Err())
		}
		if fault.KindOf(err) == fault.Invalid {
			return fmt.Errorf("%s (%s): %w", step, host, err)
		}
		s.mu.Lock()
		s.lastErr = err.Error()
		s.mu.Unlock()
		d := wait/2 + rand.N(wait/2+1)
		s.log.Warn("connector: start-up step failed, retrying", "step", step, "host", host, "attempt", attempt,
			"in", d.String(), "code", fault.CodeOf(err, "UNKNOWN"), "error", err.Error())
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s (%s): %w", step, host, ctx.Err())
		case <-time.After(d):
		}
		wait = min(wait*2, s.MaxBackoff)
	}
}

// Pending says which step start-up waits for and why, or "" when none is pending.
func (s *Startup) Pending() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.step == "" {
		return ""
	}
	msg := fmt.Sprintf("starting: waiting for %s (%s), attempt %d", s.step, s.host, s.attempt)
	if s.lastErr != "" {
		msg += "; last error: " + s.lastErr
	}
	return msg
}
