package load

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Build compiles pkg (e.g. "./connector") from the module at root into dir/name.
func Build(ctx context.Context, root, pkg, dir, name string) (string, error) {
	out := filepath.Join(dir, name)
	cmd := exec.CommandContext(ctx, "go", "build", "-o", out, pkg)
	cmd.Dir = root
	var b bytes.Buffer
	cmd.Stdout, cmd.Stderr = &b, &b
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("go build %s: %w\n%s", pkg, err, b.String())
	}
	return out, nil
}

// ModuleRoot walks up from the working directory to the directory holding go.mod.
func ModuleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("find the module root: %w", err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("find the module root: no go.mod above the working directory")
		}
		dir = parent
	}
}

// Child is a subprocess in its own process group, killed with this process
// (Pdeathsig) if we die first.
type Child struct {
	Name string
	Cmd  *exec.Cmd
	// Started is when the process was started (just before fork/exec returned).
	Started time.Time

	done chan struct{}
	out  *tail
}

// ownedPrefixes are variables the harness sets for its children: inherited values are
// dropped so that a developer's shell cannot point a child elsewhere.
var ownedPrefixes = []string{"TWITCH_", "EVENTSUB_", "CONNECTOR_", "GOOGLE_CLOUD_PROJECT=", "FIRESTORE_", "PUBSUB_",
	"BUS_PREFIX=", "PORT=", "HOST=", "FUNCTION_TARGET=", "LOG_LEVEL=", "NORMALIZE_", "EGRESS_", "EVENT_TTL="}

// Env is this process's environment without the variables the harness owns, plus vars.
func Env(vars map[string]string) []string {
	var out []string
	for _, kv := range os.Environ() {
		if !slices.ContainsFunc(ownedPrefixes, func(p string) bool { return strings.HasPrefix(kv, p) }) {
			out = append(out, kv)
		}
	}
	for k, v := range vars {
		out = append(out, k+"="+v)
	}
	return out
}

// StartChild starts path with env, keeping the last lines of its output.
func StartChild(name, path string, env []string) (*Child, error) {
	cmd := exec.Command(path)
	cmd.Env = env
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	t := &tail{max: 64 << 10}
	cmd.Stdout, cmd.Stderr = t, t
	c := &Child{Name: name, Cmd: cmd, done: make(chan struct{}), out: t}
	c.Started = time.Now()
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	go func() { _ = cmd.Wait(); close(c.done) }()
	return c, nil
}

// Pid is the child's process id.
func (c *Child) Pid() int { return c.Cmd.Process.Pid }

// Exited is closed when the child has exited.
func (c *Child) Exited() <-chan struct{} { return c.done }

// Output is the last 64 KiB of the child's output.
func (c *Child) Output() string { return c.out.String() }

// Stop sends sig to the child's process group, waits up to grace, then kills the
// group. Safe to call more than once.
func (c *Child) Stop(sig syscall.Signal, grace time.Duration) {
	pgid := c.Cmd.Process.Pid
	select {
	case <-c.done:
	default:
		_ = syscall.Kill(-pgid, sig)
		select {
		case <-c.done:
		case <-time.After(grace):
			_ = syscall.Kill(-pgid, syscall.SIGKILL)
			<-c.done
		}
	}
	_ = syscall.Kill(-pgid, syscall.SIGKILL) // anything left in its group
}

// tail keeps the last max bytes written to it.
type tail struct {
	mu  sync.Mutex
	max int
	b   []byte
}

func (t *tail) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.b = append(t.b, p...)
	if len(t.b) > t.max {
		t.b = append([]byte(nil), t.b[len(t.b)-t.max:]...)
	}
	return len(p), nil
}

func (t *tail) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.b)
}
