# Flotilla build, test and quick-start targets. Run `make help` for the list.

GO        ?= go
BIN       ?= bin
VERSION   ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT    ?= $(shell git rev-parse --short HEAD 2>/dev/null || echo unknown)
DATE      ?= $(shell date -u +%Y-%m-%dT%H:%M:%SZ)
LDFLAGS   := -s -w -X main.version=$(VERSION) -X main.commit=$(COMMIT) -X main.date=$(DATE)
# Build tags of the shipped binaries; why grpcnotrace: arm/cross.sh.
TAGS      ?= grpcnotrace

.PHONY: help deps build up down status test test-unit test-e2e fuzz lint clean cross check-nocgo firmware-image bench bench-smoke

# Debian packages the quick start and the tests run.
DEB_PACKAGES := containerd runc containernetworking-plugins nftables iptables kmod docker-registry mosquitto mosquitto-clients busybox-static socat qemu-user-static iproute2

help: ## Show the targets
	@grep -E '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-15s %s\n", $$1, $$2}'

deps: ## Install the Debian packages the quick start and tests need, if any is missing
	@missing=""; \
	for b in containerd runc docker-registry mosquitto busybox nft iptables socat; do \
	  command -v $$b >/dev/null 2>&1 || [ -x /usr/sbin/$$b ] || [ -x /sbin/$$b ] || missing="$$missing $$b"; \
	done; \
	[ -x /usr/lib/cni/bridge ] || missing="$$missing containernetworking-plugins"; \
	if [ -n "$$missing" ]; then \
	  echo "missing:$$missing; installing $(DEB_PACKAGES)"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $(DEB_PACKAGES); \
	fi

build: ## Build bin/hub and bin/edge-agent
	CGO_ENABLED=0 $(GO) build -trimpath -tags '$(TAGS)' -ldflags '$(LDFLAGS)' -o $(BIN)/hub ./hub/cmd/hub
	CGO_ENABLED=0 $(GO) build -trimpath -tags '$(TAGS)' -ldflags '$(LDFLAGS)' -o $(BIN)/edge-agent ./edge-agent/cmd/edge-agent

DIST      ?= dist
ARCH      ?= arm64
PROVISION ?= firmware-images/provision.example.yaml

cross: ## Static, stripped edge-agent and hub for linux amd64, arm64, armv7, armv6 into dist/, with SHA256SUMS
	DIST=$(DIST) VERSION=$(VERSION) COMMIT=$(COMMIT) DATE=$(DATE) TAGS='$(TAGS)' GO=$(GO) arm/cross.sh

check-nocgo: ## Fail if anything the agent or pkg/ imports needs cgo
	GO=$(GO) arm/check-nocgo.sh ./edge-agent/... ./pkg/...

firmware-image: ## Device rootfs tarball in dist/: make firmware-image ARCH=arm64|armv7|amd64 [PROVISION=file.yaml] (root, debootstrap)
	BINARIES=edge-agent DIST=$(DIST) VERSION=$(VERSION) COMMIT=$(COMMIT) DATE=$(DATE) TAGS='$(TAGS)' GO=$(GO) arm/cross.sh $(ARCH)
	firmware-images/build.sh $(ARCH) $(DIST)/edge-agent-linux-$(ARCH) $(PROVISION) $(DIST)

up: deps build ## Quick start: hub + broker + containerd + registry + agent, apply the example, show it Running
	$(GO) run ./test/tools/devstack up

down: ## Stop everything `make up` started and remove its containers
	$(GO) run ./test/tools/devstack down

status: ## Show what `make up` started
	$(GO) run ./test/tools/devstack status

test: deps ## Run the whole test suite (unit and end-to-end; needs root)
	$(GO) test -count=1 -timeout 20m ./...

test-unit: ## Run the tests outside test/ (most need no root and no daemons)
	$(GO) test -count=1 $$($(GO) list ./... | grep -v '/test/')

test-e2e: deps ## Run the end-to-end tests only
	$(GO) test -count=1 -timeout 20m -v ./test/e2e/...

NODES      ?= 10000
BENCH_JSON ?= bench-results.json
BENCH_ARGS ?=

bench: ## Scale benchmarks against a real hub: make bench [NODES=10000] [BENCH_ARGS=-quick] (writes $(BENCH_JSON))
	$(GO) run ./test/tools/benchscale -nodes $(NODES) -json $(BENCH_JSON) $(BENCH_ARGS)

bench-smoke: ## The benchmark suite at 200 simulated nodes with short windows: proves it works, measures nothing (CI)
	$(GO) run ./test/tools/benchscale -quick -nodes 200 -small 50 -metrics-window 5s -outage 5s -skip containerd,agent -json ""

fuzz: ## Run each fuzz target for FUZZTIME (default 30s; a count such as 100000x avoids Go 1.26's end-of-fuzztime flake, golang/go#75804)
	$(GO) test -run='^$$' -fuzz='^FuzzDecode$$' -fuzztime=$${FUZZTIME:-30s} ./pkg/manifest/
	$(GO) test -run='^$$' -fuzz='^FuzzDecode$$' -fuzztime=$${FUZZTIME:-30s} ./pkg/wire/
	$(GO) test -run='^$$' -fuzz='^FuzzTelemetryDecode$$' -fuzztime=$${FUZZTIME:-30s} ./pkg/wire/
	$(GO) test -run='^$$' -fuzz='^FuzzVerify$$' -fuzztime=$${FUZZTIME:-30s} ./pkg/wire/
	$(GO) test -run='^$$' -fuzz='^FuzzDecodeMessage$$' -fuzztime=$${FUZZTIME:-30s} ./pkg/wire/
	$(GO) test -run='^$$' -fuzz='^FuzzReadPacket$$' -fuzztime=$${FUZZTIME:-30s} ./hub/internal/broker/
	$(GO) test -run='^$$' -fuzz='^FuzzBearerToken$$' -fuzztime=$${FUZZTIME:-30s} ./hub/internal/serve/

lint: ## gofmt and go vet
	@test -z "$$(gofmt -l .)" || (gofmt -l . && echo "gofmt: the files above need formatting" && exit 1)
	$(GO) vet ./...

clean: ## Remove build output
	rm -rf $(BIN) dist
