package bundle

import (
	"archive/zip"
	"bytes"
	"encoding/json"
	"go/parser"
	"go/token"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

func loadSpec(t *testing.T) *Spec {
	t.Helper()
	s, err := LoadSpec()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func repoRoot(t *testing.T) string {
	t.Helper()
	root, err := RepoRoot(".")
	if err != nil {
		t.Fatal(err)
	}
	return root
}

func TestSelects(t *testing.T) {
	s := loadSpec(t)
	for rel, want := range map[string]bool{
		"functions/functions.go":                   true,
		"functions/normalize/follow.go":            true,
		"shared/event/event.go":                    true,
		"shared/twitch/helix/deep/client.go":       true,
		"functions/functions_test.go":              false, // tests
		"shared/event/event_test.go":               false,
		"functions/cmd/local/main.go":              false, // package main programs
		"shared/twitch/twitchtest/fake.go":         false, // test-support packages
		"shared/twitch/twitchtest/sub/more.go":     false,
		"shared/event/testdata/ingress.json":       false, // fixtures
		"shared/event/testdata/gen.go":             false,
		"functions/normalize/testdata/fuzz/x.go":   false,
		"shared/event/README.md":                   false, // not Go
		"shared/event/schema.json":                 false,
		"functions/cmdline/parse.go":               true, // only functions/cmd/ itself is excluded
		"shared/twitch/twitchtestutil/x.go":        true, // only a twitchtest/ directory is
		"shared/event/testdata_helpers.go":         true,
		"shared/event/not_a_test.go.orig":          false,
		"shared/event/contest_test.go":             false,
		"functions/normalize/fixtures_test_gen.go": true,
	} {
		if got := s.Selects(rel); got != want {
			t.Errorf("Selects(%q) = %v, want %v", rel, got, want)
		}
	}
}

// writeTree makes a repository-like tree holding files (path → content).
func writeTree(t *testing.T, files map[string]string) string {
	t.Helper()
	root := t.TempDir()
	for rel, content := range files {
		p := filepath.Join(root, filepath.FromSlash(rel))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

// syntheticTree is a small repository with one file of every kind the rules treat
// differently, plus this package's spec and root file template (Terraform's module
// reads them from the tree it is given).
func syntheticTree(t *testing.T) string {
	t.Helper()
	tmpl, err := os.ReadFile("root.go.tmpl")
	if err != nil {
		t.Fatal(err)
	}
	return writeTree(t, map[string]string{
		"go.mod":                               "module example.com/x\n\ngo 1.25\n",
		"go.sum":                               "",
		"README.md":                            "# x\n",
		"connector/main.go":                    "package main\n",
		"infra/bundle/spec.json":               string(specJSON),
		"infra/bundle/root.go.tmpl":            string(tmpl),
		"functions/functions.go":               "package functions\n",
		"functions/functions_test.go":          "package functions\n",
		"functions/cmd/local/main.go":          "package main\n",
		"functions/egress/split.go":            "package egress\n// ünïcödé\n",
		"functions/egress/testdata/case.json":  "{}\n",
		"functions/egress/.hidden/gen.go":      "package hidden\n",
		"shared/event/event.go":                "package event\n",
		"shared/event/testdata/x.go":           "package testdata\n",
		"shared/twitch/twitchtest/fake.go":     "package twitchtest\n",
		"shared/twitch/twitchtest/sub/more.go": "package sub\n",
		"shared/twitch/client.go":              "package twitch\n",
		"shared/twitch/doc.md":                 "doc\n",
	})
}

func names(files []File) []string {
	out := make([]string, len(files))
	for i, f := range files {
		out[i] = f.Name
	}
	return out
}

func TestCollect(t *testing.T) {
	s := loadSpec(t)
	files, err := s.Collect(syntheticTree(t))
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"bundle.go",
		"functions/egress/.hidden/gen.go",
		"functions/egress/split.go",
		"functions/functions.go",
		"go.mod",
		"go.sum",
		"shared/event/event.go",
		"shared/twitch/client.go",
	}
	if got := names(files); !slices.Equal(got, want) {
		t.Errorf("Collect:\n got %q\nwant %q", got, want)
	}
}

func TestCollectRejectsNonUTF8(t *testing.T) {
	// Terraform's file() cannot read it, so Terraform's zip would differ or fail.
	root := syntheticTree(t)
	if err := os.WriteFile(filepath.Join(root, "shared/event/latin1.go"), []byte("package event // \xe9\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := loadSpec(t).Collect(root); err == nil || !strings.Contains(err.Error(), "UTF-8") {
		t.Fatalf("Collect of a non-UTF-8 file: err = %v, want one naming UTF-8", err)
	}
}

func TestZipIsDeterministic(t *testing.T) {
	s := loadSpec(t)
	root := syntheticTree(t)
	dir := t.TempDir()
	a, err := s.Build(root, filepath.Join(dir, "a.zip"))
	if err != nil {
		t.Fatal(err)
	}
	// Touch every file: modification times must not reach the zip.
	_ = filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			b, _ := os.ReadFile(p)
			_ = os.WriteFile(p, b, 0o600)
		}
		return nil
	})
	b, err := s.Build(root, filepath.Join(dir, "b.zip"))
	if err != nil {
		t.Fatal(err)
	}
	if a.MD5 != b.MD5 {
		t.Errorf("two builds of the same tree: md5 %s and %s", a.MD5, b.MD5)
	}
	if got := ObjectName(a.MD5); got != "function-source-"+a.MD5+".zip" {
		t.Errorf("ObjectName = %q", got)
	}

	zr, err := zip.OpenReader(a.Path)
	if err != nil {
		t.Fatal(err)
	}
	defer zr.Close()
	var inZip []string
	for _, f := range zr.File {
		inZip = append(inZip, f.Name)
	}
	if want := names(a.Files); !slices.Equal(inZip, want) {
		t.Errorf("zip entries %q, want %q", inZip, want)
	}

	// A changed file changes the object name, so Terraform redeploys.
	if err := os.WriteFile(filepath.Join(root, "shared/event/event.go"), []byte("package event\n\nconst X = 1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	c, err := s.Build(root, filepath.Join(dir, "c.zip"))
	if err != nil {
		t.Fatal(err)
	}
	if c.MD5 == a.MD5 {
		t.Error("changing a shipped file did not change the md5")
	}
}

// TestRootFile checks the generated root package against what Cloud Functions' Go
// builder requires: a non-main package at the module root that imports the functions
// framework's functions package, here also importing our functions package so that its
// init registers the entry points; and no directory at the root named like the package
// (the builder would then build that directory instead of the root).
func TestRootFile(t *testing.T) {
	s := loadSpec(t)
	root := repoRoot(t)
	gomod, err := os.ReadFile(filepath.Join(root, "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	module := ModulePath(gomod)
	if first, _, _ := strings.Cut(module, "/"); !strings.Contains(first, ".") {
		t.Errorf("module path %q: the builder requires a dot in its first element", module)
	}
	src, err := os.ReadFile(filepath.Join(root, filepath.FromSlash(s.RootFileTemplate)))
	if err != nil {
		t.Fatal(err)
	}
	f, err := parser.ParseFile(token.NewFileSet(), s.RootFile, src, parser.ImportsOnly)
	if err != nil {
		t.Fatalf("root file does not parse: %v", err)
	}
	if f.Name.Name == "main" {
		t.Error("root package must not be main")
	}
	if _, err := os.Stat(filepath.Join(root, f.Name.Name)); err == nil {
		t.Errorf("a directory %q exists at the module root: the builder would build it instead of the root package", f.Name.Name)
	}
	var imports []string
	for _, imp := range f.Imports {
		p, _ := strconv.Unquote(imp.Path.Value)
		imports = append(imports, p)
	}
	for _, want := range []string{
		"github.com/GoogleCloudPlatform/functions-framework-go/functions",
		module + "/functions",
	} {
		if !slices.Contains(imports, want) {
			t.Errorf("root file imports %q, want %q among them", imports, want)
		}
	}
}

func TestCheckRuntime(t *testing.T) {
	for _, tc := range []struct {
		gomod, runtime string
		ok             bool
	}{
		{"module m\n\ngo 1.25\n", "go125", true},
		{"module m\n\ngo 1.25.3\n", "go125", true},
		{"module m\n\ngo 1.24.0\n\ntoolchain go1.25.1\n", "go125", true},
		{"module m\n\ngo 1.25rc1\n", "go125", true},
		{"module m\n\ngo 1.26.8\n", "go125", false},
		{"module m\n\ngo 1.25.0\n\ntoolchain go1.26.1\n", "go125", false},
		{"module m\n\ngo 1.26.8\n", "go126", true},
		{"module m\n\ngo 1.25\n", "python312", false},
	} {
		err := CheckRuntime([]byte(tc.gomod), tc.runtime)
		if (err == nil) != tc.ok {
			t.Errorf("CheckRuntime(%q, %s) = %v, want ok=%v", tc.gomod, tc.runtime, err, tc.ok)
		}
	}
}

// TestGoDirectiveFitsRuntime: the Cloud Functions builder compiles with the runtime's
// own Go, so go.mod must not ask for a newer one.
func TestGoDirectiveFitsRuntime(t *testing.T) {
	s := loadSpec(t)
	gomod, err := os.ReadFile(filepath.Join(repoRoot(t), "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	if err := CheckRuntime(gomod, s.Runtime); err != nil {
		t.Error(err)
	}
}

// TestFunctionsDependenciesShipped lists every package of this module that the
// functions package needs (go list -deps) and checks that the zip holds each of their
// source files, including embedded ones: an exclusion rule that drops a needed package
// must fail here, not in Cloud Build.
func TestFunctionsDependenciesShipped(t *testing.T) {
	s := loadSpec(t)
	root := repoRoot(t)
	files, err := s.Collect(root)
	if err != nil {
		t.Fatal(err)
	}
	shipped := map[string]bool{}
	for _, f := range files {
		shipped[f.Name] = true
	}

	gomod, err := os.ReadFile(filepath.Join(root, "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	module := ModulePath(gomod)
	cmd := exec.Command("go", "list", "-deps", "-json=ImportPath,Dir,Module,GoFiles,CgoFiles,CFiles,HFiles,SFiles,EmbedFiles,Error,DepsErrors", "./functions")
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "GOFLAGS=-buildvcs=false", "GOWORK=off")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list -deps ./functions: %v\n%s\n(the functions package must exist: functions/functions.go registers the four entry points)", err, stderr.String())
	}
	type pkg struct {
		ImportPath                                            string
		Dir                                                   string
		Module                                                *struct{ Path string }
		GoFiles, CgoFiles, CFiles, HFiles, SFiles, EmbedFiles []string
		Error                                                 *struct{ Err string }
	}
	dec := json.NewDecoder(bytes.NewReader(out))
	var ours []string
	for dec.More() {
		var p pkg
		if err := dec.Decode(&p); err != nil {
			t.Fatal(err)
		}
		if p.Error != nil {
			t.Errorf("%s: %s", p.ImportPath, p.Error.Err)
		}
		if p.Module == nil || p.Module.Path != module {
			continue
		}
		ours = append(ours, p.ImportPath)
		for _, group := range [][]string{p.GoFiles, p.CgoFiles, p.CFiles, p.HFiles, p.SFiles, p.EmbedFiles} {
			for _, name := range group {
				rel, err := filepath.Rel(root, filepath.Join(p.Dir, name))
				if err != nil {
					t.Fatal(err)
				}
				if rel = filepath.ToSlash(rel); !shipped[rel] {
					t.Errorf("%s needs %s, which the bundle rules (infra/bundle/spec.json) leave out", p.ImportPath, rel)
				}
			}
		}
	}
	if !slices.Contains(ours, module+"/functions") {
		t.Errorf("go list -deps ./functions did not list %s/functions", module)
	}
	t.Logf("packages of %s in the bundle's build: %q", module, ours)
}
