package main

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
)

// progress prints a start-up step as it finishes (stack.Options.Progress).
func (l *eventLog) progress(step string, took time.Duration) {
	d := took.Round(10 * time.Millisecond)
	switch step {
	case "build":
		l.p.line("stack", "built the functions server and the connector in %s", d)
	case "functions server":
		l.mu.Lock()
		names := strings.Join(l.serving, ", ")
		l.mu.Unlock()
		if names != "" {
			names = " (serving " + names + ")"
		}
		l.p.line("stack", "functions server ready in %s%s", d, names)
	case "connector":
		l.p.line("stack", "connector ready in %s (EventSub session welcomed, subscriptions enabled)", d)
	default:
		l.p.line("stack", "%s ready in %s", step, d)
	}
}

// servingLine folds the functions framework's `Serving function: "Name"` lines (one
// per function, plain text on stdout) into the functions server's ready line.
func (l *eventLog) servingLine(line string) bool {
	rest, ok := strings.CutPrefix(strings.TrimSpace(line), "Serving function:")
	if !ok {
		return false
	}
	name := strings.TrimSpace(rest)
	if u, err := strconv.Unquote(name); err == nil {
		name = u
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if name != "" && !slices.Contains(l.serving, name) { // the framework also prints one for its own "" path
		l.serving = append(l.serving, name)
	}
	return true
}

// skipFields are the parts of a JSON log line that -v does not repeat: the printer
// has its own time, and the trace fields mean nothing locally.
var skipFields = map[string]bool{"time": true, "timestamp": true, "severity": true, "message": true, "level": true, "msg": true}

// readable is one JSON log line for -v: "SEVERITY message key=value ...", keys
// sorted, long values clipped.
func readable(m map[string]any) string {
	sev, _ := m["severity"].(string)
	msg, _ := m["message"].(string)
	if msg == "" {
		msg, _ = m["msg"].(string)
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		if !skipFields[k] && !strings.HasPrefix(k, "logging.googleapis.com/") {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	var b strings.Builder
	if sev != "" {
		b.WriteString(sev)
		b.WriteByte(' ')
	}
	b.WriteString(msg)
	for _, k := range keys {
		v := m[k]
		var s string
		switch x := v.(type) {
		case string:
			s = x
			if strings.ContainsAny(s, " \t\"=") {
				s = strconv.Quote(s)
			}
		case map[string]any, []any:
			s = clip(fmt.Sprint(x), 120)
		default:
			s = fmt.Sprint(x)
		}
		fmt.Fprintf(&b, " %s=%s", k, clip(s, 160))
	}
	return b.String()
}
