# The front door: `make run` runs the pipeline locally, `make test` runs every test.
# Both set themselves up (the emulators come with the Google Cloud CLI).

GO      ?= go
PKGS    ?= ./...
TIMEOUT ?= 15m

.PHONY: all build twitchctl test test-conduit test-conduit-full lint fmt vet staticcheck govulncheck tools run fuzz bench load soak terraform-check help

all: lint test

help:
	@echo "make run              run the local pipeline (emulators, functions, connector, fake Twitch)"
	@echo "make test             run every test against the real emulators"
	@echo "make twitchctl        build bin/twitchctl, the driver of the local stack (make run builds it too)"
	@echo "make test-conduit       only the conduit acceptance runs (1,000 notifications at 200/s; make test runs them too)"
	@echo "make test-conduit-full  the conduit acceptance runs at full size (5,000 notifications at 200/s, ~3 min)"
	@echo "make lint             gofmt, go vet, staticcheck, govulncheck (offline database; tools built by make tools)"
	@echo "make tools            build the pinned staticcheck and govulncheck into .bin, and the offline vulnerability database"
	@echo "make fuzz             run each fuzz target for FUZZTIME (default 30s)"
	@echo "make bench            run the Go benchmarks, then the load run"
	@echo "make load             connector load run, 500..5,000/s (LOAD_FLAGS='-rates 500,1000 -duration 10s')"
	@echo "make cost             the cost table per million events and egress messages -> docs/perf/cost.md"
	@echo "make soak             the fault script; exits non-zero on loss or duplicates (SOAK_FLAGS=-short: ~1 min)"
	@echo "make soak TRANSPORT=conduit  the conduit fault script: two instances, kill -9, rolling restart, shard disabled, channel added/removed"
	@echo "make terraform-check  terraform fmt, offline validate, tflint"

build:
	$(GO) build $(PKGS)

## test: all tests, with one Pub/Sub and one Firestore emulator shared by every package.
## The module download first: the deploy-bundle test runs `go mod tidy` offline, as the
## Cloud Functions builder would online, and tidy wants the modules of the dependencies'
## tests too (a no-op once cached).
test:
	$(GO) mod download all
	$(GO) run ./infra/cmd/withemulators -- $(GO) test -count=1 -timeout $(TIMEOUT) $(PKGS)

## test-conduit: only infra/e2e's conduit acceptance runs, at make test's size.
test-conduit:
	$(GO) run ./infra/cmd/withemulators -- $(GO) test -count=1 -timeout 20m -v -run 'TestConduitModeLosesNothing|TestWebSocketModeLossFigure' ./infra/e2e

## test-conduit-full: infra/e2e's conduit runs at the acceptance size.
test-conduit-full:
	$(GO) run ./infra/cmd/withemulators -- $(GO) test -count=1 -timeout 20m -v -run 'TestConduitModeLosesNothing|TestWebSocketModeLossFigure' ./infra/e2e -args -conduit.full

lint: fmt vet staticcheck govulncheck

## Static-check tools, pinned, built with `go install` into TOOLS (a clean machine
## has none); a version bump installs beside the old one.
TOOLS               ?= $(CURDIR)/.bin
STATICCHECK_VERSION ?= v0.8.2
GOVULNCHECK_VERSION ?= v1.9.0
STATICCHECK         := $(TOOLS)/staticcheck-$(STATICCHECK_VERSION)/staticcheck
GOVULNCHECK         := $(TOOLS)/govulncheck-$(GOVULNCHECK_VERSION)/govulncheck
## The vulnerability database, built offline from the golang.org/x/vulndb module (the
## module proxy serves it; vuln.go.dev is out of reach). Pinned; bump deliberately.
VULNDB_VERSION      ?= v0.0.0-20261105234957-e22db6528018
VULNDB              ?= $(HOME)/.cache/bitbrat-twitch-edge/vulndb-$(VULNDB_VERSION)

tools: $(STATICCHECK) $(GOVULNCHECK) $(VULNDB)/index/db.json

$(STATICCHECK):
	GOBIN=$(dir $@) $(GO) install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION)

$(GOVULNCHECK):
	GOBIN=$(dir $@) $(GO) install golang.org/x/vuln/cmd/govulncheck@$(GOVULNCHECK_VERSION)

## indexdb needs a module context: a scratch module in a temporary directory.
$(VULNDB)/index/db.json:
	@set -e; scratch=$$(mktemp -d); trap 'rm -rf "$$scratch"' EXIT; cd "$$scratch"; \
	printf 'module vulndbbuild\n\ngo 1.26\n' > go.mod; \
	dir=$$($(GO) mod download -json golang.org/x/vulndb@$(VULNDB_VERSION) | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$$/\1/p'); \
	[ -n "$$dir" ] || { echo "cannot download golang.org/x/vulndb@$(VULNDB_VERSION)"; exit 1; }; \
	rm -rf "$(VULNDB).tmp"; \
	$(GO) run golang.org/x/vulndb/cmd/indexdb@$(VULNDB_VERSION) -vulns "$$dir/data/osv" -out "$(VULNDB).tmp"; \
	rm -rf "$(VULNDB)"; mv "$(VULNDB).tmp" "$(VULNDB)"

staticcheck: $(STATICCHECK)
	$(STATICCHECK) $(PKGS)

## govulncheck: a reachable vulnerability in a required module fails; the local
## toolchain's standard-library findings are reported, not failed (README, Static checks).
govulncheck: $(GOVULNCHECK) $(VULNDB)/index/db.json
	@set -e; out=$$(mktemp); trap 'rm -f "$$out"' EXIT; \
	$(GOVULNCHECK) -db file://$(VULNDB) -format json $(PKGS) > "$$out"; \
	$(GO) run ./infra/cmd/vulngate < "$$out"

fmt:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi

vet:
	$(GO) vet $(PKGS)

FUZZTIME ?= 30s
## fuzz: every fuzz target, FUZZTIME each (crashers land in testdata/fuzz and become regression tests).
fuzz:
	@set -e; for pkg in $$($(GO) list $(PKGS)); do \
	  for f in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz' || true); do \
	    echo "== $$pkg $$f"; $(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) $$pkg; \
	  done; \
	done

LOAD_FLAGS ?=
SOAK_FLAGS ?=

## bench: hot-path benchmarks (BenchmarkRelayToEmulator needs the emulators), then the load run.
bench:
	$(GO) run ./infra/cmd/withemulators -- $(GO) test -run '^$$' -bench . -benchmem $(PKGS)
	$(GO) run ./infra/cmd/load $(LOAD_FLAGS)

## bench-check: the hot-path benchmarks, best of BENCH_COUNT runs of the whole set (spread in time,
## so that a burst of other work does not decide), against the figures in docs/perf/bench.json;
## lists every figure that moved by more than BENCH_THRESHOLD (bytes, allocations: load-independent)
## or BENCH_TIME_THRESHOLD (times, rates) and fails when one got worse; on a machine loaded above
## one runnable task per CPU, slower times are listed but only counts fail.
## bench-baseline re-takes those figures (after a change meant to move them).
BENCH_PKGS      ?= ./connector/relay ./connector/eventsub ./shared/twitch ./functions/normalize ./functions/finalize ./functions/egress ./shared/store ./infra/load
BENCH_COUNT     ?= 5
BENCH_THRESHOLD ?= 0.20
BENCH_TIME_THRESHOLD ?= 0.50
BENCH_RUN        = mkdir -p bin && $(GO) run ./infra/cmd/withemulators -- sh -c 'for i in $$(seq $(BENCH_COUNT)); do $(GO) test -run "^$$" -bench . -benchmem -count 1 $(BENCH_PKGS) || exit 1; done' > bin/bench.out || { cat bin/bench.out; exit 1; }
.PHONY: bench-check bench-baseline
bench-check:
	$(BENCH_RUN)
	$(GO) run ./infra/cmd/benchcheck -baseline docs/perf/bench.json -threshold $(BENCH_THRESHOLD) -time-threshold $(BENCH_TIME_THRESHOLD) bin/bench.out
bench-baseline:
	$(BENCH_RUN)
	$(GO) run ./infra/cmd/benchcheck -baseline docs/perf/bench.json -update -measured "$$(date -u +%FT%TZ); load $$(cut -d' ' -f1-3 /proc/loadavg)" bin/bench.out

## cost: the README's cost table from the measured counts (docs/perf/ops.json, load.json).
.PHONY: cost
cost:
	$(GO) run ./infra/cmd/cost $(COST_FLAGS) > docs/perf/cost.md
	@cat docs/perf/cost.md

## load: the connector at 500, 1,000, 2,000 and 5,000 notifications/s, 60 s each -> docs/perf/load.{md,svg,json}.
load:
	$(GO) run ./infra/cmd/load $(LOAD_FLAGS)

## soak: the fault script (~2.5 min; the CI version runs in make test as infra/soak's test).
## TRANSPORT=conduit runs the conduit script instead (two connector instances on a conduit).
soak:
	$(GO) run ./infra/cmd/soak -transport $(TRANSPORT) $(SOAK_FLAGS)

## twitchctl: a real binary, not `go run` (seconds per call, and "exit status 1").
twitchctl:
	@mkdir -p bin && $(GO) build -o bin/twitchctl ./infra/cmd/twitchctl

## run: the local pipeline; built first so that Ctrl-C ends it cleanly (go run exits 1).
## The echo is the first line a user sees, before the builds (seconds on a warm cache).
## TRANSPORT=conduit (CONNECTORS=2 instances, WEBHOOK_SHARDS=0) or TRANSPORT=serverless
## (no connector, WEBHOOK_SHARDS=1, EventSubReconcile ticked every 10 s).
TRANSPORT      ?= websocket
CONNECTORS     ?= 2
WEBHOOK_SHARDS ?= 0
run:
	@echo "make run: building bin/twitchctl and bin/devstack, then starting the stack"
	@mkdir -p bin && $(GO) build -o bin/twitchctl ./infra/cmd/twitchctl && $(GO) build -o bin/devstack ./infra/cmd/devstack && \
		./bin/devstack -transport=$(TRANSPORT) -connectors=$(CONNECTORS) -webhook-shards=$(WEBHOOK_SHARDS)

terraform-check:
	bash terraform/check.sh
