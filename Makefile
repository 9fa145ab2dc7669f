# superd — build, run the demo, test. `make help` lists the targets.

GO       ?= go
BIN      := bin
VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
# The commit, explicitly: Go's own VCS stamp is missing where GOFLAGS has
# -buildvcs=false (as on this project's machines).
COMMIT   ?= $(shell git rev-parse HEAD 2>/dev/null)
LDFLAGS  := -s -w -X main.version=$(VERSION) -X main.commit=$(COMMIT)
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
	@echo "make bench      superd vs the C floor, xinetd, openbsd-inetd, tcpserver, systemd-socket-activate"
	@echo "make bench-scale / bench-multicore / bench-go   1-10,000 services / many cores / Go benchmarks"
	@echo "make bench-kit  what bench-multicore needs on a machine without a registry (bench/README.md)"
	@echo "make fuzz       run each fuzz target for FUZZTIME (default 30s)"

build:
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN)/superd ./cmd/superd

# As root superd refuses a configuration file that is not root's or that
# others may write (as sshd does); a checkout of another user's gets a
# root-owned copy of the demo in $(BIN) instead.
run: build
	@cfg=configs/demo.yaml; \
	if [ "$$(id -u)" = 0 ] && [ -n "$$(find $$cfg \( ! -user 0 -o -perm /022 \) -print)" ]; then \
		install -m 0644 -o 0 -g 0 $$cfg $(BIN)/demo.yaml && cfg=$(BIN)/demo.yaml && \
		echo "configs/demo.yaml is not root's alone: serving a copy, $$cfg"; \
	fi; \
	$(BIN)/superd check -c $$cfg && $(BIN)/superd run -c $$cfg

# Programs the tests drive as real peers, and netbase's /etc/services, where
# port names such as tcp://:daytime come from. Installed only when missing,
# so a machine that has them needs no package index.
TEST_PKGS := git socat prometheus netbase
test-deps:
	@missing=""; for p in $(TEST_PKGS); do \
		dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
		echo "installing:$$missing"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi

# -race needs cgo.
test: test-deps build lint
	CGO_ENABLED=1 $(GO) test -race -timeout $(TEST_TIMEOUT) ./...

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(GO) run $(STATICCHECK) ./...

# make bench: superd against the C floor and every peer on loopback (see
# bench/README.md); bench-scale: 1, 1,000 and 10,000 configured services;
# bench-multicore: the many-core mode (c=128, more load-generator threads);
# bench-go: the Go benchmarks. BENCH_FLAGS adds driver flags, e.g.
# BENCH_FLAGS='-idle=120s -rounds=5'.
.PHONY: bench-deps bench-scale bench-multicore bench-go bench-kit
BENCH_FLAGS ?=
bench: build bench-deps
	$(GO) run ./bench/cmd/bench $(BENCH_FLAGS)

bench-scale: build bench-deps
	$(GO) run ./bench/cmd/bench -scale $(BENCH_FLAGS)

bench-multicore: build bench-deps
	$(GO) run ./bench/cmd/bench -mode=multicore $(BENCH_FLAGS)

# bench-kit: the binaries and peers (with their libraries) a machine
# without a registry, compiler or Go needs to run the driver; see
# bench/README.md, "Many cores".
bench-kit: build bench-deps
	GO=$(GO) sh bench/kit.sh

bench-go:
	$(GO) test -run '^$$' -bench . -benchmem ./...

# The peers superd is measured against. xinetd and ucspi-tcp are installed
# when missing; openbsd-inetd conflicts with xinetd as a package, so it is
# unpacked under bench/.peers/ and run from there; systemd-socket-activate
# comes with systemd, unpacked the same way when the host has no systemd.
bench-deps:
	@sh bench/deps.sh

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
