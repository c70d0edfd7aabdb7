# sluice: build, check and measure.
#
#   make build   build ./sluice
#   make test    everything CI runs: format, vet, staticcheck, race tests,
#                the allocation tests without -race, a bounded fuzz run
#                and a smoke run of the benchmark
#   make bench   the full side-by-side benchmark (minutes)
#   make fleet   the fleet figures: sluice instances on an etcd the bench
#                starts (3 and 50 instances, 50 pushes each); needs etcd
#
# Nothing needs installing first but Go: staticcheck is a tool of go.mod
# (`go tool staticcheck`, pinned at v0.8.2), fetched with the modules.

SHELL       := /bin/bash
GO          ?= go
PKGS        ?= ./...
STATICCHECK ?= $(GO) tool staticcheck
FUZZTIME    ?= 20s

.PHONY: build test lint unit alloc fuzz bench-smoke bench fleet

build:
	$(GO) build -o sluice ./cmd/sluice

test: lint unit alloc bigendian fuzz bench-smoke

lint:
	@out=$$(gofmt -l .); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	GOOS=linux GOARCH=s390x $(GO) vet ./... # big-endian: byte order in sockaddrs
	$(STATICCHECK) ./...

# unit prints what a plain go test would, then one line per skipped test
# and why (a missing Chromium, HAProxy, root, ...): a skip is not an "ok".
unit:
	set -o pipefail; $(GO) test -race -count=1 -timeout 15m -json $(PKGS) | $(GO) run ./test/skipreport

# alloc runs the allocation tests (testing.AllocsPerRun; their names say
# Alloc) once more without -race: the race detector allocates by itself, so
# under it they skip or would count its allocations.
alloc:
	$(GO) test -count=1 -run Alloc $(PKGS)

# bigendian runs the raw-socket tests as s390x code under qemu-user, so a
# byte-order mistake in a sockaddr fails here and not on someone's mainframe.
bigendian:
	@if command -v qemu-s390x-static >/dev/null; then \
		SLUICE_EMULATED=qemu-user GOARCH=s390x $(GO) test -count=1 -exec qemu-s390x-static ./internal/rawsock; \
	elif [ -n "$$CI" ]; then echo "bigendian: qemu-s390x-static missing (apt-get install qemu-user-static)"; exit 1; \
	else echo "SKIP bigendian: qemu-s390x-static not found (apt-get install qemu-user-static)"; fi

fuzz:
	$(GO) test -run '^$$' -fuzz '^FuzzRead$$' -fuzztime $(FUZZTIME) ./internal/proxyproto
	$(GO) test -run '^$$' -fuzz '^FuzzParse$$' -fuzztime $(FUZZTIME) ./internal/config
	$(GO) test -run '^$$' -fuzz '^FuzzClientHello$$' -fuzztime $(FUZZTIME) ./internal/sniff
	$(GO) test -run '^$$' -fuzz '^FuzzHTTPHost$$' -fuzztime $(FUZZTIME) ./internal/sniff
	$(GO) test -run '^$$' -fuzz '^FuzzPrefixes$$' -fuzztime $(FUZZTIME) ./internal/sniff
	$(GO) test -run '^$$' -fuzz '^FuzzJudge$$' -fuzztime $(FUZZTIME) ./internal/route

bench-smoke:
	$(GO) run ./bench -smoke

bench:
	$(GO) run ./bench

fleet:
	$(GO) run ./bench -figures fleet
