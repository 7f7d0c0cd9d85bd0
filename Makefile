# pyro-dispatch: make demo | make test | make build | make fuzz | make bench | make soak | make pgo
GO        ?= go
BIN       := bin/pyro-dispatch
VERSION   ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS   := -s -w -X main.version=$(VERSION)
# How long `make soak` runs its load and faults.
SOAK      ?= 3m
# A count, not a duration: with -fuzztime=4s Go 1.26's fuzz coordinator can fail a target
# with a bare "context deadline exceeded" at the deadline (golang/go#75804, fixed in 1.27).
FUZZTIME  ?= 100000x

.PHONY: all build test vet unit fuzz bench bench-go bench-deps soak demo deps test-deps vectors pgo clean

all: build

build:
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/pyro-dispatch

# Real Pyro4 and its optional serializers (the demo, the interop tests).
deps:
	./scripts/ensure-pyro4.sh python3-msgpack python3-dill python3-cloudpickle

# What the tests need besides: Debian's chromium for the dashboard's browser test,
# openssl for the TLS renegotiation test.
test-deps:
	./scripts/ensure-pyro4.sh python3-msgpack python3-dill python3-cloudpickle chromium openssl gcc libc6-dev

vet:
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); echo 'gofmt needed'; exit 1; }
	$(GO) vet ./...

# Interop tests fail (not skip) when real Pyro4 is missing, the browser test when
# chromium is; test-deps installs gcc, so that TestEchoFloors builds the C floor too. Tests build without the PGO profile (TESTENV): the same code, and every
# package compiled once less.
TESTENV   := GOFLAGS='$(strip $(GOFLAGS) -pgo=off)'
unit: test-deps
	$(TESTENV) PYRO_DISPATCH_REQUIRE_PYRO4=1 PYRO_DISPATCH_REQUIRE_BROWSER=1 $(GO) test -race -count=1 -timeout 15m ./...

# Every fuzz target, FUZZTIME each (longer by hand: make fuzz FUZZTIME=5000000x; a duration
# such as 10m meets the coordinator bug above at its deadline).
fuzz:
	@set -e; export $(TESTENV); for pkg in $$($(GO) list ./...); do \
	  for t in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz' || true); do \
	    echo "fuzz $$pkg $$t"; \
	    $(GO) test $$pkg -run='^$$' -fuzz="^$$t$$" -fuzztime=$(FUZZTIME); \
	  done; \
	done

test: vet unit fuzz

# The Go benchmarks (codec, forwarding loop, echo daemon).
bench-go:
	$(GO) test -run='^$$' -bench=. -benchmem ./...

# The comparison run: direct, pyro-dispatch, HAProxy, nginx and Pyro4's Python blob
# dispatcher, and the HTTP gateway against pyro4-httpgateway (bench/http.sh); writes
# bench/RESULTS.md and bench/charts/ (installs haproxy, nginx, wrk, gcc with apt when
# missing). About 10 minutes on 2 cores; BENCH_QUICK=1 for a 1.5-minute smoke run.
bench:
	GO=$(GO) ./bench/compare.sh

bench-deps:
	./bench/compare.sh --deps

# Re-record cmd/pyro-dispatch/default.pgo, the CPU profile every `go build` of the binary
# uses for profile-guided optimization (bench/pgo.sh: the modes `make bench` measures,
# under the Go load generator; about a minute).
pgo:
	GO=$(GO) ./bench/pgo.sh

# The soak run, never part of `make test`: the built binary in session, pooled and
# pipelined mode under load from real Pyro4 clients and the Go load generator while
# faults come at random, for SOAK (3m; SOAK=30m for a long one) plus a warm-up and the
# leak check; writes bench/SOAK.md and bench/charts/soak.svg, exit status 1 when a check
# failed (bench/README.md, "Soak").
soak: deps build
	$(GO) run ./bench/cmd/soak --bin $(BIN) --duration $(SOAK)

# Regenerates frame/testdata/vectors.jsonl from real Pyro4 traffic.
vectors: deps
	$(GO) run ./internal/capture/gen -out frame/testdata/vectors.jsonl

demo: deps build
	./scripts/demo.sh

clean:
	rm -rf bin
