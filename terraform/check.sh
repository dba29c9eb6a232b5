#!/usr/bin/env bash
# Static checks of the Terraform configuration, offline (no registry access needed):
#   1. terraform fmt -check -recursive terraform
#   2. terraform validate against the real google 7.45.0 / archive 2.8.0 schemas
#      (../shared/terraform-offline/validate, beside the repository)
#   3. tflint v0.64.0 with its bundled rules (terraform/.tflint.hcl: preset "all"),
#      installed with `go install` (Go module proxy) when missing or another version
#   4. terraform test (terraform/test.sh): least-privilege assertions on the plan, with
#      mock providers
# Usage: terraform/check.sh   (from anywhere; exits non-zero on the first failure)
set -euo pipefail

tf_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$tf_dir/.." && pwd)
validate="$repo/../shared/terraform-offline/validate"
tflint_version=0.64.0

fail() { echo "terraform/check.sh: FAIL: $*" >&2; exit 1; }
step() { echo "==> $*"; }

command -v terraform >/dev/null || fail "terraform is not on PATH (it comes with the machine image)"
# An environment may point TF_CLI_CONFIG_FILE at a file that does not exist; terraform
# then warns on every command. None of these checks needs a CLI configuration.
if [ -n "${TF_CLI_CONFIG_FILE:-}" ] && [ ! -f "$TF_CLI_CONFIG_FILE" ]; then
  export TF_CLI_CONFIG_FILE=/dev/null
fi

cd "$repo"

step "terraform fmt -check -recursive terraform"
if ! terraform fmt -check -recursive -diff terraform; then
  fail "terraform fmt: run 'terraform fmt -recursive terraform'"
fi

step "terraform validate (offline, real provider schemas)"
[ -x "$validate" ] || fail "$validate not found: shared/ must sit beside the repository"
"$validate" terraform || fail "terraform validate"

step "tflint $tflint_version (bundled rules)"
is_pinned() { # is $1 tflint v$tflint_version?
  local v
  v=$("$1" --version 2>/dev/null) || return 1
  v=${v%%$'\n'*}
  [ "$v" = "TFLint version $tflint_version" ]
}
tflint=$(command -v tflint || true)
if [ -z "$tflint" ] || ! is_pinned "$tflint"; then
  gobin=$(go env GOBIN); [ -n "$gobin" ] || gobin="$(go env GOPATH)/bin"
  tflint="$gobin/tflint"
  if [ ! -x "$tflint" ] || ! is_pinned "$tflint"; then
    echo "installing tflint v$tflint_version with go install"
    (cd / && GOFLAGS=-buildvcs=false go install "github.com/terraform-linters/tflint@v$tflint_version") ||
      fail "go install tflint v$tflint_version"
  fi
fi
is_pinned "$tflint" || fail "$tflint is not tflint v$tflint_version"
(cd "$tf_dir" && "$tflint" --recursive --config "$tf_dir/.tflint.hcl" --format compact) ||
  fail "tflint found issues"

step "terraform test (mock providers): least privilege"
"$tf_dir/test.sh" || fail "terraform test"

echo "terraform/check.sh: OK (fmt, validate, tflint, test)"
