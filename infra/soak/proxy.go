package soak

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// helixProxy stands between the functions and the fake Twitch's Helix API
// (TWITCH_API_BASE_URL of the functions, and only theirs): it passes every request on
// and, for a request whose body holds an armed marker, lets the request reach Twitch
// but loses its answer — the connection is closed before a byte of the response is
// written, as a reset or a timeout after the request left would. The fake has acted
// on it: the message was sent; the sender cannot know.
type helixProxy struct {
	ln     net.Listener
	srv    *http.Server
	target atomic.Pointer[string] // the fake's base URL (scheme://host), set once the stack runs
	ready  chan struct{}
	hc     *http.Client

	hits    atomic.Int64
	tooMany atomic.Int64 // 429 answers to sends (chat messages, whispers)
	mu      sync.Mutex
	lose    map[string]bool // body markers whose answer is lost, once each
	lost    []string        // markers whose answer was lost
	// tooManyAt describes each 429 to a send (time, path, Twitch's message).
	tooManyAt []string
}

func newHelixProxy() (*helixProxy, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("helix proxy: %w", err)
	}
	p := &helixProxy{ln: ln, ready: make(chan struct{}), lose: map[string]bool{},
		hc: &http.Client{Timeout: 30 * time.Second}}
	p.srv = &http.Server{Handler: p, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = p.srv.Serve(ln) }()
	return p, nil
}

// BaseURL is what the functions get as TWITCH_API_BASE_URL.
func (p *helixProxy) BaseURL() string { return "http://" + p.ln.Addr().String() + "/helix" }

// SetTarget points the proxy at the fake's Helix base URL (…/helix).
func (p *helixProxy) SetTarget(apiBaseURL string) {
	t := strings.TrimSuffix(apiBaseURL, "/helix")
	p.target.Store(&t)
	close(p.ready)
}

// LoseAnswerTo arms marker: the next request whose body contains it gets no answer.
func (p *helixProxy) LoseAnswerTo(marker string) {
	p.mu.Lock()
	p.lose[marker] = true
	p.mu.Unlock()
}

// Lost are the markers whose answer was lost so far.
func (p *helixProxy) Lost() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.lost...)
}

// TooMany is the number of 429 answers to chat messages and whispers.
func (p *helixProxy) TooMany() int64 { return p.tooMany.Load() }

// TooManyDetails describes each 429 to a send.
func (p *helixProxy) TooManyDetails() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.tooManyAt...)
}

// Hits is the number of requests the proxy passed on.
func (p *helixProxy) Hits() int64 { return p.hits.Load() }

func (p *helixProxy) Close() {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_ = p.srv.Shutdown(ctx)
}

func (p *helixProxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	select {
	case <-p.ready:
	case <-r.Context().Done():
		return
	case <-time.After(60 * time.Second): // a hang guard: the stack normally runs within seconds
		http.Error(w, "helix proxy: no target yet", http.StatusBadGateway)
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if err != nil {
		http.Error(w, "helix proxy: read body: "+err.Error(), http.StatusBadRequest)
		return
	}
	p.hits.Add(1)
	req, err := http.NewRequestWithContext(r.Context(), r.Method, *p.target.Load()+r.URL.RequestURI(), bytes.NewReader(body))
	if err != nil {
		http.Error(w, "helix proxy: "+err.Error(), http.StatusBadGateway)
		return
	}
	req.Header = r.Header.Clone()
	resp, err := p.hc.Do(req)
	if err != nil {
		http.Error(w, "helix proxy: "+err.Error(), http.StatusBadGateway)
		return
	}
	defer resp.Body.Close()
	answer, _ := io.ReadAll(resp.Body)
	if resp.StatusCode == http.StatusTooManyRequests &&
		(strings.HasSuffix(r.URL.Path, "/chat/messages") || strings.HasSuffix(r.URL.Path, "/whispers")) {
		p.tooMany.Add(1)
		p.mu.Lock()
		p.tooManyAt = append(p.tooManyAt, time.Now().Format("15:04:05.000")+" "+r.URL.Path+": "+strings.TrimSpace(string(answer)))
		p.mu.Unlock()
	}
	if marker := p.armed(body); marker != "" {
		// Twitch has acted; its answer goes nowhere.
		if hj, ok := w.(http.Hijacker); ok {
			if conn, _, err := hj.Hijack(); err == nil {
				_ = conn.Close()
				return
			}
		}
	}
	for k, v := range resp.Header {
		w.Header()[k] = v
	}
	w.WriteHeader(resp.StatusCode)
	_, _ = w.Write(answer)
}

// armed disarms and returns the marker body contains, if any.
func (p *helixProxy) armed(body []byte) string {
	p.mu.Lock()
	defer p.mu.Unlock()
	for m := range p.lose {
		if bytes.Contains(body, []byte(m)) {
			delete(p.lose, m)
			p.lost = append(p.lost, m)
			return m
		}
	}
	return ""
}
