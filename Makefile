# The two commands: `make run` (install + run the broker locally) and `make test` (install + all tests).
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: run test lint host bench install checkov clean

install: $(STAMP) node_modules/.installed

# checkov (IaC scan of infra/, run by tests/infra/test_checkov.py) lives in its own virtualenv: its
# dependencies conflict with the app's pins.
CHECKOV_VENV := .venv-checkov
CHECKOV_STAMP := $(CHECKOV_VENV)/.installed

checkov: $(CHECKOV_STAMP)

$(CHECKOV_STAMP): requirements-checkov.txt constraints-checkov.txt
	$(PYTHON) -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/python -m pip install --quiet --disable-pip-version-check -r requirements-checkov.txt -c constraints-checkov.txt
	touch $@

# The project itself is installed editable, without dependencies or a build environment of its own (so
# offline): that puts the `handoff` command (docs/cli.md) in $(VENV)/bin.
$(STAMP): requirements.txt requirements-dev.txt constraints.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt -c constraints.txt
	$(PY) -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	touch $@

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

## Run the broker locally: Azurite, a local token endpoint, two simulated SRE Agents and the app on :7071.
run: install
	$(PY) -m devserver.run

## Run only the local Functions host (uses your environment / local.settings.json).
host: install
	$(PY) -m devserver.host

# The unit tests run first, alone: with nothing but the virtualenv on PATH (no node, so no Azurite: they
# need no storage), at least MIN_UNIT_TESTS of them, covering at least SERVICES_COVERAGE % of the use cases.
MIN_UNIT_TESTS := 300
SERVICES_COVERAGE := 85

# The whole suite runs in TEST_WORKERS processes (pytest-xdist), a test file per process at a time: each
# process starts its own Azurite, simulated services and broker, so none shares state with another. Files
# are handed out in the order a plain run takes them (not largest first), so within a process they keep
# that order.
TEST_WORKERS ?= 2

## Lint, type-check, run the unit tests (the gate above), then the whole suite (starts its own Azurite).
test: install checkov
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m mypy
	HANDOFF_MIN_UNIT_TESTS=$(MIN_UNIT_TESTS) PATH="$(CURDIR)/$(VENV)/bin" $(PY) -m pytest tests/unit -q \
		-p no:cacheprovider --cov=handoff/services --cov-fail-under=$(SERVICES_COVERAGE) --cov-report=term
	$(PY) -m pytest -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder

## Lint and type-check.
lint: install
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m mypy

## Benchmarks (figures, not pass/fail; docs/performance.md): `make bench`, or `make bench BENCH_ARGS=--quick`.
bench: install
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-bench.txt -c constraints.txt
	$(PY) -m bench.run $(BENCH_ARGS)

clean:
	rm -rf $(VENV) $(CHECKOV_VENV) node_modules .pytest_cache .ruff_cache .run
