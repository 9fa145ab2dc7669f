# superd — build, run the demo, test. `make help` lists the targets.

GO       ?= go
BIN      := bin
VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS  := -s -w -X main.version=$(VERSION)
# A static binary: no cgo, so user and group lookups read /etc/passwd and
# /etc/group directly, as a super-server on a minimal image must.
export CGO_ENABLED ?= 0

# Test timeout per package; the whole suite stays well under CI's limit.
TEST_TIMEOUT ?= 10m
STATICCHECK  ?= honnef.co/go/tools/cmd/staticcheck@v0.8.2

.PHONY: all build run test test-deps lint bench fuzz clean help

all: build

help:
	@echo "make build      build $(BIN)/superd (static)"
	@echo "make run        build and run superd on configs/demo.yaml"
	@echo "make test       install test peers, lint, run every test with -race"
	@echo "make lint       gofmt, go vet, staticcheck"
	@echo "make bench      Go benchmarks of the hot paths"
	@echo "make fuzz       run each fuzz target for FUZZTIME (default 30s)"

build:
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN)/superd ./cmd/superd

run: build
	$(BIN)/superd check -c configs/demo.yaml
	$(BIN)/superd run -c configs/demo.yaml

# Programs the tests drive as real peers. Installed only when missing, so a
# machine that has them needs no package index.
TEST_PKGS := git socat prometheus
test-deps:
	@missing=""; for p in $(TEST_PKGS); do \
		dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
		echo "installing:$$missing"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	fi

# -race needs cgo.
test: test-deps build lint
	CGO_ENABLED=1 $(GO) test -race -timeout $(TEST_TIMEOUT) ./...

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(GO) run $(STATICCHECK) ./...

bench:
	$(GO) test -run '^$$' -bench . -benchmem ./...

FUZZTIME ?= 30s
fuzz:
	@for pkg in $$($(GO) list ./...); do \
		for f in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz'); do \
			echo "== $$pkg $$f"; \
			$(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) $$pkg || exit 1; \
		done; \
	done

clean:
	rm -rf $(BIN)
