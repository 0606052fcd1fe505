# floe build, run and test entry points. See README.md.
GO ?= go
BIN := bin/floe

.PHONY: all build deps run test unit vet fmt clean

all: build

build:
	$(GO) build -o $(BIN) ./cmd/floe

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
test: vet
	$(GO) test -p 1 -count=1 -timeout 60m ./...

unit:
	$(GO) test -count=1 ./internal/...

clean:
	rm -rf bin
