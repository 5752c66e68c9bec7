# moonkeep — the front door. `make run` and `make test` work on a fresh
# Debian 12 machine: both install what is missing first.
SHELL := /bin/bash
JOBS  ?= $(shell nproc)
BUSTED = busted --lua=luajit

.PHONY: all deps build asan run test test-fresh image test-unit test-e2e test-asan lint coverage bench bench-scale build-release fuzz clean help

all: build

help:
	@echo "make run     install, build, start the server (embedded database under var/)"
	@echo "make test    install, build (plain and sanitizer), run every suite"
	@echo "make test-fresh  make test and make run in a pristine Debian 12 container (podman)"
	@echo "make image   build the container image moonkeep:local with podman"
	@echo "make build   build build/moonkeep";
	@echo "make asan    build build-asan/moonkeep with ASan and UBSan"
	@echo "make fuzz    build the libFuzzer harnesses (fuzz/) and run each FUZZ_SECONDS (60)"
	@echo "make lint    every linter (tools/lint/run.sh; also a suite of make test)"
	@echo "make coverage  C lines of host/ and Lua lines of scripts/, with floors (build-coverage/report/)"
	@echo "make bench   release build under wrk, beside bare evhttp, nginx, nginx-lua, pgbench, argon2id (medians of 3 runs), then the scale table (bench/)"
	@echo "make bench-scale  the scale table alone: 10k, 100k, 1M users (bench/scale.sh)"

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

# A clean clone of HEAD in a pristine Debian 12 container: make test, then
# make run from a mode-700 folder (tools/test-fresh.sh; README, "Container").
test-fresh: deps
	@bash tools/test-fresh.sh

# moonkeep:local, built by podman from the repository's files (tools/image.sh).
image: deps
	@bash tools/image.sh

test-unit: build
	@$(BUSTED) spec/unit

test-e2e: build
	@bash tools/test.sh e2e

# luacheck, clang-tidy, cppcheck, gcc -fanalyzer, flawfinder, shellcheck,
# yamllint, workflow and CloudFormation validators, the deploy rules (CONTRIBUTING.md).
lint: deps
	@bash tools/lint/run.sh

# Unit, route and end-to-end suites against a --coverage build; fails below
# 85% of host/ lines or 90% of scripts/ lines (README.md, "Coverage").
coverage: deps
	@bash tools/coverage.sh

# Not part of `make test` (docs/performance.md): BENCH_RUNS (3) runs of the
# main table and their medians (bench/results/median.json), then the scale
# table (bench/scale.sh, bench/results/scale-latest.json) unless
# BENCH_SCALE=0; about 13 minutes. `make bench-scale`: the scale table alone.
# BENCH_SMOKE=1: 1 s slices, 1 round, 1 run: a quick check that all of it
# runs, not figures to read.
BENCH_RUNS ?= 3
BENCH_SCALE ?= 1

build-release: deps
	@cmake -S . -B build-release -DCMAKE_BUILD_TYPE=Release >/dev/null
	@cmake --build build-release -j $(JOBS)

bench: build-release
	@BENCH_RUNS=$(if $(filter 1,$(BENCH_SMOKE)),1,$(BENCH_RUNS)) bash bench/run.sh
	@if [ "$(BENCH_SCALE)" != 0 ]; then bash bench/scale.sh; fi

bench-scale: build-release
	@bash bench/scale.sh

fuzz: deps
	@bash tools/fuzz.sh

clean:
	rm -rf build build-asan build-fuzz build-release build-coverage build-lint build-analyzer
