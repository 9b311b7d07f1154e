# The project's commands. `make test` is the one that README names: it
# installs the pinned tools into ./.tools, starts DynamoDB Local and local-kms,
# runs lint, the full test suite with -race and short fuzz runs, then stops
# the servers. See scripts/test.sh.

SHELL := /usr/bin/env bash
GO    ?= go

.PHONY: all test check build lint bench tools clean-tools

all: build

test:
	bash scripts/test.sh

# The everyday check, under 2 minutes warm: lint plus the tests of the pure
# packages (keygen, keygen/keystore, depositdata). No servers, no -race.
check:
	bash scripts/test.sh check

build:
	$(GO) build -o bin/ethkeygen ./adapters/ethkeygen

# gofmt, go vet and the pinned staticcheck (installed into ./.tools/bin).
lint:
	bash scripts/test.sh lint

# Benchmarks need no servers; BENCH selects them, e.g. make bench BENCH=Keystore
BENCH ?= .
bench:
	$(GO) test -run '^$$' -bench '$(BENCH)' -benchmem ./...

# Install the pinned tools only.
tools:
	bash scripts/test.sh tools

clean-tools:
	rm -rf .tools
