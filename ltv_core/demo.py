"""``make demo``: run the real DAG once, end to end, on an embedded default set-up.

SQLite metadata DB, a local artefact store, a Dask LocalCluster and (when no data is configured)
a generated sample data set. Airflow is driven through its CLI (``airflow dags test``) in a
subprocess, so this module needs no Airflow import.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from ltv_core.threads import PARALLEL_ENV
from ltv_core import jsonutil
from ltv_core.config import load_config
from ltv_core.errors import LtvError
from ltv_core.pipeline import DAG_ID, REPORT_DIR, Stage
from ltv_core.progress import DagTestProgress, stream
from ltv_core.spec import load_spec
from ltv_core.yamlconf import project_root
from ltv_core.store import open_store
from ltv_core.windows import suggest_logical_date


def _say(msg: str) -> None:
    print(f"[demo] {msg}", flush=True)


def airflow_env(home: Path | None = None) -> dict[str, str]:
    """Environment for an embedded Airflow: SQLite in AIRFLOW_HOME, examples off, project DAGs."""
    root = project_root()
    env = dict(os.environ)
    env.setdefault("AIRFLOW_HOME", str(home or root / ".airflow"))
    env.update({
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__DAGS_FOLDER": str(root / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(root / "plugins"),
        "AIRFLOW__CORE__UNIT_TEST_MODE": env.get("AIRFLOW__CORE__UNIT_TEST_MODE", "False"),
        "LTV_PROJECT_ROOT": str(root),
        "PYTHONPATH": os.pathsep.join(filter(None, [str(root), env.get("PYTHONPATH")])),
    })
    return env


def airflow_bin() -> str:
    candidate = Path(sys.executable).with_name("airflow")
    return str(candidate) if candidate.exists() else (shutil.which("airflow") or "airflow")


def run_airflow(args: list[str], env: dict[str, str], check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([airflow_bin(), *args], env=env, text=True, capture_output=True)
    if check and proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).splitlines()[-60:])
        raise LtvError(f"`airflow {' '.join(args)}` failed with exit code {proc.returncode}:\n{tail}")
    return proc


def ensure_data(rows_per_partition: int, seed: int) -> str:
    """The configured data root, or a generated sample set under .demo/data."""
    config = load_config()
    spec = load_spec(config.dataset_spec)
    configured = config.data_root or os.environ.get("LTV_DATA_ROOT")
    if configured:
        _say(f"using configured data root {configured}")
        return configured
    default_root = Path(spec.resolved_data_root())
    if (default_root / spec.roots.train).exists():
        _say(f"using data under {default_root}")
        return str(default_root)
    out = project_root() / ".demo" / "data"
    marker = out / "_GENERATED.json"
    if marker.exists():
        _say(f"reusing generated sample data in {out}")
        return str(out)
    from ltv_core.synthetic import generate_dataset

    _say(f"no data configured: generating a sample data set in {out} ({rows_per_partition} rows per partition)")
    if out.exists():
        shutil.rmtree(out)
    summary = generate_dataset(out, seed=seed, rows_per_partition=rows_per_partition, spec_path=config.dataset_spec,
                               log=_say)
    marker.write_text(json.dumps(summary, indent=2, default=jsonutil.default))
    return str(out)


def latest_run(store_root: str) -> str | None:
    runs = Path(store_root) / "runs"
    if not runs.exists():
        return None
    dirs = [d for d in runs.iterdir() if d.is_dir()]
    return max(dirs, key=lambda d: d.stat().st_mtime).name if dirs else None


def run_demo(rows_per_partition: int = 400, seed: int = 7) -> dict[str, Any]:
    root = project_root()
    data_root = ensure_data(rows_per_partition, seed)
    store_root = os.environ.get("LTV_STORE_ROOT") or str(root / ".demo" / "store")
    config = load_config()
    spec = load_spec(config.dataset_spec)
    logical = suggest_logical_date(spec, config, data_root)
    env = airflow_env()
    # `dags test` runs one task at a time: each stage may use every core (ltv_core/threads.py)
    env.setdefault(PARALLEL_ENV, "1")
    _say(f"initialising Airflow metadata DB (SQLite) in {env['AIRFLOW_HOME']}")
    run_airflow(["db", "migrate"], env)
    conf = {"data_root": data_root, "store_root": store_root}
    log_path = Path(store_root) / "demo-last-dags-test.log"
    _say(f"running `airflow dags test {DAG_ID} {logical.isoformat()}` (data {data_root}, store {store_root})")
    _say(f"full Airflow log, written as it runs: {log_path}")
    argv = [airflow_bin(), "dags", "test", DAG_ID, logical.isoformat(), "-c", json.dumps(conf)]
    code, tail = stream(argv, env, log_path, DagTestProgress(say=_say))
    run = latest_run(store_root)
    if code != 0 or run is None:
        raise LtvError(f"the DAG run failed (full log: {log_path}):\n" + "\n".join(tail[-40:]))
    return summarize(store_root, run, logical.isoformat(), str(log_path))


def summarize(store_root: str, run: str, logical: str, log_path: str) -> dict[str, Any]:
    store = open_store(store_root)
    ingest = store.read_manifest(run, Stage.INGEST)
    summary: dict[str, Any] = {
        "run_id": run,
        "logical_date": logical,
        "airflow_log": log_path,
        "staged": {s: {"rows": o["rows"], "window": o["window"], "path": f"{store.stage_dir(run, Stage.INGEST)}/{s}"}
                   for s, o in ingest["outputs"].items()},
    }
    vdir = store.stage_dir(run, Stage.VALIDATE)
    summary["validation"] = {
        "committed": store.is_committed(run, Stage.VALIDATE),
        "result": f"{vdir}/result.json",
        "data_docs": f"{vdir}/data_docs",
    }
    _say(f"run {run} done. Staged splits:")
    for s, info in summary["staged"].items():
        _say(f"  {s:<10} {info['rows']:>8} rows  {info['window'][0]} .. {info['window'][1]}  -> {info['path']}")
    _say(f"validation result: {summary['validation']['result']}")
    _say(f"validation data docs: {summary['validation']['data_docs']}")
    if store.is_committed(run, Stage.BUILD_FEATURES):
        feats = store.read_manifest(run, Stage.BUILD_FEATURES)
        summary["features"] = {"n_features": feats["n_features"], "rows": feats["rows"],
                               "path": store.stage_dir(run, Stage.BUILD_FEATURES),
                               "feature_state": feats["outputs"]["feature_state"]}
        _say(f"features: {feats['n_features']} columns per row -> {summary['features']['path']}")
        _say(f"feature state (fitted on train, reused for every split): {summary['features']['feature_state']}")
    summary.update(_summarize_models(store, run))
    return summary


def _summarize_models(store: Any, run: str) -> dict[str, Any]:
    """The holdout table (model vs baselines vs oracle), the promotion decision, the report and
    the predictions, as the demo prints them."""
    out: dict[str, Any] = {}
    if store.is_committed(run, Stage.EVALUATE):
        edir = store.stage_dir(run, Stage.EVALUATE)
        out["holdout_table"] = f"{edir}/baselines.md"
        _say("holdout metrics, model vs baselines vs the generator's oracle (primary horizon):")
        for line in store.read_text(f"{edir}/baselines.md").splitlines():
            _say("  " + line)
    decision_path = f"{store.stage_dir(run, Stage.PROMOTE)}/decision.json"
    if store.exists(decision_path):
        decision = store.read_json(decision_path)
        out["decision"] = {"promoted": decision["promoted"], "reason": decision["reason"], "path": decision_path}
        _say(f"promotion: {'PROMOTED' if decision['promoted'] else 'not promoted'}: {decision['reason']}")
    report = f"{store.stage_dir(run, REPORT_DIR)}/report.html"
    if store.exists(report):
        out["report"] = report
        _say(f"report: {report}")
    if store.is_committed(run, Stage.SCORE) and store.read_manifest(run, Stage.SCORE).get("skipped"):
        out["predictions"] = {"skipped": store.read_manifest(run, Stage.SCORE)["skipped"]}
        _say(f"predictions: none ({out['predictions']['skipped']})")
    elif store.is_committed(run, Stage.SCORE):
        scored = store.read_manifest(run, Stage.SCORE)
        out["predictions"] = {"path": scored["outputs"]["predictions"], "rows": scored["rows"],
                              "model_run_id": scored["model_run_id"]}
        _say(f"predictions ({scored['rows']} rows, model of run {scored['model_run_id']}): "
             f"{scored['outputs']['predictions']}")
    return out
