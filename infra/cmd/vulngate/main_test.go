package main

import (
	"strings"
	"testing"
)

func TestGate(t *testing.T) {
	const (
		stdCalled = `{"finding":{"osv":"GO-1","fixed_version":"v1.26.9","trace":[{"module":"stdlib","version":"v1.26.8","package":"net/http","function":"Serve"}]}}`
		stdModule = `{"finding":{"osv":"GO-1","fixed_version":"v1.26.9","trace":[{"module":"stdlib","version":"v1.26.8"}]}}`
		modCalled = `{"finding":{"osv":"GO-2","fixed_version":"v1.2.0","trace":[{"module":"example.com/m","version":"v1.1.0","package":"example.com/m/p","function":"F"}]}}`
		modOnly   = `{"finding":{"osv":"GO-3","fixed_version":"v1.2.0","trace":[{"module":"example.com/m","version":"v1.1.0"}]}}`
		cfg       = `{"config":{"protocol_version":"v1.0.0"}}`
	)
	for _, c := range []struct {
		name, in string
		code     int
		says     string
	}{
		{"clean", cfg, 0, "0 reachable in required modules, 0 reachable"},
		{"standard library reported, not failing", cfg + stdModule + stdCalled, 0, "reported: GO-1 in the standard library v1.26.8 (net/http)"},
		{"module not reached", cfg + modOnly, 0, "1 not reachable"},
		{"module reached fails", cfg + modOnly + modCalled + stdCalled, 1, "FAIL: GO-2 in example.com/m@v1.1.0"},
		{"no input", "", 2, ""},
		{"not JSON", "Scanning your code...", 2, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			var out strings.Builder
			code, err := run(strings.NewReader(c.in), &out)
			if code != c.code {
				t.Fatalf("code = %d (err %v), want %d; output:\n%s", code, err, c.code, out.String())
			}
			if !strings.Contains(out.String(), c.says) {
				t.Errorf("output lacks %q:\n%s", c.says, out.String())
			}
		})
	}
}
