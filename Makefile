# sluice: build, check and measure.
#
#   make build   build ./sluice
#   make test    everything CI runs: format, vet, staticcheck, race tests,
#                a bounded fuzz run and a smoke run of the benchmark
#   make bench   the full side-by-side benchmark (minutes)

GO          ?= go
STATICCHECK ?= $(shell $(GO) env GOPATH)/bin/staticcheck
FUZZTIME    ?= 20s

.PHONY: build test lint unit fuzz bench-smoke bench

build:
	$(GO) build -o sluice ./cmd/sluice

test: lint unit fuzz bench-smoke

lint:
	@out=$$(gofmt -l .); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(STATICCHECK) ./...

unit:
	$(GO) test -race -count=1 -timeout 15m ./...

fuzz:
	$(GO) test -run '^$$' -fuzz '^FuzzRead$$' -fuzztime $(FUZZTIME) ./internal/proxyproto
	$(GO) test -run '^$$' -fuzz '^FuzzParse$$' -fuzztime $(FUZZTIME) ./internal/config

bench-smoke:
	$(GO) run ./bench -smoke

bench:
	$(GO) run ./bench
