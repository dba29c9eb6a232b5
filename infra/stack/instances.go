package stack

import (
	"fmt"
	"net"
	"sync"
	"syscall"
	"time"
)

// Instance is one connector process of the stack and the base URL of its health
// server (/healthz, /readyz, /metrics). Its Process can be stopped with any signal
// (SIGKILL: a crash) and started again on the same port.
type Instance struct {
	*Process
	URL string
}

// Instances are the connector processes the stack started, the first on
// ConnectorURL (none in serverless mode), whether running or stopped.
func (s *Stack) Instances() []Instance {
	if s.connector == nil {
		return nil
	}
	out := []Instance{{Process: s.connector, URL: s.ConnectorURL}}
	for _, e := range s.extra {
		out = append(out, Instance{Process: e.proc, URL: e.url})
	}
	return out
}

// AddInstance prepares one more connector process configured as the stack's own (the
// transport's variables and Options.ConnectorEnv) on a free port, named name in the
// output, with CONNECTOR_INSTANCE_ID id: in conduit mode a new member of the fleet, as
// a rolling deploy or a replacement starts one. The caller starts it; Stop stops it
// with the others.
func (s *Stack) AddInstance(name, id string) (Instance, error) {
	if s.connector == nil {
		return Instance{}, errNoConnector
	}
	a, err := loopbackAddr("")
	if err != nil {
		return Instance{}, fmt.Errorf("%s's port: %w", name, err)
	}
	_, port, _ := net.SplitHostPort(a)
	_, mode := s.modeEnv()
	own := map[string]string{"PORT": port, "HOST": "127.0.0.1", "CONNECTOR_INSTANCE_ID": id}
	for k, v := range mode {
		own[k] = v
	}
	p := NewProcess(name, s.BinDir+"/"+Connector.Name, s.env(own, s.opts.ConnectorEnv), s.opts.Output)
	s.added.mu.Lock()
	s.added.procs = append(s.added.procs, p)
	s.added.mu.Unlock()
	return Instance{Process: p, URL: "http://127.0.0.1:" + port}, nil
}

// addedInstances are the processes AddInstance made, for Stop.
type addedInstances struct {
	mu    sync.Mutex
	procs []*Process
}

func (a *addedInstances) stop() {
	a.mu.Lock()
	procs := append([]*Process(nil), a.procs...)
	a.mu.Unlock()
	for _, p := range procs {
		p.Stop(syscall.SIGTERM, 15*time.Second)
	}
}
