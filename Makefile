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

.PHONY: venv demo test test-fast system-deps clean lint up

$(VENV)/.installed: requirements.txt pyproject.toml
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "need $(PYTHON) on PATH"; exit 1; }
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check "uv==$(UV_VERSION)"
	$(VENV)/bin/uv pip install --python $(PY) -r requirements.txt
	$(VENV)/bin/uv pip install --python $(PY) --no-deps -e .
	@touch $@

venv: $(VENV)/.installed

# docker-compose (v1, Debian) is only used to validate docker-compose.yaml in a test.
# chromium (Debian) renders the "LTV runs" plugin page in tests/integration/test_plugin_ui.py.
system-deps:
	@command -v docker-compose >/dev/null 2>&1 || { \
	  echo "installing docker-compose from apt (validates docker-compose.yaml)"; \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker-compose >/dev/null) \
	  || echo "WARNING: could not install docker-compose; its test will fail"; }
	@command -v chromium >/dev/null 2>&1 || { \
	  echo "installing chromium from apt (headless browser for the UI plugin test)"; \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
	  || echo "WARNING: could not install chromium; tests/integration/test_plugin_ui.py will fail"; }

demo: venv
	$(PY) -m ltv_core demo

# `make up`: Airflow standalone (scheduler, api-server + UI, dag-processor, triggerer) on SQLite in
# .airflow/, in the foreground; Ctrl-C stops every component. The "LTV runs" page and the DAG read
# LTV_STORE_ROOT (default: the demo's store, so `make demo` runs show up). See docs/UI.md.
UI_HOST ?= 127.0.0.1
UI_PORT ?= 8080
up: export LTV_STORE_ROOT ?= $(CURDIR)/.demo/store
up: export AIRFLOW__CORE__PARALLELISM := 4
up: export AIRFLOW__API__HOST := $(UI_HOST)
up: export AIRFLOW__API__PORT := $(UI_PORT)
up: export AIRFLOW__CORE__EXECUTION_API_SERVER_URL := http://127.0.0.1:$(UI_PORT)/execution/
up: venv
	@mkdir -p "$(AIRFLOW_HOME)"; \
	if [ -z "$$LTV_DATA_ROOT" ] && [ ! -d data/smadex ] && [ -d .demo/data ]; then \
	  export LTV_DATA_ROOT="$(CURDIR)/.demo/data"; \
	  echo "[up] no data configured: DAG runs triggered in the UI read the demo data ($$LTV_DATA_ROOT)"; fi; \
	echo "[up] Airflow UI:     http://localhost:$(UI_PORT)  (user admin)"; \
	echo "[up] LTV runs page:  http://localhost:$(UI_PORT)/plugin/ltv-runs  (standalone: /ltv-reports/)"; \
	echo "[up] admin password: $(AIRFLOW_HOME)/simple_auth_manager_passwords.json.generated (written on first start)"; \
	echo "[up] artefact store: $$LTV_STORE_ROOT   -- Ctrl-C stops Airflow"; \
	export PATH="$(CURDIR)/$(VENV)/bin:$$PATH"; \
	exec airflow standalone

test: venv system-deps
	$(PY) -m pytest -q tests --durations=15

# The unit tests alone (tests/unit: no Airflow, no external processes): minutes, not tens of them.
test-fast: venv
	$(PY) -m pytest -q tests/unit

lint: venv
	$(VENV)/bin/ruff check ltv_core dags plugins tests || true

clean:
	rm -rf .airflow .demo .pytest_cache
