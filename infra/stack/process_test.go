package stack

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// A process that started children of its own is stopped with all of them, and its
// output arrives line by line.
func TestProcessStopKillsTheWholeGroup(t *testing.T) {
	dir := t.TempDir()
	script := filepath.Join(dir, "tree.sh")
	// The parent ignores SIGTERM (as a stuck process would), so stop must escalate;
	// its background child would outlive a plain kill of the parent.
	body := "#!/bin/sh\ntrap '' TERM\nsleep 300 &\necho child $!\necho ready\nwhile :; do sleep 1; done\n"
	if err := os.WriteFile(script, []byte(body), 0o755); err != nil {
		t.Fatal(err)
	}
	var (
		mu    sync.Mutex
		lines []string
	)
	p := newProcess("tree", script, os.Environ(), func(_, line string) {
		mu.Lock()
		lines = append(lines, line)
		mu.Unlock()
	})
	if err := p.start(); err != nil {
		t.Fatal(err)
	}
	if err := p.start(); err == nil {
		t.Error("a second start of a running process succeeded")
	}
	deadline := time.Now().Add(10 * time.Second)
	child := ""
	for child == "" && time.Now().Before(deadline) {
		mu.Lock()
		for _, l := range lines {
			if c, ok := strings.CutPrefix(l, "child "); ok {
				child = c
			}
		}
		mu.Unlock()
		time.Sleep(20 * time.Millisecond)
	}
	if child == "" {
		t.Fatalf("no output from the script: %q", p.logTail())
	}
	pid := p.pid()
	begin := time.Now()
	p.stop(syscall.SIGTERM, 300*time.Millisecond)
	if d := time.Since(begin); d > 5*time.Second {
		t.Errorf("stop took %s", d)
	}
	if err := syscall.Kill(-pid, 0); !errors.Is(err, syscall.ESRCH) {
		t.Errorf("process group %d still has members after stop: %v", pid, err)
	}
	if p.pid() != 0 || p.hasExited() {
		t.Errorf("a stopped process reports pid %d, exited %v", p.pid(), p.hasExited())
	}
	p.stop(syscall.SIGTERM, time.Second) // safe on a stopped process
	if !strings.Contains(p.logTail(), "ready") {
		t.Errorf("log tail %q lacks the script's output", p.logTail())
	}
}

func TestProcessReportsAnUnexpectedExit(t *testing.T) {
	p := newProcess("false", "/bin/false", nil, nil)
	if err := p.start(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-p.exited():
	case <-time.After(5 * time.Second):
		t.Fatal("no exit")
	}
	if !p.hasExited() {
		t.Error("hasExited is false after the process ended")
	}
	p.stop(syscall.SIGTERM, time.Second)
}

func TestLineWriterSplitsAndFlushes(t *testing.T) {
	var got []string
	w := &lineWriter{emit: func(s string) { got = append(got, s) }}
	_, _ = w.Write([]byte("one\r\ntw"))
	_, _ = w.Write([]byte("o\nthree"))
	w.flush()
	if strings.Join(got, "|") != "one|two|three" {
		t.Errorf("lines %q", got)
	}
}

func TestModuleRootFindsThisModule(t *testing.T) {
	root, err := ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "connector")); err != nil {
		t.Errorf("module root %s has no connector/: %v", root, err)
	}
}
