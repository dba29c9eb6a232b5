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
	p := NewProcess("tree", script, os.Environ(), func(_, line string) {
		mu.Lock()
		lines = append(lines, line)
		mu.Unlock()
	})
	if err := p.Start(); err != nil {
		t.Fatal(err)
	}
	if err := p.Start(); err == nil {
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
		t.Fatalf("no output from the script: %q", p.LogTail())
	}
	pid := p.PID()
	begin := time.Now()
	p.Stop(syscall.SIGTERM, 300*time.Millisecond)
	if d := time.Since(begin); d > 5*time.Second {
		t.Errorf("stop took %s", d)
	}
	if err := syscall.Kill(-pid, 0); !errors.Is(err, syscall.ESRCH) {
		t.Errorf("process group %d still has members after stop: %v", pid, err)
	}
	if p.PID() != 0 || p.HasExited() {
		t.Errorf("a stopped process reports pid %d, exited %v", p.PID(), p.HasExited())
	}
	p.Stop(syscall.SIGTERM, time.Second) // safe on a stopped process
	if !strings.Contains(p.LogTail(), "ready") {
		t.Errorf("log tail %q lacks the script's output", p.LogTail())
	}
}

func TestProcessReportsAnUnexpectedExit(t *testing.T) {
	p := NewProcess("false", "/bin/false", nil, nil)
	if err := p.Start(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-p.Exited():
	case <-time.After(5 * time.Second):
		t.Fatal("no exit")
	}
	if !p.HasExited() {
		t.Error("hasExited is false after the process ended")
	}
	p.Stop(syscall.SIGTERM, time.Second)
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

// A child's environment keeps this process's variables except those the stack
// decides, and adds the given ones.
func TestChildEnvDropsOwnedVariables(t *testing.T) {
	t.Setenv("TWITCH_CLIENT_ID", "from-the-shell")
	t.Setenv("EGRESS_MAX_AGE", "1m")
	t.Setenv("BITBRAT_UNRELATED", "kept")
	env := ChildEnv(map[string]string{"PORT": "1234"})
	has := func(kv string) bool {
		for _, e := range env {
			if e == kv {
				return true
			}
		}
		return false
	}
	if has("TWITCH_CLIENT_ID=from-the-shell") || has("EGRESS_MAX_AGE=1m") {
		t.Errorf("an owned variable was inherited: %v", env)
	}
	if !has("BITBRAT_UNRELATED=kept") || !has("PORT=1234") {
		t.Errorf("environment lacks an inherited or given variable: %v", env)
	}
}
