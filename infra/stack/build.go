package stack

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// ModulePath is this repository's Go module.
const ModulePath = "github.com/bitbrat/twitch-edge"

// The binaries the stack builds and runs, by package.
const (
	pkgFunctions = "./functions/cmd/local"
	pkgConnector = "./connector"
	binFunctions = "functions"
	binConnector = "connector"
)

// ModuleRoot finds the directory of this module's go.mod, walking up from the working
// directory (tests run in their package's directory, `make run` at the top).
func ModuleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("find the module root: %w", err)
	}
	for {
		if f, err := os.Open(filepath.Join(dir, "go.mod")); err == nil {
			first := ""
			sc := bufio.NewScanner(f)
			for sc.Scan() {
				if line := strings.TrimSpace(sc.Text()); strings.HasPrefix(line, "module ") {
					first = strings.TrimSpace(strings.TrimPrefix(line, "module "))
					break
				}
			}
			f.Close()
			if first == ModulePath {
				return dir, nil
			}
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("find the module root: no go.mod of %s above the working directory", ModulePath)
		}
		dir = parent
	}
}

// build compiles the functions server and the connector into dir. Building straight
// to the final path lets the go command skip the link when the binary is up to date,
// so a second `make run` starts in well under a second of build time.
func build(ctx context.Context, root, dir string) error {
	goBin, err := exec.LookPath("go")
	if err != nil {
		return fmt.Errorf("build the functions server and the connector: the go command is not on PATH: %w", err)
	}
	for _, b := range []struct{ pkg, bin string }{{pkgFunctions, binFunctions}, {pkgConnector, binConnector}} {
		cmd := exec.CommandContext(ctx, goBin, "build", "-o", filepath.Join(dir, b.bin), b.pkg)
		cmd.Dir = root
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Run(); err != nil {
			if ctx.Err() != nil {
				return fmt.Errorf("go build %s: %w", b.pkg, ctx.Err())
			}
			return fmt.Errorf("go build %s: %w\n%s", b.pkg, err, out.String())
		}
	}
	return nil
}
