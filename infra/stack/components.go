package stack

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"syscall"
	"time"

	"github.com/bitbrat/twitch-edge/shared/emulators"
)

// StartFunctions starts the functions server and waits until it answers HTTP.
func (s *Stack) StartFunctions(ctx context.Context) error {
	if err := s.functions.Start(); err != nil {
		return err
	}
	err := s.waitHTTP(ctx, s.functions, s.FunctionsURL+"/", func(int) bool { return true })
	if err != nil {
		return fmt.Errorf("functions server at %s: %w\n--- functions output ---\n%s", s.FunctionsURL, err, s.functions.LogTail())
	}
	return nil
}

// StopFunctions stops the functions server (SIGTERM, then SIGKILL after 5 s).
func (s *Stack) StopFunctions() { s.functions.Stop(syscall.SIGTERM, 5*time.Second) }

// RestartFunctions stops and starts the functions server.
func (s *Stack) RestartFunctions(ctx context.Context) error {
	s.StopFunctions()
	return s.StartFunctions(ctx)
}

// StartConnector starts the connector and waits until its /readyz answers 200.
func (s *Stack) StartConnector(ctx context.Context) error {
	if s.connector == nil {
		return errNoConnector
	}
	if err := s.connector.Start(); err != nil {
		return err
	}
	return s.WaitConnectorReady(ctx)
}

// WaitConnectorReady waits until the connector's /readyz answers 200 (session
// welcomed, every subscription enabled).
func (s *Stack) WaitConnectorReady(ctx context.Context) error {
	if s.connector == nil {
		return errNoConnector
	}
	err := s.waitHTTP(ctx, s.connector, s.ConnectorURL+"/readyz", func(code int) bool { return code == http.StatusOK })
	if err != nil {
		return fmt.Errorf("connector at %s not ready: %w\n--- connector output ---\n%s", s.ConnectorURL, err, s.connector.LogTail())
	}
	return nil
}

// StopConnector stops the connector gracefully (SIGTERM: it flushes its relay and
// releases its lease), killing it after 15 s.
func (s *Stack) StopConnector() {
	if s.connector != nil {
		s.connector.Stop(syscall.SIGTERM, 15*time.Second)
	}
}

// errNoConnector: serverless mode runs no connector.
var errNoConnector = errors.New("the stack runs no connector (serverless mode)")

// KillConnector kills the connector at once (SIGKILL), as a crash would. Its lease
// stays held until it expires, so the next StartConnector waits up to
// CONNECTOR_LEASE_TTL (30 s unless ConnectorEnv sets it) before it is ready, as a
// replacement instance would in the cloud.
func (s *Stack) KillConnector() {
	if s.connector != nil {
		s.connector.Stop(syscall.SIGKILL, 5*time.Second)
	}
}

// RestartConnector stops the connector gracefully, starts it again and waits until
// it is ready.
func (s *Stack) RestartConnector(ctx context.Context) error {
	s.StopConnector()
	return s.StartConnector(ctx)
}

// ConnectorPID and FunctionsPID are the subprocesses' ids (0 when stopped).
func (s *Stack) ConnectorPID() int {
	if s.connector == nil {
		return 0
	}
	return s.connector.PID()
}

// FunctionsPID is the functions server's process id (0 when stopped).
func (s *Stack) FunctionsPID() int { return s.functions.PID() }

// ChildPIDs are the ids of every subprocess the stack runs now.
func (s *Stack) ChildPIDs() []int {
	var out []int
	for _, p := range s.processes() {
		if p != nil {
			if pid := p.PID(); pid != 0 {
				out = append(out, pid)
			}
		}
	}
	return out
}

// Exited names the components whose process ended without the stack stopping it (a
// crash, or a configuration error at start).
func (s *Stack) Exited() []string {
	var out []string
	for _, p := range s.processes() {
		if p != nil && p.HasExited() {
			out = append(out, p.name)
		}
	}
	return out
}

// ConnectorLogs and FunctionsLogs are the components' last lines of output.
func (s *Stack) ConnectorLogs() string {
	if s.connector == nil {
		return ""
	}
	return s.connector.LogTail()
}

// processes are every subprocess of the stack (nil entries for those it lacks).
func (s *Stack) processes() []*Process {
	out := []*Process{s.functions, s.connector}
	for _, e := range s.extra {
		out = append(out, e.proc)
	}
	return out
}

// FunctionsLogs is the functions server's last lines of output.
func (s *Stack) FunctionsLogs() string { return s.functions.LogTail() }

// RestartEmulator restarts one of the stack's own emulators on the same address.
// Emulator state is lost, as after a real outage, so the stack re-creates its topics
// and subscriptions (Pub/Sub) or re-seeds the bot's token (Firestore); anything else
// is gone.
func (s *Stack) RestartEmulator(ctx context.Context, k emulators.Kind) error {
	e := s.emus[k]
	if e == nil {
		return fmt.Errorf("the %s emulator was not started by this stack (it came from %s); it cannot be restarted here", k, k.EnvVar())
	}
	if err := e.Restart(ctx); err != nil {
		return fmt.Errorf("restart the %s emulator: %w", k, err)
	}
	if k == emulators.PubSub {
		return s.EnsureTopology(ctx)
	}
	return s.prepareToken(ctx)
}

// waitHTTP polls url until ok(status) or the process exits or ReadyTimeout passes.
func (s *Stack) waitHTTP(ctx context.Context, p *Process, url string, ok func(int) bool) error {
	err := WaitHTTP(ctx, &http.Client{Timeout: 2 * time.Second}, url, s.opts.ReadyTimeout, p.Exited(), ok)
	if errors.Is(err, errExited) {
		return fmt.Errorf("%s %w", p.name, errExited)
	}
	return err
}

// WaitHTTP polls url every 100 ms until ok(status), the process exits (exited is
// closed: an error wrapping "exited"), or timeout passes.
func WaitHTTP(ctx context.Context, hc *http.Client, url string, timeout time.Duration, exited <-chan struct{}, ok func(int) bool) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	last := "no answer"
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if resp, err := hc.Do(req); err == nil {
			b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
			resp.Body.Close()
			if ok(resp.StatusCode) {
				return nil
			}
			last = fmt.Sprintf("HTTP %d %s", resp.StatusCode, strings.TrimSpace(string(b)))
		}
		select {
		case <-exited:
			return errExited
		case <-ctx.Done():
			return fmt.Errorf("%s: %w (last answer: %s)", url, ctx.Err(), last)
		case <-time.After(100 * time.Millisecond):
		}
	}
}
