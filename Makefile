# Makefile for the MSP guest components. Every target works on a fresh
# Debian 12 machine with Go installed; `make bpf` installs its pinned clang.

GO        ?= go
BIN       := bin
# Static, reproducible binaries: no cgo, no local paths, no build id.
GOBUILD   := CGO_ENABLED=0 $(GO) build -trimpath -ldflags "-s -w -buildid="
# A binary is built once its cmd/<name> package exists.
BINARIES  := $(notdir $(wildcard cmd/*))
# Go test flags; CI runs as root so the eBPF and end-to-end tests run too.
# The race detector is on: the proxy and emulator are concurrent by design.
# Setting TESTFLAGS (or GOFLAGS) narrows the run; `make test` says so and
# prints every command it runs.
TESTFLAGS ?= -race -count=1 -timeout 20m
# Allocation tests (names containing DoesNotAllocate or ZeroAlloc) are
# meaningless under -race (sync.Pool drops items at random): the race pass
# leaves them out and a second pass without -race runs them, over every
# package so that no test matching the names is lost.
ALLOC_TESTS := DoesNotAllocate|ZeroAlloc
# Stress-only tests: build tag stress, names starting TestStress.
STRESSFLAGS ?= -race -count=1 -timeout 30m
# As root (CI) a skipped test fails the run: a skip there means a kernel
# feature or tool the tests need is missing (issue 16).
TESTSUM     := $(GO) run ./scripts/testsum $(if $(filter 0,$(shell id -u)),-fail-on-skip) $(if $(TESTSUM_OUT),-summary-file $(TESTSUM_OUT))
FUZZTIME  ?= 30s
# Pinned so that lint results do not change under us; fetched from the Go
# module proxy on first use, without touching go.mod.
STATICCHECK := honnef.co/go/tools/cmd/staticcheck@v0.8.2

.PHONY: all build test stress ci lint bpf bench fuzz clean manifest demo

all: build

build: $(addprefix $(BIN)/,$(BINARIES))

$(BIN)/%: FORCE
	@mkdir -p $(BIN)
	$(GOBUILD) -o $@ ./cmd/$*

FORCE:

# Ends with one line "N passed, N failed, N skipped" (scripts/testsum).
test:
	@$(if $(filter environment command line,$(origin TESTFLAGS)),echo "make test: TESTFLAGS from the $(origin TESTFLAGS): $(TESTFLAGS)",true)
	@$(if $(GOFLAGS),echo "make test: GOFLAGS from the environment: $(GOFLAGS)",true)
	$(TESTSUM) -cmd '$(GO) test -json $(TESTFLAGS) -skip $(ALLOC_TESTS) ./...' \
	  -cmd '$(GO) test -json -count=1 -timeout 10m -run $(ALLOC_TESTS) ./...'

# Stress-only tests (//go:build stress, TestStress*): long or heavy runs
# kept out of CI's time budget.
stress:
	$(TESTSUM) -cmd '$(GO) test -json -tags stress $(STRESSFLAGS) -run Stress ./...'

# What CI runs (.ci/run): hooks, lint, build, test.
ci:
	.ci/run

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt needed on:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(GO) run $(STATICCHECK) ./...

# The proxy against direct requests to msp-hostsim, through the eBPF
# redirector (root), as the table of issue 8 item 8.
.PHONY: bench-proxy
bench-proxy: $(BIN)/msp-bench
	$(BIN)/msp-bench proxy

# The whole protocol on this machine (issue 12): msp-hostsim on loopback
# aliases, the agent installed through the real handler, real clients, a
# table of what the agent and the host decided. As root; keeps the audit
# log in dist/demo-audit.jsonl for `mspctl policy suggest`.
demo:
	@if [ "$$(id -u)" != 0 ]; then echo "make demo: run as root (sudo make demo): it loads eBPF programs and creates a cgroup"; exit 1; fi
	@$(MAKE) --no-print-directory $(addprefix $(BIN)/,msp-demo msp-agent msp-handler msp-hostsim mspctl)
	$(BIN)/msp-demo -bin $(BIN) -manifest manifest/HandlerManifest.json -audit-out dist/demo-audit.jsonl

# Regenerates the committed BPF objects (see bpf/gen.go).
bpf:
	@if [ -x scripts/bpf-generate.sh ]; then scripts/bpf-generate.sh; else echo "bpf: no BPF sources yet"; fi

# Direct requests, the real msp-agent and nginx (installed from apt if
# missing) side by side in one run (issue 12 item 2): a table, then
# bench.json and bench.svg in $(BENCH_OUT). As root; about 2 minutes.
BENCH_OUT ?= $(BIN)/bench
bench: $(BIN)/msp-bench $(BIN)/msp-agent
	$(BIN)/msp-bench compare -out $(BENCH_OUT)

# The Go benchmarks (go test -bench).
.PHONY: bench-go
bench-go:
	$(GO) test -run '^$$' -bench . -benchmem ./...

# Regenerates manifest/HandlerManifest.json and manifest.xml from extension.json; a test
# (manifest.TestCommittedManifestIsFresh) fails while the committed file is stale.
manifest:
	$(GO) run ./manifest/cmd/gen

# Packaging (scripts/package): static linux/amd64 and arm64 binaries in dist/build,
# then the extension zip and the agent .deb in dist/, each with a .sha256. The last
# commit's time fixes every mtime, so the same commit gives the same bytes.
PKG := $(GO) run ./scripts/package
SOURCE_DATE_EPOCH ?= $(shell git log -1 --format=%ct 2>/dev/null || echo 1577836800)
export SOURCE_DATE_EPOCH

.PHONY: package deb dist-bins

dist-bins:
	$(PKG) build -bins dist/build

package: manifest dist-bins
	$(PKG) zip -bins dist/build -out dist \
	  -handler-manifest manifest/HandlerManifest.json -manifest-xml manifest/manifest.xml \
	  -unit agent/unitfile/msp-agent.service \
	  -schemas agent/authz/rulefile/schema,handler/settings/schema

deb: dist-bins
	$(PKG) deb -bins dist/build -out dist -unit agent/unitfile/msp-agent.service

# Runs every fuzz target for FUZZTIME each and ends with a per-target
# summary (elapsed, executions); CI runs it with 5s (.ci/run).
fuzz:
	@scripts/fuzz-all.sh $(FUZZTIME)

clean:
	rm -rf $(BIN) dist
