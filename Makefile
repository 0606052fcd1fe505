# floe build, run and test entry points. See README.md.
GO ?= go
BIN := bin/floe
# The init of pods that share a PID namespace; floe runs it from beside
# its own binary (without it floe runs itself, using more memory per pod):
# a small Go launcher and the static C init it executes.
INIT_BIN := bin/floe-pod-init
REAPER_BIN := bin/floe-pod-reaper

PREFIX ?= /usr/local
DESTDIR ?=

.PHONY: all build deps run test unit vet fmt clean install conformance kubelet crash-test node-e2e node-e2e-ci node-e2e-features race fuzz

all: build

# The shipped binary has no failpoints (internal/failpoint): they are
# compiled in only with the build tag $(FAILPOINT_TAG), which test/harness
# uses for the crash tests. The check keeps it that way.
FAILPOINT_TAG := floe_failpoints
build:
	$(GO) build -o $(BIN) ./cmd/floe
	@! grep -q FLOE_TEST_CRASH_AT $(BIN) || { echo "$(BIN) has failpoints compiled in: build it without -tags $(FAILPOINT_TAG)"; exit 1; }
	$(GO) build -o $(INIT_BIN) ./cmd/floe-pod-init
	./hack/build-pod-reaper.sh $(REAPER_BIN)

# Debian packages (runc, conmon, CNI plugins, ...) and Go modules.
deps:
	./hack/install-deps.sh
	$(GO) mod download

# Start the daemon with its built-in defaults (needs root).
run: build
	./$(BIN) serve

vet:
	@test -z "$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))" || { gofmt -l .; echo "gofmt needed"; exit 1; }
	$(GO) vet ./...

# The whole suite: unit tests and integration tests against real
# components (needs root). Packages run one at a time (-p 1): their leak
# checks look at host-wide state (netns, mounts, veths, processes), which
# another package's tests running at the same moment would disturb.
# Then critest, the CRI conformance suite, against a private daemon: the
# real client is the judge (make conformance).
test: vet build kubelet
	$(GO) test -p 1 -count=1 -timeout 60m ./...
	$(GO) test -count=1 -tags $(FAILPOINT_TAG) ./internal/failpoint/
	$(MAKE) race fuzz
	./hack/conformance.sh $(CRITEST_FLAGS)

# The unit tests again under the race detector (the packages of internal/
# and cmd/, which own the daemon's goroutines).
race:
	$(GO) test -race -p 1 -count=1 -timeout 30m ./internal/... ./cmd/...

# Each fuzz target for FUZZTIME beyond its committed corpus (testdata/fuzz,
# replayed as seeds by every plain `go test`). A crasher is written to the
# package's testdata/fuzz: commit it with the fix.
FUZZTIME ?= 30s
FUZZ_TARGETS := internal/server:FuzzContainerSpec internal/server:FuzzSandboxSpec internal/procstat:FuzzParse
fuzz:
	@for t in $(FUZZ_TARGETS); do \
	  pkg=$${t%%:*}; fn=$${t#*:}; \
	  echo "fuzz $$fn ($$pkg) for $(FUZZTIME)"; \
	  $(GO) test -run '^$$' -fuzz "^$$fn\$$" -fuzztime $(FUZZTIME) -parallel 2 ./$$pkg || exit 1; \
	done

# critest (the CRI conformance suite, ../shared/conformance) against a
# private floe; fails on any failed spec or anything the run leaves behind.
# Extra critest flags: make conformance CRITEST_FLAGS=--ginkgo.focus=Networking
conformance: build
	./hack/conformance.sh $(CRITEST_FLAGS)

# SIG Node's e2e suite ([NodeConformance], not Serial/Slow/Flaky/Disruptive/
# Feature) with the real kubelet against a private floe; ~1 h on 2 cores.
# Fails on a failed spec not listed in hack/node-e2e-host-failures.txt
# (those fail on containerd here too). RUNTIME=containerd runs the same
# against Debian's containerd; FOCUS=re narrows it.
node-e2e: build
	./hack/node-e2e.sh

# A runtime-heavy part of NodeConformance for every `make test` (~100
# specs: lifecycle hooks, init and sidecar containers, probes, security
# context, container runtime/logs, pods, sysctls, host names), same script
# and host-failures list as node-e2e.
NODE_E2E_CI_FOCUS := \[sig-node\] (Container Lifecycle Hook|Restartable Init Container Lifecycle Hook|InitContainer|Security Context|Container Runtime|Containers should|Pods should|Lifecycle Sleep|Kubelet when|Variable Expansion|Sysctls|Pod Extended|Hostname of Pod|Override hostname|Deleted pods|Containers Lifecycle when A pod with restartable init containers is terminating|Containers Lifecycle when Running a pod with init containers and regular containers, restartPolicy=Never when A pod initializes successfully|Probing container should (be restarted with an? exec|not be ready with an exec readiness probe that exceeds|be ready immediately)).*\[NodeConformance\]
node-e2e-ci: build
	FOCUS='$(NODE_E2E_CI_FOCUS)' NODE_E2E_OUT=/tmp/floe-node-e2e-out/ci ./hack/node-e2e.sh

# The suite's specs of every feature floe claims (Feature:/FeatureGate:
# labels, hack/node-e2e-features.sh), with their alpha gates on; SERIAL=1
# runs their [Serial] specs. FEATURES="A B" narrows it.
node-e2e-features: build
	./hack/node-e2e-features.sh

# The real kubelet for test/kubelet, built once (~8 min on 2 cores) into
# $(KUBELET_CACHE)/kubelet-<version>/ and reused; without it the kubelet
# test skips (fails under CI=true).
KUBELET_CACHE ?= /var/cache/floe
kubelet:
	KUBELET_CACHE=$(KUBELET_CACHE) ./hack/build-kubelet.sh

# The long crash test: floe is SIGKILLed at CRASH_POINTS points (a third
# at named failpoints, the rest at random moments) under parallel pod and
# container creation, exec and removal; after each restart and a CRI
# cleanup nothing may be left. CRASH_SEED=<n> replays a run's delays.
# The test builds its own floe with -tags $(FAILPOINT_TAG) for the rounds
# at named failpoints (test/harness FailpointBinary), the normal build
# for the others.
CRASH_POINTS ?= 200
crash-test:
	CRASH_POINTS=$(CRASH_POINTS) $(GO) test -count=1 -timeout 4h -v -run 'TestCrashAnywhereLeavesNothing' ./test/integration/

unit:
	$(GO) test -count=1 ./internal/...
	$(GO) test -count=1 -tags $(FAILPOINT_TAG) ./internal/failpoint/

# Binary, systemd unit, default configuration (kept if one exists) and an
# example CNI network (only where none is configured).
install: build
	install -D -m 0755 $(BIN) $(DESTDIR)$(PREFIX)/bin/floe
	install -D -m 0755 $(INIT_BIN) $(DESTDIR)$(PREFIX)/bin/floe-pod-init
	install -D -m 0755 $(REAPER_BIN) $(DESTDIR)$(PREFIX)/bin/floe-pod-reaper
	install -D -m 0644 contrib/systemd/floe.service $(DESTDIR)/etc/systemd/system/floe.service
	install -d -m 0755 $(DESTDIR)/etc/floe/floe.d
	test -e $(DESTDIR)/etc/floe/floe.toml || ./$(BIN) config --config /dev/null > $(DESTDIR)/etc/floe/floe.toml
	install -D -m 0644 contrib/cni/10-floe-bridge.conflist $(DESTDIR)/usr/share/floe/cni/10-floe-bridge.conflist
	ls $(DESTDIR)/etc/cni/net.d/*.conf* >/dev/null 2>&1 || install -D -m 0644 contrib/cni/10-floe-bridge.conflist $(DESTDIR)/etc/cni/net.d/10-floe-bridge.conflist

clean:
	rm -rf bin
