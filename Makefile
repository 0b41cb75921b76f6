# One entry point for people and CI: `make test`, `make demo`.
SHELL := /bin/bash
# The Lambda runtime is python3.12: use it when pyenv has it, else whatever python3 is (>= 3.11).
PYTHON ?= $(shell (pyenv root >/dev/null 2>&1 && ls -d $$(pyenv root)/versions/3.12.*/bin/python3.12 2>/dev/null | tail -1) || command -v python3.12 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: venv lint typecheck cfn-lint unit integration test demo local simulate bench chaos load clean

$(STAMP): pyproject.toml sdk/pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ./sdk -e '.[dev]'
	touch $(STAMP)

venv: $(STAMP)

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: venv
	$(BIN)/mypy

cfn-lint: venv
	$(BIN)/cfn-lint template.yaml

unit: venv
	$(BIN)/pytest tests/unit -q

integration: venv
	$(BIN)/pytest tests/integration -q

test: lint typecheck cfn-lint
	@command -v chromium >/dev/null || command -v chromium-browser >/dev/null || [ -n "$$CHROMIUM" ] || \
	  printf '\n!!! NO CHROMIUM FOUND: the playground browser tests will be SKIPPED.\n!!! Install it (Debian: apt-get install -y chromium) or set CHROMIUM=/path/to/chromium.\n\n'
	$(BIN)/pytest -q

demo: venv
	$(BIN)/python -m kling_local.demo

local: venv
	$(BIN)/kling-pipeline local

simulate: venv
	$(BIN)/kling-pipeline simulate --port 9100

# Benchmarks (not part of `make test`): results in bench/results/, the table in bench/README.md.
bench: venv
	$(BIN)/python -m bench.cold_import
	$(BIN)/python -m bench.per_generation
	$(BIN)/python -m bench.cost
	$(BIN)/python -m bench.ingest_memory
	$(BIN)/python -m bench.report

# The full chaos run (≈300 generations, every fault at once; results in bench/results/chaos.json).
chaos: venv
	$(BIN)/python -m bench.chaos

# Sustained creates and callbacks on the local stack (results in bench/results/load.json).
load: venv
	$(BIN)/python -m bench.load

clean:
	rm -rf $(VENV) .local out .aws-sam .mypy_cache .ruff_cache .pytest_cache
