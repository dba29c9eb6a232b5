package stack

import (
	"os"
	"os/signal"
	"sync"
	"syscall"
)

// Done is closed when Stop has finished.
func (s *Stack) Done() <-chan struct{} { return s.stopped }

// Stop stops everything the stack started, in dependency order (the connector first,
// so it can flush to Pub/Sub; the emulators last), and removes a temporary binary
// directory. It is safe to call more than once and from any goroutine.
func (s *Stack) Stop() {
	s.stopOnce.Do(func() {
		close(s.stopping)
		defer close(s.stopped)
		s.added.stop()
		s.stopExtraConnectors()
		if s.connector != nil {
			s.StopConnector()
		}
		if s.functions != nil {
			s.StopFunctions()
		}
		if s.Fake != nil {
			s.Fake.Close()
		}
		if s.pub != nil {
			s.pub.Close()
		}
		if s.PubSub != nil {
			_ = s.PubSub.Close()
		}
		if s.Firestore != nil {
			_ = s.Firestore.Close()
		}
		for _, e := range s.emus {
			e.Stop()
		}
		if s.ownBinDir && s.BinDir != "" {
			_ = os.RemoveAll(s.BinDir)
		}
	})
}

// StopOnSignal stops the stack when this process gets SIGINT or SIGTERM, then lets
// the signal take its default course (the process ends), so that an interrupted
// test run leaves nothing behind. The returned function uninstalls the handler.
func (s *Stack) StopOnSignal() (cancel func()) {
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, os.Interrupt, syscall.SIGTERM)
	done := make(chan struct{})
	go func() {
		select {
		case sig := <-ch:
			s.Stop()
			signal.Reset(sig)
			if p, err := os.FindProcess(os.Getpid()); err == nil {
				_ = p.Signal(sig)
			}
		case <-done:
		}
	}()
	var once sync.Once
	return func() {
		once.Do(func() {
			signal.Stop(ch)
			close(done)
		})
	}
}

// loopbackAddr returns addr, or a free loopback address when addr is empty.
