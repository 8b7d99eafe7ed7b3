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
TESTFLAGS ?= -race -count=1 -timeout 20m
FUZZTIME  ?= 30s
# Pinned so that lint results do not change under us; fetched from the Go
# module proxy on first use, without touching go.mod.
STATICCHECK := honnef.co/go/tools/cmd/staticcheck@v0.8.2

.PHONY: all build test lint bpf bench fuzz clean

all: build

build: $(addprefix $(BIN)/,$(BINARIES))

$(BIN)/%: FORCE
	@mkdir -p $(BIN)
	$(GOBUILD) -o $@ ./cmd/$*

FORCE:

test:
	$(GO) test $(TESTFLAGS) ./...

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

# Regenerates the committed BPF objects (see bpf/gen.go).
bpf:
	@if [ -x scripts/bpf-generate.sh ]; then scripts/bpf-generate.sh; else echo "bpf: no BPF sources yet"; fi

bench:
	$(GO) test -run '^$$' -bench . -benchmem ./...

# Runs every fuzz target for FUZZTIME each.
fuzz:
	@scripts/fuzz-all.sh $(FUZZTIME)

clean:
	rm -rf $(BIN)
