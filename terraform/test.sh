#!/usr/bin/env bash
# terraform test of terraform/tests/*.tftest.hcl, offline: mock providers, with the
# provider schemas of ../shared/terraform-offline (as its validate script uses them).
# Usage: terraform/test.sh
set -euo pipefail
tf_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
offline="$tf_dir/../../shared/terraform-offline"
[ -d "$offline" ] || { echo "terraform/test.sh: $offline not found" >&2; exit 1; }
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
cache="${XDG_CACHE_HOME:-$HOME/.cache}/schemaprovider"; bin="$cache/schemaprovider"
if [ ! -x "$bin" ] || [ "$offline/schemaprovider/main.go" -nt "$bin" ]; then
  mkdir -p "$cache"; (cd "$offline/schemaprovider" && go build -o "$bin" .)
fi
for spec in google:7.45.0 archive:2.8.0; do
  n=${spec%%:*}; v=${spec#*:}; d="$work/mirror/registry.terraform.io/hashicorp/$n/$v/linux_amd64"
  mkdir -p "$d"; cp "$bin" "$d/terraform-provider-${n}_v$v"; gzip -dc "$offline/$n-$v.schema.json.gz" > "$d/schema.json"
done
cat > "$work/tfrc" <<TFRC
provider_installation {
  filesystem_mirror {
    path    = "$work/mirror"
    include = ["registry.terraform.io/hashicorp/*"]
  }
  direct { exclude = ["registry.terraform.io/hashicorp/*"] }
}
TFRC
export TF_CLI_CONFIG_FILE="$work/tfrc" TF_DATA_DIR="$work/data" TF_IN_AUTOMATION=1
cd "$tf_dir"
had_lock=; [ -f .terraform.lock.hcl ] && had_lock=1 && cp .terraform.lock.hcl "$work/lock"
restore() { if [ -n "$had_lock" ]; then cp "$work/lock" .terraform.lock.hcl; else rm -f .terraform.lock.hcl; fi; }
trap 'restore; rm -rf "$work"' EXIT
rm -f .terraform.lock.hcl
terraform init -backend=false -input=false -no-color >/dev/null
terraform test -no-color
