package main

import (
	"bufio"
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/bitbrat/twitch-edge/infra/stack"
	"github.com/bitbrat/twitch-edge/shared/emulators"
)

func TestMain(m *testing.M) { os.Exit(emulators.RunTests(m, emulators.PubSub, emulators.Firestore)) }

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// make run's output, end to end: the devstack binary on the shared emulators. Its
// first line comes before any build or readiness line (the first minute is not
// silent) and names this run's log folder; each step prints when it is ready, with its
// time; the folder holds the components' logs; Ctrl-C stops everything.
func TestRunOutput(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the whole stack")
	}
	root, err := stack.ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "devstack")
	if err := stack.Build(context.Background(), root, dir, stack.Binary{Pkg: "./infra/cmd/devstack", Name: "devstack"}); err != nil {
		t.Fatal(err)
	}
	logs := filepath.Join(dir, "logs")
	_, connPort, _ := net.SplitHostPort(freeAddr(t))
	cmd := exec.Command(bin, "-functions", freeAddr(t), "-connector-port", connPort, "-twitch", freeAddr(t), "-control", freeAddr(t),
		"-bin", filepath.Join(dir, "bin"), "-logs", logs)
	cmd.Dir = root
	cmd.Env = append(os.Environ(),
		"PUBSUB_EMULATOR_HOST="+emulators.Host(emulators.PubSub), "FIRESTORE_EMULATOR_HOST="+emulators.Host(emulators.Firestore),
		"GOOGLE_CLOUD_PROJECT="+emulators.ProjectID(t))
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	lines := make(chan string, 1000)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
		exited <- cmd.Wait()
	}()
	defer func() { _ = cmd.Process.Kill() }()

	var got []string
	deadline := time.After(4 * time.Minute)
	for ready := false; !ready; {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatalf("devstack exited before it was ready:\n%s\nstderr: %s", strings.Join(got, "\n"), stderr.String())
			}
			got = append(got, l)
			ready = strings.Contains(l, "stack      ready in ")
		case <-deadline:
			t.Fatalf("devstack not ready after 4 minutes:\n%s", strings.Join(got, "\n"))
		}
	}
	out := strings.Join(got, "\n")
	at := func(s string) int {
		for i, l := range got {
			if strings.Contains(l, s) {
				return i
			}
		}
		t.Errorf("no line says %q:\n%s", s, out)
		return -1
	}
	if !strings.Contains(got[0], "starting: building the functions server and the connector") || !strings.Contains(got[0], "logs in "+logs+string(filepath.Separator)) {
		t.Errorf("first line %q", got[0])
	}
	order := []string{"starting: building", "built the functions server and the connector in ", "topology ready in ", "bot token ready in ",
		"functions server ready in ", "connector ready in ", "stack      ready in "}
	prev := -1
	for _, s := range order {
		if i := at(s); i <= prev {
			t.Errorf("%q at line %d, not after line %d:\n%s", s, i, prev, out)
		} else {
			prev = i
		}
	}
	if i := at("functions server ready in "); i >= 0 && !strings.Contains(got[i], "(serving ") {
		t.Errorf("the functions' names are not folded into the ready line: %q", got[i])
	}
	runDir := strings.TrimSpace(got[0][strings.Index(got[0], "logs in ")+len("logs in "):])
	for _, c := range []string{"functions.log", "connector.log"} {
		if fi, err := os.Stat(filepath.Join(runDir, c)); err != nil || fi.Size() == 0 {
			t.Errorf("%s in the run's folder %s: %v", c, runDir, err)
		}
	}
	if target, err := os.Readlink(filepath.Join(logs, "latest")); err != nil || target != filepath.Base(runDir) {
		t.Errorf("logs/latest -> %q (%v), want %s", target, err, filepath.Base(runDir))
	}

	if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	var rest []string
	for l := range lines {
		rest = append(rest, l)
	}
	if err := <-exited; err != nil {
		t.Errorf("devstack after Ctrl-C: %v\nstderr: %s", err, stderr.String())
	}
	if tail := strings.Join(rest, "\n"); !strings.Contains(tail, "nothing left running") {
		t.Errorf("after Ctrl-C:\n%s", tail)
	}
}

// -v prints JSON log lines as "SEVERITY message key=value", without the raw JSON.
func TestReadable(t *testing.T) {
	for _, tc := range []struct {
		in   map[string]any
		want string
	}{
		{map[string]any{"severity": "INFO", "message": "eventsub: session welcomed", "time": "x", "sessionId": "abc",
			"logging.googleapis.com/trace": "t"}, "INFO eventsub: session welcomed sessionId=abc"},
		{map[string]any{"severity": "WARNING", "message": "m", "error": "a b", "n": float64(3)}, `WARNING m error="a b" n=3`},
	} {
		if got := readable(tc.in); got != tc.want {
			t.Errorf("readable(%v) = %q, want %q", tc.in, got, tc.want)
		}
	}
	l := &eventLog{p: newPrinter(&strings.Builder{})}
	for _, s := range []string{`Serving function: "Normalize"`, `Serving function: ""`, `Serving function: "EgressChat"`, `Serving function: "Normalize"`} {
		if !l.servingLine(s) {
			t.Errorf("%s not folded", s)
		}
	}
	if strings.Join(l.serving, ",") != "Normalize,EgressChat" || l.servingLine(`{"message":"Serving"}`) {
		t.Errorf("serving %v", l.serving)
	}
}
