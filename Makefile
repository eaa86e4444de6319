# portcullis — the two commands that matter: `make run` and `make test`.
BUILD      ?= build
ASAN_BUILD ?= build-asan
FUZZ_BUILD ?= build-fuzz
CONFIG     ?= examples/quickstart.yaml
JOBS       ?= $(shell nproc)
FUZZ_SECONDS ?= 60

.PHONY: all build run test unit asan integration fuzz bench bootstrap clean format cedar-diff cedar-diff-short eval-guard conformance bench-guard

all: build

bootstrap:
	@scripts/bootstrap

$(BUILD)/CMakeCache.txt:
	cmake -S . -B $(BUILD) -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo

build: bootstrap $(BUILD)/CMakeCache.txt
	cmake --build $(BUILD) -j $(JOBS)

run: build
	$(BUILD)/portcullis serve -c $(CONFIG)

unit: build
	ctest --test-dir $(BUILD) --output-on-failure -j $(JOBS)

asan: bootstrap
	cmake -S . -B $(ASAN_BUILD) -G Ninja -DCMAKE_BUILD_TYPE=Debug -DPORTCULLIS_SANITIZE=ON
	cmake --build $(ASAN_BUILD) -j $(JOBS)
	ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 ctest --test-dir $(ASAN_BUILD) --output-on-failure -j $(JOBS)
	@echo "== integration tests against the ASan/UBSan binary"
	ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 PORTCULLIS_BIN=$(CURDIR)/$(ASAN_BUILD)/portcullis .venv/bin/python -m pytest -q tests/integration

integration: build
	PORTCULLIS_BIN=$(CURDIR)/$(BUILD)/portcullis .venv/bin/python -m pytest -q tests/integration

test: unit asan integration cedar-diff-short conformance

# Differential test of the Cedar engine against cedarpy (the Rust reference).
CEDAR_DIFF_CASES ?= 100000
cedar-diff: build
	.venv/bin/python tests/cedar-diff/edge_cases.py --bin $(BUILD)/portcullis
	.venv/bin/python tests/cedar-diff/cedar_diff.py --cases $(CEDAR_DIFF_CASES) --bin $(BUILD)/portcullis

cedar-diff-short:
	$(MAKE) cedar-diff CEDAR_DIFF_CASES=2000

fuzz: bootstrap
	CC=clang cmake -S . -B $(FUZZ_BUILD) -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DPORTCULLIS_FUZZ=ON -DPORTCULLIS_TESTS=OFF
	cmake --build $(FUZZ_BUILD) -j $(JOBS)
	scripts/fuzz $(FUZZ_BUILD) $(FUZZ_SECONDS)

bench: build
	bench/run

format:
	clang-format -i $$(git ls-files 'src/*.c' 'src/*.h' 'tests/*.c' 'fuzz/*.c')

clean:
	rm -rf $(BUILD) $(ASAN_BUILD) $(FUZZ_BUILD)

# Prompt-injection scanner on BIPIA (../shared/corpora/bipia, read in place):
# TPR / FPR / precision / F1 per task and overall.
eval-guard: build
	scripts/eval-guard --bin $(BUILD)/portcullis

# The MCP conformance suite (.node/, from bootstrap) against tests/mcp/fixture_server.py
# directly and through portcullis; fails on a check that passes only directly.
conformance: build
	PORTCULLIS_BIN=$${PORTCULLIS_BIN:-$(CURDIR)/$(BUILD)/portcullis} scripts/conformance

# guard_scan throughput (MB/s per core, clean and poisoned tool output); not a test.
bench-guard: build
	bench/guard/run $(BUILD)
