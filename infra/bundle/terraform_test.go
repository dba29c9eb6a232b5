package bundle

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"testing"
)

// terraformFiles evaluates terraform/modules/function_source — the module whose output
// feeds archive_file in terraform/source.tf — with the real terraform binary, for the
// repository at root, and returns the zip's files as name → sha256 of the content.
// The module uses no provider, so this runs offline.
func terraformFiles(t *testing.T, repo, root string) map[string]string {
	t.Helper()
	tf, err := exec.LookPath("terraform")
	if err != nil {
		t.Fatal("terraform is not on PATH: it comes with the machine image, and this test needs it to prove Terraform zips the same files")
	}
	dir := t.TempDir()
	module := filepath.Join(repo, "terraform", "modules", "function_source")
	config := fmt.Sprintf("module \"source\" {\n  source    = %s\n  repo_root = %s\n}\n",
		strconv.Quote(module), strconv.Quote(root))
	if err := os.WriteFile(filepath.Join(dir, "main.tf"), []byte(config), 0o644); err != nil {
		t.Fatal(err)
	}
	env := append(os.Environ(),
		"TF_CLI_CONFIG_FILE=/dev/null", "TF_IN_AUTOMATION=1", "TF_DATA_DIR="+filepath.Join(dir, ".terraform"))
	run := func(stdin string, args ...string) []byte {
		cmd := exec.Command(tf, args...)
		cmd.Dir, cmd.Env = dir, env
		cmd.Stdin = bytes.NewBufferString(stdin)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("terraform %v: %v\n%s%s", args, err, out, stderr.String())
		}
		return out
	}
	run("", "init", "-backend=false", "-input=false", "-no-color")
	out := run(`jsonencode({ for name, content in module.source.files : name => sha256(content) })`+"\n",
		"console", "-no-color")
	var encoded string
	if err := json.Unmarshal(bytes.TrimSpace(out), &encoded); err != nil {
		t.Fatalf("terraform console printed %q: %v", out, err)
	}
	var files map[string]string
	if err := json.Unmarshal([]byte(encoded), &files); err != nil {
		t.Fatalf("terraform console printed %q: %v", encoded, err)
	}
	return files
}

// TestTerraformAgrees: the zip Terraform uploads and the zip this package writes hold the
// same files with the same bytes, for this repository and for a tree with every kind of
// file the rules treat differently.
func TestTerraformAgrees(t *testing.T) {
	if testing.Short() {
		t.Skip("runs terraform")
	}
	repo := repoRoot(t)
	s := loadSpec(t)
	for name, root := range map[string]string{"repository": repo, "synthetic": syntheticTree(t)} {
		t.Run(name, func(t *testing.T) {
			files, err := s.Collect(root)
			if err != nil {
				t.Fatal(err)
			}
			ours := map[string]string{}
			for _, f := range files {
				sum := sha256.Sum256(f.Content)
				ours[f.Name] = hex.EncodeToString(sum[:])
			}
			theirs := terraformFiles(t, repo, root)
			for _, n := range sortedKeys(ours, theirs) {
				switch {
				case theirs[n] == "":
					t.Errorf("%s: in the Go bundle only", n)
				case ours[n] == "":
					t.Errorf("%s: in Terraform's zip only", n)
				case ours[n] != theirs[n]:
					t.Errorf("%s: content differs", n)
				}
			}
			t.Logf("%d files agree", len(ours))
		})
	}
}

func sortedKeys(ms ...map[string]string) []string {
	var keys []string
	for _, m := range ms {
		for k := range m {
			if !slices.Contains(keys, k) {
				keys = append(keys, k)
			}
		}
	}
	slices.Sort(keys)
	return keys
}
