"""Shared fixtures. Airflow runs against a throw-away AIRFLOW_HOME with a SQLite DB."""

from __future__ import annotations

import os
import subprocess
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

# Set before anything imports airflow: every test session gets its own home and DB.
_HOME = Path(tempfile.mkdtemp(prefix="ltv-airflow-home-"))
os.environ.setdefault("LTV_PROJECT_ROOT", str(ROOT))
os.environ["AIRFLOW_HOME"] = str(_HOME)
os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(ROOT / "dags")
os.environ["AIRFLOW__CORE__PLUGINS_FOLDER"] = str(ROOT / "plugins")
os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
# Tests must not pick up a developer's data or store roots.
for var in ("LTV_DATA_ROOT", "LTV_STORE_ROOT", "LTV_DASK_SCHEDULER"):
    os.environ.pop(var, None)


@pytest.fixture(scope="session")
def airflow_db() -> dict[str, str]:
    """A migrated SQLite metadata DB; returns the environment for `airflow` subprocesses."""
    from ltv_core.demo import airflow_env, run_airflow

    env = airflow_env(_HOME)
    run_airflow(["db", "migrate"], env)
    return env
