// Package config parses the environment once, at start-up, into typed structs. A bad
// value stops start-up with an error that names the variable; secrets are held in a
// type that never prints its value.
package config

import (
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/bitbrat/twitch-edge/shared/logging"
)

// Lookup reads one variable; os.LookupEnv in production, a map in tests.
type Lookup func(name string) (string, bool)

// Env is the process environment.
func Env() Lookup { return os.LookupEnv }

// Map is a Lookup over a fixed set of variables.
func Map(m map[string]string) Lookup {
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

// Reader accumulates the errors of several variables so that start-up reports them
// all at once.
type Reader struct {
	get  Lookup
	errs []error
}

// NewReader reads variables through get.
func NewReader(get Lookup) *Reader { return &Reader{get: get} }

func (r *Reader) value(name string) (string, bool) {
	v, ok := r.get(name)
	v = strings.TrimSpace(v)
	return v, ok && v != ""
}

func (r *Reader) fail(name, format string, args ...any) {
	r.errs = append(r.errs, fmt.Errorf("%s: %s", name, fmt.Sprintf(format, args...)))
}

// Err returns every problem found, each naming its variable, or nil.
func (r *Reader) Err() error { return errors.Join(r.errs...) }

// String returns the variable, or def when it is unset or empty.
func (r *Reader) String(name, def string) string {
	if v, ok := r.value(name); ok {
		return v
	}
	return def
}

// Required returns the variable and records an error when it is unset or empty.
func (r *Reader) Required(name string) string {
	v, ok := r.value(name)
	if !ok {
		r.fail(name, "required but not set")
	}
	return v
}

// Secret returns the variable as a Secret (empty when unset).
func (r *Reader) Secret(name string) Secret {
	v, _ := r.value(name)
	return Secret(v)
}

// Duration parses a Go duration ("90s", "24h"), which must be positive.
func (r *Reader) Duration(name string, def time.Duration) time.Duration {
	v, ok := r.value(name)
	if !ok {
		return def
	}
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		r.fail(name, "%q is not a positive duration like 30s or 24h", v)
		return def
	}
	return d
}

// Int parses an integer within [min, max].
func (r *Reader) Int(name string, def, min, max int) int {
	v, ok := r.value(name)
	if !ok {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < min || n > max {
		r.fail(name, "%q is not a whole number from %d to %d", v, min, max)
		return def
	}
	return n
}

// Bool parses true/false/1/0.
func (r *Reader) Bool(name string, def bool) bool {
	v, ok := r.value(name)
	if !ok {
		return def
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		r.fail(name, "%q is not true or false", v)
		return def
	}
	return b
}

// URL parses an absolute URL whose scheme is one of schemes; it returns the value
// without a trailing slash.
func (r *Reader) URL(name, def string, schemes ...string) string {
	v, ok := r.value(name)
	if !ok {
		return def
	}
	u, err := url.Parse(v)
	if err != nil || u.Host == "" {
		r.fail(name, "%q is not an absolute URL", v)
		return def
	}
	for _, s := range schemes {
		if u.Scheme == s {
			return strings.TrimRight(v, "/")
		}
	}
	r.fail(name, "%q: scheme must be one of %s", v, strings.Join(schemes, ", "))
	return def
}

// List splits the variable on spaces, commas and newlines, dropping empty items.
func (r *Reader) List(name string) []string {
	v, _ := r.value(name)
	return strings.FieldsFunc(v, func(c rune) bool {
		return c == ',' || c == ' ' || c == '\n' || c == '\r' || c == '\t'
	})
}

// LogLevel parses LOG_LEVEL-style values.
func (r *Reader) LogLevel(name string) slog.Level {
	v, _ := r.value(name)
	l, ok := logging.ParseLevel(v)
	if !ok {
		r.fail(name, "%q is not one of debug, info, warn, error", v)
	}
	return l
}

// Secret is a credential read from the environment. It formats as [REDACTED] in
// every printing path (fmt, slog, JSON) so that it cannot leak by accident; Reveal
// returns the value for the one place that sends it.
type Secret string

// Reveal returns the secret's value.
func (s Secret) Reveal() string { return string(s) }

// Set reports whether the secret has a value.
func (s Secret) Set() bool { return s != "" }

func (s Secret) String() string { return logging.Redacted }

// GoString implements fmt.GoStringer.
func (s Secret) GoString() string { return logging.Redacted }

// LogValue implements slog.LogValuer.
func (s Secret) LogValue() slog.Value { return slog.StringValue(logging.Redacted) }

// MarshalJSON implements json.Marshaler.
func (s Secret) MarshalJSON() ([]byte, error) { return []byte(`"` + logging.Redacted + `"`), nil }

// Invalid records that variable name's value is unusable because of err (for checks
// a caller makes itself, e.g. parsing a list's items).
func (r *Reader) Invalid(name string, err error) { r.fail(name, "%v", err) }
