package stack

import (
	"bytes"
	"errors"
	"fmt"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Process is one child process (the functions server, the connector; the load run's
// too), run in its own process group so that stopping it stops everything it
// started, and tied to this process's life (Pdeathsig) so that it does not outlive a
// crashed parent. It can be started again after it stopped.
type Process struct {
	name string
	path string
	env  []string
	// out receives every line the process writes (stdout and stderr).
	out func(component, line string)

	mu      sync.Mutex
	cmd     *exec.Cmd
	done    chan struct{}
	started time.Time
	tail    *tailBuffer
}

// NewProcess prepares the child name: the binary at path with env (see ChildEnv);
// out (may be nil) receives every line it writes.
func NewProcess(name, path string, env []string, out func(component, line string)) *Process {
	return &Process{name: name, path: path, env: env, out: out, tail: newTailBuffer(60)}
}

// Name is the component's name.
func (p *Process) Name() string { return p.name }

// Start launches the process. It is an error to start a running process.
func (p *Process) Start() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd != nil {
		return fmt.Errorf("%s is already running (pid %d)", p.name, p.cmd.Process.Pid)
	}
	cmd := exec.Command(p.path)
	cmd.Env = p.env
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	w := &lineWriter{emit: func(line string) {
		p.tail.add(line)
		if p.out != nil {
			p.out(p.name, line)
		}
	}}
	cmd.Stdout, cmd.Stderr = w, w
	started := time.Now()
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", p.name, err)
	}
	done := make(chan struct{})
	go func() {
		_ = cmd.Wait() // also waits for the output copying to finish
		w.flush()
		close(done)
	}()
	p.cmd, p.done, p.started = cmd, done, started
	return nil
}

// StartedAt is when the running process was started (just before fork/exec).
func (p *Process) StartedAt() time.Time {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.started
}

// PID is the running process's id, 0 when stopped.
func (p *Process) PID() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil {
		return 0
	}
	return p.cmd.Process.Pid
}

// HasExited reports whether the process was started and has exited without being
// stopped.
func (p *Process) HasExited() bool {
	p.mu.Lock()
	done := p.done
	p.mu.Unlock()
	if done == nil {
		return false
	}
	select {
	case <-done:
		return true
	default:
		return false
	}
}

// Exited is closed when the running process exits (nil when stopped).
func (p *Process) Exited() <-chan struct{} {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.done
}

// Stop sends sig to the process group, waits up to grace for the process to exit,
// then kills the group. It is safe to call on a stopped process.
func (p *Process) Stop(sig syscall.Signal, grace time.Duration) {
	p.mu.Lock()
	cmd, done := p.cmd, p.done
	p.cmd, p.done = nil, nil
	p.mu.Unlock()
	if cmd == nil {
		return
	}
	pgid := cmd.Process.Pid
	_ = syscall.Kill(-pgid, sig)
	select {
	case <-done:
	case <-time.After(grace):
		_ = syscall.Kill(-pgid, syscall.SIGKILL)
		<-done
	}
	// Anything the process started in its group and left behind goes too; wait
	// until the group is empty, so that "stopped" means nothing is left running.
	if syscall.Kill(-pgid, syscall.SIGKILL) == nil {
		deadline := time.Now().Add(3 * time.Second)
		for syscall.Kill(-pgid, 0) == nil && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
	}
}

// LogTail is the process's last lines of output, for error messages.
func (p *Process) LogTail() string { return p.tail.String() }

// lineWriter splits a byte stream into lines.
type lineWriter struct {
	mu   sync.Mutex
	buf  []byte
	emit func(string)
}

func (w *lineWriter) Write(b []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf = append(w.buf, b...)
	for {
		i := bytes.IndexByte(w.buf, '\n')
		if i < 0 {
			break
		}
		line := strings.TrimRight(string(w.buf[:i]), "\r")
		w.buf = w.buf[i+1:]
		w.emit(line)
	}
	// A runaway line without a newline is emitted in pieces rather than kept.
	if len(w.buf) > 64<<10 {
		w.emit(string(w.buf))
		w.buf = nil
	}
	return len(b), nil
}

func (w *lineWriter) flush() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.buf) > 0 {
		w.emit(string(w.buf))
		w.buf = nil
	}
}

// tailBuffer keeps the last n lines.
type tailBuffer struct {
	mu    sync.Mutex
	n     int
	lines []string
}

func newTailBuffer(n int) *tailBuffer { return &tailBuffer{n: n} }

func (t *tailBuffer) add(line string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.lines = append(t.lines, line)
	if len(t.lines) > t.n {
		t.lines = t.lines[len(t.lines)-t.n:]
	}
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return strings.Join(t.lines, "\n")
}

// errExited is returned when a process exits while the stack waits for it.
var errExited = errors.New("exited")
