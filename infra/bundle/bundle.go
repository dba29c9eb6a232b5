// Package bundle builds the Cloud Functions deploy zip: go.mod, go.sum, the non-test Go
// files of functions/ and shared/ (and of the connector packages EventSubReconcile
// shares with the connector: connector/conduit and what it imports), and a generated
// root package that Cloud Functions' Go builder can build.
//
// The include rules live in spec.json beside this file. Terraform reads the same file
// (terraform/modules/function_source), so the zip this package writes and the one
// Terraform uploads hold the same files; TestTerraformAgrees checks that with the real
// terraform binary.
package bundle

import (
	"archive/zip"
	"bytes"
	"crypto/md5"
	_ "embed"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"
)

//go:embed spec.json
var specJSON []byte

// Spec says which files of the repository go into the zip. See spec.json.
type Spec struct {
	// Runtime is the Cloud Functions runtime the bundle is built for (e.g. "go125");
	// Terraform uses it unless var.function_runtime overrides it.
	Runtime string `json:"runtime"`
	// ModuleFiles are shipped as they are (go.mod, go.sum).
	ModuleFiles []string `json:"module_files"`
	// Dirs are walked recursively for candidate files.
	Dirs []string `json:"dirs"`
	// Include and Exclude are RE2 expressions matched against a candidate's path
	// relative to the repository root: it is shipped when at least one Include and no
	// Exclude matches.
	Include []string `json:"include"`
	Exclude []string `json:"exclude"`
	// RootFile is the name of the generated root package file in the zip, and
	// RootFileTemplate the repository path of its content.
	RootFile         string `json:"root_file"`
	RootFileTemplate string `json:"root_file_template"`

	include, exclude []*regexp.Regexp
}

// LoadSpec returns the embedded spec.json, parsed and checked.
func LoadSpec() (*Spec, error) { return ParseSpec(specJSON) }

// ParseSpec parses and checks a spec.
func ParseSpec(b []byte) (*Spec, error) {
	var s Spec
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, fmt.Errorf("bundle spec: %w", err)
	}
	if s.Runtime == "" || len(s.ModuleFiles) == 0 || len(s.Dirs) == 0 || len(s.Include) == 0 ||
		s.RootFile == "" || s.RootFileTemplate == "" {
		return nil, errors.New("bundle spec: runtime, module_files, dirs, include, root_file and root_file_template are required")
	}
	for _, d := range s.Dirs {
		// Terraform walks each dir with fileset(root, "<dir>/**"): keep dirs plain so
		// that glob and filepath.WalkDir see the same tree.
		if d == "" || strings.ContainsAny(d, `*?[]{}\`) || path.Clean(d) != d || strings.HasPrefix(d, "../") || path.IsAbs(d) {
			return nil, fmt.Errorf("bundle spec: dir %q must be a plain relative directory", d)
		}
	}
	compile := func(exprs []string) ([]*regexp.Regexp, error) {
		out := make([]*regexp.Regexp, 0, len(exprs))
		for _, e := range exprs {
			re, err := regexp.Compile(e)
			if err != nil {
				return nil, fmt.Errorf("bundle spec: %w", err)
			}
			out = append(out, re)
		}
		return out, nil
	}
	var err error
	if s.include, err = compile(s.Include); err != nil {
		return nil, err
	}
	if s.exclude, err = compile(s.Exclude); err != nil {
		return nil, err
	}
	return &s, nil
}

// Selects reports whether a candidate found under one of Dirs is shipped. rel is the
// path relative to the repository root, with forward slashes.
func (s *Spec) Selects(rel string) bool {
	matches := func(res []*regexp.Regexp) bool {
		return slices.ContainsFunc(res, func(re *regexp.Regexp) bool { return re.MatchString(rel) })
	}
	return matches(s.include) && !matches(s.exclude)
}

// File is one entry of the zip.
type File struct {
	Name    string // path in the zip, forward slashes
	Content []byte
}

// Collect returns the files of the zip for the repository at root, sorted by name.
func (s *Spec) Collect(root string) ([]File, error) {
	var files []File
	seen := map[string]bool{}
	add := func(name string, content []byte) error {
		if seen[name] {
			return fmt.Errorf("bundle: %s listed twice", name)
		}
		if !utf8.Valid(content) {
			// Terraform's file() reads text only: keep both builders able to read it.
			return fmt.Errorf("bundle: %s is not UTF-8 text", name)
		}
		seen[name] = true
		files = append(files, File{Name: name, Content: content})
		return nil
	}
	for _, name := range s.ModuleFiles {
		b, err := os.ReadFile(filepath.Join(root, filepath.FromSlash(name)))
		if err != nil {
			return nil, fmt.Errorf("bundle: %w", err)
		}
		if err := add(name, b); err != nil {
			return nil, err
		}
	}
	for _, dir := range s.Dirs {
		base := filepath.Join(root, filepath.FromSlash(dir))
		if _, err := os.Stat(base); errors.Is(err, fs.ErrNotExist) {
			continue // Terraform's fileset() of a missing directory is empty, too
		}
		err := filepath.WalkDir(base, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if !d.Type().IsRegular() {
				return nil
			}
			rel, err := filepath.Rel(root, p)
			if err != nil {
				return err
			}
			rel = filepath.ToSlash(rel)
			if !s.Selects(rel) || seen[rel] {
				return nil
			}
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			return add(rel, b)
		})
		if err != nil {
			return nil, fmt.Errorf("bundle: walk %s: %w", dir, err)
		}
	}
	tmpl, err := os.ReadFile(filepath.Join(root, filepath.FromSlash(s.RootFileTemplate)))
	if err != nil {
		return nil, fmt.Errorf("bundle: root file template: %w", err)
	}
	if err := add(s.RootFile, tmpl); err != nil {
		return nil, err
	}
	slices.SortFunc(files, func(a, b File) int { return strings.Compare(a.Name, b.Name) })
	return files, nil
}

// WriteZip writes files as a zip the way Terraform's archive_file does for `source`
// blocks: entries in name order, deflated, with no timestamps or modes, so the same
// files always give the same bytes (and the same MD5, which names the uploaded object).
func WriteZip(w io.Writer, files []File) error {
	zw := zip.NewWriter(w)
	for _, f := range files {
		fw, err := zw.Create(f.Name)
		if err != nil {
			return fmt.Errorf("bundle: zip %s: %w", f.Name, err)
		}
		if _, err := fw.Write(f.Content); err != nil {
			return fmt.Errorf("bundle: zip %s: %w", f.Name, err)
		}
	}
	if err := zw.Close(); err != nil {
		return fmt.Errorf("bundle: zip: %w", err)
	}
	return nil
}

// Result describes a written zip.
type Result struct {
	Path  string
	MD5   string // hex
	Files []File
}

// ObjectName is the Cloud Storage object name Terraform gives a zip with this MD5
// (hex): a new name for every change, so every change redeploys the functions.
func ObjectName(md5hex string) string { return "function-source-" + md5hex + ".zip" }

// Build collects the files of the repository at root and writes the zip to out.
func (s *Spec) Build(root, out string) (*Result, error) {
	files, err := s.Collect(root)
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	if err := WriteZip(&buf, files); err != nil {
		return nil, err
	}
	if err := os.WriteFile(out, buf.Bytes(), 0o644); err != nil {
		return nil, fmt.Errorf("bundle: %w", err)
	}
	sum := md5.Sum(buf.Bytes())
	return &Result{Path: out, MD5: hex.EncodeToString(sum[:]), Files: files}, nil
}

// RepoRoot returns the directory of the go.mod that governs dir (the repository root).
func RepoRoot(dir string) (string, error) {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("bundle: no go.mod found above the working directory")
		}
		dir = parent
	}
}

// ModulePath returns the module path declared by the go.mod content.
func ModulePath(gomod []byte) string { return directive(gomod, "module") }

// GoVersion returns the go directive of the go.mod content ("1.25.3"), and the
// toolchain directive without its "go" prefix ("" when absent).
func GoVersion(gomod []byte) (goLine, toolchain string) {
	return directive(gomod, "go"), strings.TrimPrefix(directive(gomod, "toolchain"), "go")
}

func directive(gomod []byte, name string) string {
	for line := range strings.SplitSeq(string(gomod), "\n") {
		f := strings.Fields(strings.TrimSpace(line))
		if len(f) >= 2 && f[0] == name {
			return strings.Trim(f[1], `"`)
		}
	}
	return ""
}

// CheckRuntime returns an error unless the go.mod content can be built by the Cloud
// Functions Go runtime named runtime ("go125" is Go 1.25): the builder uses the
// runtime's own toolchain, so a go or toolchain directive naming a newer Go fails the
// deploy.
func CheckRuntime(gomod []byte, runtime string) error {
	rt, ok := strings.CutPrefix(runtime, "go")
	if !ok || len(rt) < 3 {
		return fmt.Errorf("runtime %q is not a Cloud Functions Go runtime (goNNN)", runtime)
	}
	rtMajor, err1 := strconv.Atoi(rt[:1])
	rtMinor, err2 := strconv.Atoi(rt[1:])
	if err1 != nil || err2 != nil {
		return fmt.Errorf("runtime %q is not a Cloud Functions Go runtime (goNNN)", runtime)
	}
	goLine, toolchain := GoVersion(gomod)
	for _, v := range []struct{ name, version string }{{"go", goLine}, {"toolchain", toolchain}} {
		if v.version == "" {
			continue
		}
		parts := strings.SplitN(v.version, ".", 3)
		major, err := strconv.Atoi(parts[0])
		minor := 0
		if err == nil && len(parts) > 1 {
			// "1.25rc1" and "1.25.0" both mean Go 1.25.
			digits := parts[1]
			if i := strings.IndexFunc(digits, func(r rune) bool { return r < '0' || r > '9' }); i >= 0 {
				digits = digits[:i]
			}
			minor, err = strconv.Atoi(digits)
		}
		if err != nil {
			return fmt.Errorf("go.mod %s directive %q: cannot parse", v.name, v.version)
		}
		if major > rtMajor || (major == rtMajor && minor > rtMinor) {
			return fmt.Errorf("go.mod %s directive is %s but the Cloud Functions runtime %s builds with Go %d.%d: "+
				"lower the directive to go %d.%d or set a newer runtime in infra/bundle/spec.json",
				v.name, v.version, runtime, rtMajor, rtMinor, rtMajor, rtMinor)
		}
	}
	return nil
}
