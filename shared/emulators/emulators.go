// Package emulators starts and stops the official Google Cloud Pub/Sub and Firestore
// emulators (shipped with the Google Cloud CLI) on loopback, for tests, benchmarks and
// the local stack. Each emulator runs in its own process group so that stopping it
// also stops the Java process the wrapper script starts.
package emulators

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"time"
)

// Kind names an emulator.
type Kind string

// The emulators this project uses.
const (
	PubSub    Kind = "pubsub"
	Firestore Kind = "firestore"
)

// EnvVar is the variable the Google Cloud client libraries read to find the emulator.
func (k Kind) EnvVar() string {
	if k == PubSub {
		return "PUBSUB_EMULATOR_HOST"
	}
	return "FIRESTORE_EMULATOR_HOST"
}

// Emulator is one running emulator process.
type Emulator struct {
	Kind Kind
	// Host is "127.0.0.1:PORT", the value for Kind.EnvVar().
	Host string

	mu   sync.Mutex
	cmd  *exec.Cmd
	out  *bytes.Buffer
	done chan struct{}
}

// installHint is printed when the emulator cannot be found: tests fail with it, they
// do not skip.
const installHint = "the official emulators come with the Google Cloud CLI: " +
	"apt-get install google-cloud-cli-pubsub-emulator google-cloud-cli-firestore-emulator " +
	"(and a Java 11+ runtime), or set CLOUDSDK_ROOT to the SDK's directory"

// SDKRoot finds the Google Cloud SDK: $CLOUDSDK_ROOT, else the directory of the
// `gcloud` on PATH (resolved through links), else the Debian package's location.
func SDKRoot() (string, error) {
	if r := os.Getenv("CLOUDSDK_ROOT"); r != "" {
		return r, nil
	}
	if p, err := exec.LookPath("gcloud"); err == nil {
		if real, err := filepath.EvalSymlinks(p); err == nil {
			return filepath.Dir(filepath.Dir(real)), nil
		}
	}
	if _, err := os.Stat("/usr/lib/google-cloud-sdk"); err == nil {
		return "/usr/lib/google-cloud-sdk", nil
	}
	return "", fmt.Errorf("google cloud SDK not found; %s", installHint)
}

func (k Kind) command(root, host string, port int) (*exec.Cmd, error) {
	var script string
	var args []string
	switch k {
	case PubSub:
		script = filepath.Join(root, "platform", "pubsub-emulator", "bin", "cloud-pubsub-emulator")
		args = []string{"--host=" + host, "--port=" + strconv.Itoa(port)}
	case Firestore:
		script = filepath.Join(root, "platform", "cloud-firestore-emulator", "cloud_firestore_emulator")
		args = []string{"start", "--host=" + host, "--port=" + strconv.Itoa(port)}
	default:
		return nil, fmt.Errorf("unknown emulator %q", k)
	}
	if _, err := os.Stat(script); err != nil {
		return nil, fmt.Errorf("%s emulator not found at %s; %s", k, script, installHint)
	}
	if _, err := exec.LookPath("java"); err != nil {
		return nil, fmt.Errorf("%s emulator needs java on PATH; %s", k, installHint)
	}
	cmd := exec.Command(script, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	return cmd, nil
}

// Start launches the emulator on a free loopback port and waits until it answers.
func Start(ctx context.Context, k Kind) (*Emulator, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	e := &Emulator{Kind: k, Host: "127.0.0.1:" + strconv.Itoa(port)}
	if err := e.start(ctx); err != nil {
		return nil, err
	}
	return e, nil
}

// StartAt launches the emulator on the given host:port (the local stack uses fixed
// ports so that a user can point tools at them).
func StartAt(ctx context.Context, k Kind, hostPort string) (*Emulator, error) {
	e := &Emulator{Kind: k, Host: hostPort}
	if err := e.start(ctx); err != nil {
		return nil, err
	}
	return e, nil
}

func (e *Emulator) start(ctx context.Context) error {
	root, err := SDKRoot()
	if err != nil {
		return err
	}
	host, portStr, err := net.SplitHostPort(e.Host)
	if err != nil {
		return fmt.Errorf("emulator address %q: %w", e.Host, err)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil {
		return fmt.Errorf("emulator port %q: %w", portStr, err)
	}
	cmd, err := e.Kind.command(root, host, port)
	if err != nil {
		return err
	}
	out := &bytes.Buffer{}
	cmd.Stdout = &lockedWriter{w: out}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s emulator: %w", e.Kind, err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	e.mu.Lock()
	e.cmd, e.out, e.done = cmd, out, done
	e.mu.Unlock()

	if err := e.waitReady(ctx, done); err != nil {
		e.Stop()
		return fmt.Errorf("%s emulator on %s not ready: %w\n%s", e.Kind, e.Host, err, tail(cmd.Stdout.(*lockedWriter)))
	}
	return nil
}

func (e *Emulator) waitReady(ctx context.Context, exited <-chan struct{}) error {
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	url := "http://" + e.Host + "/"
	if e.Kind == PubSub {
		url = "http://" + e.Host + "/v1/projects/ready-check/topics"
	}
	client := &http.Client{Timeout: 2 * time.Second}
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if resp, err := client.Do(req); err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-exited:
			return errors.New("process exited")
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// Stop kills the emulator's whole process group and waits for it to exit. It is safe
// to call more than once.
func (e *Emulator) Stop() {
	e.mu.Lock()
	cmd, done := e.cmd, e.done
	e.cmd = nil
	e.mu.Unlock()
	if cmd == nil || cmd.Process == nil {
		return
	}
	_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-done
	}
}

// Restart stops the emulator and starts it again on the same address. All its data
// is lost, as after a real restart; fault tests use it.
func (e *Emulator) Restart(ctx context.Context) error {
	e.Stop()
	return e.start(ctx)
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

type lockedWriter struct {
	mu sync.Mutex
	w  *bytes.Buffer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

func tail(l *lockedWriter) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.w.Bytes()
	if len(b) > 2000 {
		b = b[len(b)-2000:]
	}
	return string(b)
}

// Pause freezes the emulator's processes (SIGSTOP): clients see it hang, as with a
// network partition, and it loses nothing. Resume undoes it.
func (e *Emulator) Pause() error { return e.signal(syscall.SIGSTOP) }

// Resume continues a paused emulator.
func (e *Emulator) Resume() error { return e.signal(syscall.SIGCONT) }

func (e *Emulator) signal(sig syscall.Signal) error {
	e.mu.Lock()
	cmd := e.cmd
	e.mu.Unlock()
	if cmd == nil || cmd.Process == nil {
		return errors.New("emulator not running")
	}
	return syscall.Kill(-cmd.Process.Pid, sig)
}

// StartAll starts one emulator of each kind in addrs, concurrently (each takes a few
// seconds to boot): at its "host:port", or a free loopback port when the address is
// empty. If any fails, the others are stopped and the errors returned together.
func StartAll(ctx context.Context, addrs map[Kind]string) (map[Kind]*Emulator, error) {
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
		out  = make(map[Kind]*Emulator, len(addrs))
	)
	for k, addr := range addrs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var e *Emulator
			var err error
			if addr == "" {
				e, err = Start(ctx, k)
			} else {
				e, err = StartAt(ctx, k, addr)
			}
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs = append(errs, fmt.Errorf("start the %s emulator: %w", k, err))
				return
			}
			out[k] = e
		}()
	}
	wg.Wait()
	if len(errs) > 0 {
		for _, e := range out {
			e.Stop()
		}
		return nil, errors.Join(errs...)
	}
	return out, nil
}
