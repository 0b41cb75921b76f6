# One entry point for people and CI: `make test`, `make demo`, `make build`, `make deploy`.
SHELL := /bin/bash
include build/python312.mk
# The venv's interpreter: the Lambda runtime's python3.12 when there is one, else python3 (>= 3.11).
PYTHON ?= $(or $(PYTHON312),$(shell command -v python3))
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# Tools that pin libraries the Lambda layer also ships (SAM CLI, checkov) get their own environment and
# lock (tools/<name>/), so their pins never decide the layer's versions.
TOOLS := sam checkov
TOOL_STAMPS := $(foreach tool,$(TOOLS),.tools/$(tool)/.installed)
SAM := .tools/sam/bin/sam
# uv installs every environment from its lock file (hash-checked). It bootstraps itself with pip at
# the version and hashes uv.lock pins (it is a dev dependency: `make lock` uses it too).
UV := $(BIN)/uv
UV_PIN := import tomllib; p = next(p for p in tomllib.load(open("uv.lock", "rb"))["package"] if p["name"] == "uv"); \
  print("uv==" + p["version"], *("--hash=" + w["hash"] for w in p["wheels"]))
export UV_PYTHON_DOWNLOADS := never
export SAM_CLI_TELEMETRY := 0

.PHONY: venv lock lint typecheck cfn-lint checkov unit integration test build deploy demo local simulate bench chaos chaos-reduced load clean

# The tests' environment is exactly uv.lock: every package pinned and hash-checked, the project itself
# editable with its dev extras, and the SDK (sdk/, its dependencies are the project's) editable beside it.
# --inexact keeps pip (venv's own; not in the lock) and the SDK.
$(STAMP): pyproject.toml uv.lock sdk/pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PYTHON) -c '$(UV_PIN)' > $(VENV)/uv-requirement.txt
	$(BIN)/pip install --quiet --disable-pip-version-check --require-hashes -r $(VENV)/uv-requirement.txt
	UV_PROJECT_ENVIRONMENT=$(VENV) $(UV) sync --quiet --frozen --inexact --extra dev --python $(BIN)/python
	$(UV) pip install --quiet --python $(BIN)/python --no-deps -e ./sdk
	touch $(STAMP)

.tools/%/.installed: tools/%/pyproject.toml tools/%/uv.lock $(STAMP)
	UV_PROJECT_ENVIRONMENT=$(CURDIR)/.tools/$* $(UV) sync --quiet --frozen --project tools/$* --python $(PYTHON)
	touch $@

venv: $(STAMP) $(TOOL_STAMPS)

# Refresh the locks (the project's and the tools') to the newest versions the pyproject.toml files allow,
# then export the layer's requirements (runtime dependencies only, with hashes) from the project's lock:
# the layer ships what the tests ran.
lock: $(STAMP)
	$(UV) lock --upgrade --python $(BIN)/python
	for tool in $(TOOLS); do $(UV) lock --upgrade --project tools/$$tool --python $(BIN)/python || exit 1; done
	$(UV) export --quiet --frozen --no-dev --no-emit-project --format requirements-txt \
	  -o layers/core/requirements.txt

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: venv
	$(BIN)/mypy

cfn-lint: venv
	$(BIN)/cfn-lint template.yaml

# Skipped checks carry their reasons in template.yaml (Metadata: checkov: skip:).
checkov: venv
	.tools/checkov/bin/checkov --skip-download --quiet --compact --framework cloudformation -f template.yaml

unit: venv
	$(BIN)/pytest tests/unit -q

integration: venv
	$(BIN)/pytest tests/integration -q

test: lint typecheck cfn-lint checkov
	@command -v chromium >/dev/null || command -v chromium-browser >/dev/null || [ -n "$$CHROMIUM" ] || \
	  printf '\n!!! NO CHROMIUM FOUND: the playground browser tests will be SKIPPED.\n!!! Install it (Debian: apt-get install -y chromium) or set CHROMIUM=/path/to/chromium.\n\n'
	$(BIN)/pytest -q

# Deployable artifacts in .aws-sam/build (arm64 layer, precompiled bytecode: build/Makefile).
build: venv
	PATH="$(CURDIR)/$(BIN):$$PATH" $(SAM) build

# Non-interactive deploy with samconfig.toml (docs/deploy.md); extra options: make deploy ARGS='...'.
deploy: build
	PATH="$(CURDIR)/$(BIN):$$PATH" $(SAM) deploy $(ARGS)

demo: venv
	$(BIN)/python -m kling_local.demo

local: venv
	$(BIN)/kling-pipeline local

simulate: venv
	$(BIN)/kling-pipeline simulate --port 9100

# Benchmarks (not part of `make test`): results in bench/results/, the table in bench/README.md. The cold
# import is measured on the build (.aws-sam/build), so `make build` comes first.
bench: build
	$(BIN)/python -m bench.cold_import
	$(BIN)/python -m bench.per_generation
	$(BIN)/python -m bench.cost
	$(BIN)/python -m bench.ingest_memory
	$(BIN)/python -m bench.report

# The full chaos run (≈300 generations, every fault at once; results in bench/results/chaos.json).
chaos: venv
	$(BIN)/python -m bench.chaos

# The reduced seeded chaos run (40 generations) alone; `make test` runs it too.
chaos-reduced: venv
	$(BIN)/pytest -q -m chaos_run tests/chaos/test_chaos_run.py

# Sustained creates and callbacks on the local stack (results in bench/results/load.json).
load: venv
	$(BIN)/python -m bench.load

clean:
	rm -rf $(VENV) .tools .local out .aws-sam .mypy_cache .ruff_cache .pytest_cache
