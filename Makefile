# Front door. `make demo` and `make test` are the two commands a newcomer needs; both run the
# idempotent scripts/setup.sh first (a second or so once everything is installed).
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python

.PHONY: setup demo test lint bench

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

# `make bench BENCH=bench.other BENCH_ARGS="--rounds 1"` runs another benchmark module or changes its size.
BENCH ?= bench.overhead
BENCH_ARGS ?=
bench: setup
	$(PY) -m $(BENCH) $(BENCH_ARGS)
