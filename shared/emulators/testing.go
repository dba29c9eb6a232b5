package emulators

import (
	"context"
	"fmt"
	"os"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// RunTests is a TestMain body: it makes sure the named emulators are running, runs the
// tests, and stops what it started. An emulator already named by its environment
// variable (make test starts both once for all packages) is reused. Tests read the
// host with Host and pass it to the client they build (bus.WithEmulator,
// store.WithEmulator); this process's environment is left as it is. When an emulator
// cannot be started the tests fail with a message saying what to install; they never
// skip.
//
//	func TestMain(m *testing.M) { os.Exit(emulators.RunTests(m, emulators.Firestore)) }
func RunTests(m *testing.M, kinds ...Kind) int { return RunTestsWithSetup(m, nil, kinds...) }

// RunTestsWithSetup is RunTests with a setup function that runs once the emulators
// are up and before the tests (e.g. to fix the environment a package reads once).
func RunTestsWithSetup(m *testing.M, setup func() error, kinds ...Kind) int {
	var started []*Emulator
	defer func() {
		for _, e := range started {
			e.Stop()
		}
	}()
	for _, k := range kinds {
		if h := os.Getenv(k.EnvVar()); h != "" {
			testHosts.Store(k, h)
			continue
		}
		e, err := Start(context.Background(), k)
		if err != nil {
			fmt.Fprintf(os.Stderr, "FAIL: cannot start the %s emulator: %v\n", k, err)
			return 1
		}
		started = append(started, e)
		testHosts.Store(k, e.Host)
	}
	if setup != nil {
		if err := setup(); err != nil {
			fmt.Fprintf(os.Stderr, "FAIL: test setup: %v\n", err)
			return 1
		}
	}
	return m.Run()
}

// testHosts are the emulators RunTests provides to this test binary, by kind. It is
// the one piece of state a TestMain can hand to its tests.
var testHosts sync.Map

// Host is the "127.0.0.1:PORT" of the emulator RunTests provides for k; "" when
// TestMain did not ask for it.
func Host(k Kind) string {
	h, _ := testHosts.Load(k)
	s, _ := h.(string)
	return s
}

var projectSeq atomic.Int64

var nonID = regexp.MustCompile(`[^a-z0-9-]+`)

// ProjectID returns a project id unique to this test run and test. Both emulators keep
// projects apart, so tests that use their own project need no clean-up and can run in
// parallel.
func ProjectID(t testing.TB) string {
	name := strings.ToLower(nonID.ReplaceAllString(strings.ToLower(t.Name()), "-"))
	if len(name) > 12 {
		name = name[:12]
	}
	return fmt.Sprintf("t-%s-%d-%d", strings.Trim(name, "-"), time.Now().UnixNano()%1e9, projectSeq.Add(1))
}
