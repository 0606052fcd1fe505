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
# components (needs root).
test: vet
	$(GO) test -count=1 -timeout 40m ./...

unit:
	$(GO) test -count=1 ./internal/...

clean:
	rm -rf bin
