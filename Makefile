# Two entry points: `make demo` and `make test`. Both build .venv (with uv) when it is missing.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
UV_VERSION := 0.13.9
export PYTHONPATH := $(CURDIR)
export AIRFLOW_HOME ?= $(CURDIR)/.airflow
export AIRFLOW__CORE__LOAD_EXAMPLES := False
export AIRFLOW__CORE__DAGS_FOLDER := $(CURDIR)/dags
export AIRFLOW__CORE__PLUGINS_FOLDER := $(CURDIR)/plugins
export LTV_PROJECT_ROOT := $(CURDIR)

.PHONY: venv demo test system-deps clean lint

$(VENV)/.installed: requirements.txt pyproject.toml
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "need $(PYTHON) on PATH"; exit 1; }
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check "uv==$(UV_VERSION)"
	$(VENV)/bin/uv pip install --python $(PY) -r requirements.txt
	$(VENV)/bin/uv pip install --python $(PY) --no-deps -e .
	@touch $@

venv: $(VENV)/.installed

# docker-compose (v1, Debian) is only used to validate docker-compose.yaml in a test.
system-deps:
	@command -v docker-compose >/dev/null 2>&1 || { \
	  echo "installing docker-compose from apt (validates docker-compose.yaml)"; \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker-compose >/dev/null) \
	  || echo "WARNING: could not install docker-compose; its test will fail"; }

demo: venv
	$(PY) -m ltv_core demo

test: venv system-deps
	$(PY) -m pytest -q tests

lint: venv
	$(VENV)/bin/ruff check ltv_core dags plugins tests || true

clean:
	rm -rf .airflow .demo .pytest_cache
