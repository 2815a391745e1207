# Front door. `make demo` and `make test` are the two commands a newcomer needs; both run the
# idempotent scripts/setup.sh first (a second or so once everything is installed).
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python

.PHONY: setup demo test test-fast lint bench bench-quick

setup:
	bash scripts/setup.sh

demo: setup
	$(VENV)/bin/moderator demo

test: setup
	$(PY) -m pytest -q

# The unit layer: no torch, no ONNX Runtime sessions, no subprocess, no broker or Redis (under a minute).
UNIT_TESTS := tests/unit tests/topics tests/test_readme.py tests/moderator/test_layout.py \
	tests/moderator/test_settings.py tests/moderator/core/test_policy.py \
	tests/moderator/runtime/test_batching.py tests/moderator/stream/test_adapter.py \
	tests/moderator/stream/test_replay.py tests/moderator/stream/test_liveness.py
test-fast: setup
	$(PY) -m pytest -q $(UNIT_TESTS)

lint: setup
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m mypy moderator topics onnx_export bench scripts

# `make bench` runs the whole suite and rewrites docs/benchmarks.md (tens of minutes on 2 cores: see
# "Running the suite" there); `make bench-quick` is its few-minute smoke test (build/bench/quick.md).
# One benchmark alone: `make bench BENCH_ARGS="--only overhead"` or `python -m bench.overhead`.
BENCH_ARGS ?=
bench: setup
	$(PY) -m bench $(BENCH_ARGS)

bench-quick: setup
	$(PY) -m bench --quick $(BENCH_ARGS)
