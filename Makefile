# moonkeep — the front door. `make run` and `make test` work on a fresh
# Debian 12 machine: both install what is missing first.
SHELL := /bin/bash
JOBS  ?= $(shell nproc)
BUSTED = busted --lua=luajit

.PHONY: all deps build asan run test test-unit test-e2e test-asan bench clean help

all: build

help:
	@echo "make run     install, build, start the server (embedded database under var/)"
	@echo "make test    install, build (plain and sanitizer), run every suite"
	@echo "make build   build build/moonkeep";
	@echo "make asan    build build-asan/moonkeep with ASan and UBSan"
	@echo "make bench   release build under wrk, beside bare evhttp, nginx, pgbench, argon2id (bench/)"

deps:
	@bash vendor/install.sh

build: deps
	@cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
	@cmake --build build -j $(JOBS)

asan: deps
	@cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DMOONKEEP_SANITIZE=ON >/dev/null
	@cmake --build build-asan -j $(JOBS)

# The embedded default: with no DATABASE_URL, a private cluster under var/pg.
run: build
	@bash tools/run-embedded.sh

test: build asan
	@bash tools/test.sh

test-unit: build
	@$(BUSTED) spec/unit

test-e2e: build
	@bash tools/test.sh e2e

# Not part of `make test`: a few minutes of load, printed as a table and
# written to bench/results/latest.json (docs/performance.md).
bench: deps
	@cmake -S . -B build-release -DCMAKE_BUILD_TYPE=Release >/dev/null
	@cmake --build build-release -j $(JOBS)
	@bash bench/run.sh

clean:
	rm -rf build build-asan build-release
