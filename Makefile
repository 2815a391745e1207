# Front door. `make demo` and `make test` are the two commands a newcomer needs; both run the
# idempotent scripts/setup.sh first (a second or so once everything is installed).
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python

.PHONY: setup demo test lint bench bench-quick

setup:
	bash scripts/setup.sh

demo: setup
	$(VENV)/bin/moderator demo

test: setup
	$(PY) -m pytest -q

lint: setup
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m mypy moderator topics onnx_export

# `make bench` runs the whole suite and rewrites docs/benchmarks.md (tens of minutes on 2 cores: see
# "Running the suite" there); `make bench-quick` is its few-minute smoke test (build/bench/quick.md).
# One benchmark alone: `make bench BENCH_ARGS="--only overhead"` or `python -m bench.overhead`.
BENCH_ARGS ?=
bench: setup
	$(PY) -m bench $(BENCH_ARGS)

bench-quick: setup
	$(PY) -m bench --quick $(BENCH_ARGS)
