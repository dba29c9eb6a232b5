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

// Binary is a command of this module: its package and the file it is built to.
type Binary struct{ Pkg, Name string }

// The binaries the stack builds and runs.
var (
	Functions = Binary{Pkg: "./functions/cmd/local", Name: "functions"}
	Connector = Binary{Pkg: "./connector", Name: "connector"}
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

// build compiles the functions server and the connector into dir.
func build(ctx context.Context, root, dir string) error {
	return Build(ctx, root, dir, Functions, Connector)
}

// Build compiles bins from the module at root into dir (dir/<Name>). Building
// straight to the final path lets the go command skip the link when the binary is
// up to date, so a second `make run` starts in well under a second of build time.
func Build(ctx context.Context, root, dir string, bins ...Binary) error {
	goBin, err := exec.LookPath("go")
	if err != nil {
		return fmt.Errorf("build %v: the go command is not on PATH: %w", bins, err)
	}
	for _, b := range bins {
		cmd := exec.CommandContext(ctx, goBin, "build", "-o", filepath.Join(dir, b.Name), b.Pkg)
		cmd.Dir = root
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Run(); err != nil {
			if ctx.Err() != nil {
				return fmt.Errorf("go build %s: %w", b.Pkg, ctx.Err())
			}
			return fmt.Errorf("go build %s: %w\n%s", b.Pkg, err, out.String())
		}
	}
	return nil
}
