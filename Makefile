# Two commands: `make run` (the stack on its embedded default) and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat requirements.lock requirements-nodeps.lock pyproject.toml | sha1sum | cut -c1-12)
# Where a local torch wheel may lie (this machine keeps the CPU build there); harmless elsewhere.
WHEELS := $(wildcard /opt/wheels)
PIP_OPTS := $(if $(WHEELS),--find-links $(WHEELS),)

.PHONY: venv run test lint chromium unit integration bench-serving bench-generative bench-retrain clean

$(STAMP):
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q $(PIP_OPTS) -r requirements.lock "setuptools>=68"
	$(PY) -m pip install -q --no-deps -r requirements-nodeps.lock
	$(PY) -m pip install -q --no-deps --no-build-isolation -e .
	@rm -f $(VENV)/.installed-*; touch $@

venv: $(STAMP)

run: venv
	$(BIN)/thumbloop up

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy thumbloop serving learning bots bench tests
	$(BIN)/lint-imports --no-cache

# The tests not marked slow on two workers (an integration package stays on one worker:
# tests/conftest.py), then the slow end-to-end and chaos tests one at a time, so their timings
# and faults never share the cores with other tests. Both halves run even when the first fails.
test: lint chromium
	rc=0; \
	$(BIN)/pytest -ra -n 2 -m "not slow" || rc=$$?; \
	$(BIN)/pytest -ra -m slow || rc=$$?; \
	exit $$rc

# The review inbox's browser test drives Debian's chromium (Playwright cannot download a browser
# offline): install it when missing and we may, else say how.
chromium:
	@command -v chromium >/dev/null || { [ "$$(id -u)" = 0 ] && apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; } || { echo "install chromium (apt-get install chromium)"; exit 1; }

unit: venv
	$(BIN)/pytest -ra tests/unit

integration: venv
	$(BIN)/pytest -ra tests/integration

bench-serving: venv
	$(PY) bench/serving.py

bench-generative: venv
	$(PY) bench/generative.py

bench-retrain: venv
	$(PY) bench/retrain.py

clean:
	rm -rf .thumbloop .pytest_cache .mypy_cache .ruff_cache
