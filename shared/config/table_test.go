package config

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// moduleRoot is the directory of go.mod above this package.
func moduleRoot(t *testing.T) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("no go.mod above the working directory")
		}
		dir = parent
	}
}

// readmeRow is one row of the README's configuration table.
type readmeRow struct{ usedBy, def string }

// readmeSettings parses the table under "## Configuration": variable → row. A row
// may name several variables ("`A`, `B`").
func readmeSettings(t *testing.T) map[string]readmeRow {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(moduleRoot(t), "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(b), "\n## Configuration\n")
	if !ok {
		t.Fatal("README.md has no \"## Configuration\" section")
	}
	section, _, _ = strings.Cut(section, "\n## ")
	rows := map[string]readmeRow{}
	for _, line := range strings.Split(section, "\n") {
		if !strings.HasPrefix(line, "| `") {
			continue
		}
		cells := strings.Split(strings.Trim(line, "|"), " | ")
		if len(cells) < 4 {
			t.Fatalf("README configuration row with %d cells: %s", len(cells), line)
		}
		for _, name := range strings.Split(strings.TrimSpace(cells[0]), ",") {
			name = strings.Trim(strings.TrimSpace(name), "`")
			if _, dup := rows[name]; dup {
				t.Errorf("README names %s twice", name)
			}
			rows[name] = readmeRow{usedBy: strings.TrimSpace(cells[1]), def: strings.TrimSpace(cells[2])}
		}
	}
	if len(rows) == 0 {
		t.Fatal("README's configuration table has no rows")
	}
	return rows
}

// The README's configuration table says what Settings says: the same variables, read
// by the same components, with the same defaults.
func TestReadmeConfigurationTableMatchesSettings(t *testing.T) {
	rows := readmeSettings(t)
	for _, s := range Settings {
		r, ok := rows[s.Name]
		if !ok {
			t.Errorf("README's configuration table lacks %s (used by %s, default %s)", s.Name, s.UsedBy(), s.Default)
			continue
		}
		if r.usedBy != s.UsedBy() {
			t.Errorf("%s: README says used by %q, Settings %q", s.Name, r.usedBy, s.UsedBy())
		}
		if r.def != s.Default {
			t.Errorf("%s: README says default %q, Settings %q", s.Name, r.def, s.Default)
		}
	}
	for name := range rows {
		if _, ok := SettingNamed(name); !ok {
			t.Errorf("README's configuration table has %s, which Settings lacks", name)
		}
	}
}

// readCall matches a variable read through a Reader or the process environment.
var readCall = regexp.MustCompile(`(?:\br\.(?:String|Required|Secret|Duration|Int|Bool|URL|List|LogLevel|value)|os\.(?:Getenv|LookupEnv))\("([A-Z][A-Z0-9_]*)"`)

// Every variable the components read (connector/, functions/, shared/) is in
// Settings, so that the table cannot fall behind the code.
func TestEveryVariableReadIsASetting(t *testing.T) {
	root := moduleRoot(t)
	// Tooling variables, not settings of a component.
	tooling := []string{"CLOUDSDK_ROOT"}
	seen := 0
	for _, dir := range []string{"connector", "functions", "shared"} {
		err := filepath.WalkDir(filepath.Join(root, dir), func(path string, d os.DirEntry, err error) error {
			if err != nil || d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
				return err
			}
			b, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			for _, m := range readCall.FindAllStringSubmatch(string(b), -1) {
				seen++
				if _, ok := SettingNamed(m[1]); !ok && !slices.Contains(tooling, m[1]) {
					rel, _ := filepath.Rel(root, path)
					t.Errorf("%s reads %s, which is not in config.Settings (add it there and to the README's table)", rel, m[1])
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	if seen < 20 {
		t.Errorf("found only %d variable reads; the pattern no longer matches the code", seen)
	}
}

func TestOwnedByStack(t *testing.T) {
	for kv, want := range map[string]bool{
		"TWITCH_CLIENT_ID=x":       true,
		"TWITCH_SOMETHING_NEW=x":   true,
		"EGRESS_MAX_AGE=1m":        true,
		"GOOGLE_CLOUD_PROJECT=p":   true,
		"GOOGLE_CLOUD_PROJECTS=p":  false,
		"PUBSUB_EMULATOR_HOST=h":   true,
		"HOME=/root":               false,
		"PATH=/usr/bin":            false,
		"GOFLAGS=-mod=mod":         false,
		"FUNCTION_TARGET=Finalize": true,
	} {
		if got := OwnedByStack(kv); got != want {
			t.Errorf("OwnedByStack(%q) = %v, want %v", kv, got, want)
		}
	}
	for _, name := range TunedNames() {
		if !OwnedByStack(name) {
			t.Errorf("tuned %s is not owned: a shell value would reach the components twice", name)
		}
	}
}
