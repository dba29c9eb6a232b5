// Package logtest holds what tests need to read the logs a component writes.
package logtest

import (
	"bytes"
	"sync"
)

// Buffer collects log output from several goroutines (slog handlers, child
// processes' pipes) for a test to read while they write.
type Buffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

// Write appends p.
func (s *Buffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

// String returns everything written so far.
func (s *Buffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
