# One entry point for people and CI. Every target sets up what it needs first.
PY      ?= python3
VENV    := .venv
VPY     := $(VENV)/bin/python
STAMP   := $(VENV)/.installed
RUNTIME := .build/realruntime.stamp
CHROMIUM ?= /usr/bin/chromium
SUDO    := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: demo test test-fast test-matrix lint bench bench-gc clean

$(STAMP): pyproject.toml emulator/pyproject.toml
	$(PY) -m venv $(VENV)
	$(VPY) -m pip install --quiet --upgrade pip
	$(VPY) -m pip install --quiet -e . -e './emulator[test]'
	touch $(STAMP)

# npm tooling (Node 22, wrangler, pyodide), the offline Pyodide bundle, vendored SDK.
$(RUNTIME): $(STAMP) package.json package-lock.json $(wildcard tools/realruntime/*.py)
	$(VPY) tools/realruntime/setup.py
	mkdir -p .build && touch $(RUNTIME)

## demo: run the bundled transfer saga on the embedded emulator (prints the rollback phase)
demo: $(STAMP)
	$(VPY) examples/transfer_saga.py

# Debian's Chromium for the browser tests (pages of the dev server, driven by Playwright).
$(CHROMIUM):
	$(SUDO) apt-get update -qq
	$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium

## test: the whole suite: binding, emulator, CLI/dev server, browser, real runtime (workerd)
test: $(STAMP) $(RUNTIME) $(CHROMIUM)
	$(VPY) -m pytest

## test-fast: everything but the real-runtime tier and the browser tests
test-fast: $(STAMP)
	$(VPY) -m pytest -m "not e2e and not browser"

## test-matrix: the fast suite under CPython 3.11, 3.12 and 3.13 (venvs in .build/venv-3.X);
## a missing version fails the run unless MATRIX_ALLOW_MISSING=1
test-matrix:
	$(PY) tools/test_matrix.py

## lint: ruff (package, emulator, tests, tools, benchmarks, examples) and mypy --strict
lint: $(STAMP)
	$(VENV)/bin/ruff check src emulator tests tools benchmarks examples
	$(VENV)/bin/mypy

## bench: issue 11's scenarios on the emulator next to the SQLite floor and, when the npm
## tooling is installed (make .build/realruntime.stamp), wrangler's local engine, one run;
## BENCH_ARGS="--full" adds 25,000 steps and the memory of 10,000 finished instances
bench: $(STAMP)
	$(VPY) -m benchmarks.run $(BENCH_ARGS)

## bench-gc: time inside the garbage collector and objects kept, per step (steadier than
## wall time here); GC_ARGS="--sizes 1000,25000 --scenarios rollback"
bench-gc: $(STAMP)
	$(VPY) -m benchmarks.gc_cost $(GC_ARGS)

clean:
	rm -rf $(VENV) .build node_modules python_modules
	rm -f tests/e2e/worker/src/worker_trace.py tests/differential/worker/src/worker_trace.py
