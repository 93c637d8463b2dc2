# syntax=docker/dockerfile:1
#
# One image for the whole LTV production stack: every Airflow component (api-server, scheduler,
# dag-processor, triggerer, init) AND the Dask scheduler/workers run from it, so the Dask client
# inside an Airflow task and the Dask workers always have identical package versions
# (dask/distributed/pandas/pyarrow/lightgbm/ltv_core). See docs/DEPLOYMENT.md.
#
#   docker compose build            # or: docker build -t ltv-pipeline:latest .
#   docker build --build-arg LTV_CODE_VERSION="$(git rev-parse --short=12 HEAD)" -t ltv-pipeline .
#
# LTV_CODE_VERSION is stamped into every artefact manifest (there is no .git inside the image).

ARG PYTHON_IMAGE=python:3.11-slim-bookworm
FROM ${PYTHON_IMAGE}

ARG UV_VERSION=0.13.9
ARG AIRFLOW_UID=50000
ARG LTV_CODE_VERSION=""

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    UV_NO_CACHE=1 \
    UV_COMPILE_BYTECODE=1 \
    AIRFLOW_HOME=/opt/airflow \
    LTV_PROJECT_ROOT=/opt/airflow \
    LTV_CODE_VERSION=${LTV_CODE_VERSION} \
    AIRFLOW__CORE__DAGS_FOLDER=/opt/airflow/dags \
    AIRFLOW__CORE__PLUGINS_FOLDER=/opt/airflow/plugins \
    AIRFLOW__CORE__LOAD_EXAMPLES=False

# libgomp1: OpenMP runtime LightGBM links against (absent from -slim).
# tini: PID 1 that forwards signals so `docker stop` shuts Airflow/Dask down cleanly.
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      libgomp1 tini ca-certificates \
 && rm -rf /var/lib/apt/lists/*

# Dependencies first (own layer, cached until requirements.txt changes). requirements.txt is the
# single, fully pinned lock file - the same one `make venv` installs.
COPY requirements.txt /tmp/build/requirements.txt
RUN pip install "uv==${UV_VERSION}" \
 && uv pip install --system -r /tmp/build/requirements.txt \
 && AIRFLOW_HOME=/tmp/airflow-import-check \
      python -c "import airflow, dask, distributed, lightgbm, s3fs, great_expectations" \
 && rm -rf /tmp/airflow-import-check \
 && (python -c "import psycopg2" 2>/dev/null || { \
      echo "ERROR: requirements.txt has no PostgreSQL driver, but the metadata DB" \
           "(postgresql+psycopg2://) needs one: pin psycopg2-binary in requirements.txt." >&2; \
      exit 1; })

# The ltv_core package itself, non-editable into site-packages, no dependency resolution
# (everything it needs is already pinned above).
COPY pyproject.toml README.md /tmp/build/src/
COPY ltv_core /tmp/build/src/ltv_core
RUN uv pip install --system --no-deps /tmp/build/src \
 && rm -rf /tmp/build \
 && python -c "import ltv_core"

# Non-root runtime user (uid 50000, gid 0 as in the official Airflow image, so an arbitrary uid
# in group 0 also works). AIRFLOW_HOME must be writable: logs/, auth/ and airflow.cfg live there;
# named volumes mounted on logs/ and auth/ inherit this ownership on first use.
RUN useradd --uid "${AIRFLOW_UID}" --gid 0 --home-dir /opt/airflow --no-create-home \
      --shell /bin/bash airflow \
 && mkdir -p /opt/airflow/logs /opt/airflow/auth \
 && chown -R "${AIRFLOW_UID}:0" /opt/airflow \
 && chmod -R g+rwX /opt/airflow

# Project files baked in (docker-compose mounts the host copies read-only on top of dags/,
# plugins/, config/, include/ so DAG edits do not need a rebuild; ltv_core changes do).
# Copied through a BuildKit bind mount instead of four COPY lines because git does not keep empty
# folders: a fresh clone may have no plugins/ (or include/), and `COPY plugins ...` would then
# fail the build. Missing folders become empty ones; __pycache__ folders are dropped.
RUN --mount=type=bind,source=.,target=/ctx \
    for d in dags plugins config include; do \
      mkdir -p "/opt/airflow/$d"; \
      if [ -d "/ctx/$d" ]; then cp -R "/ctx/$d/." "/opt/airflow/$d/"; fi; \
    done \
 && find /opt/airflow -name __pycache__ -type d -prune -exec rm -rf {} + \
 && chown -R "${AIRFLOW_UID}:0" /opt/airflow/dags /opt/airflow/plugins /opt/airflow/config \
      /opt/airflow/include

USER ${AIRFLOW_UID}
WORKDIR /opt/airflow

# 8080 airflow api-server, 8974 scheduler health, 8786/8787 dask scheduler + dashboard.
EXPOSE 8080 8974 8786 8787

ENTRYPOINT ["/usr/bin/tini", "--"]
CMD ["airflow", "version"]
