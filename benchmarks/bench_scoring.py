"""Benchmark of the score stage: throughput and peak memory vs bare LightGBM predict.

    PYTHONPATH=. .venv/bin/python benchmarks/bench_scoring.py --rows 10000000

1. Trains once (cached under ``--cache-dir``, default ``.bench/scoring``, keyed by the training
   arguments and the contents of config/models.yaml, features.yaml and pipeline.yaml) a stack on a
   small synthetic set: ``generate_dataset`` then the stages ingest, validate, build_features and
   the training stages (``ltv_core.stages.run_stages``) with explicit windows (logical date
   2025-10-31, data from 2025-10-01).
2. Generates (once, cached, keyed by ``--rows``) about ``--rows`` unlabelled test rows in hourly
   partitions of ``--rows-per-partition`` rows (two generator processes), and stages them with
   the real ingest stage of a second run whose explicit scoring window covers them all.
3. Scores: ``ltv_core.stages.score.score_partitions(store, <scoring run>, spec, model_run_id=<trained
   run>, dask=..., local_cluster_min_rows=...)`` with the pipeline config's settings, in a fresh
   spawned process that does nothing else. From 5M staged rows (config default) the stage starts
   its LocalCluster (one single-threaded worker process per core by default), scores each
   partition as one task and closes the cluster, all inside the timed call; below, it scores the
   partitions in its own process.
   Every row is read, transformed with the run's feature state, predicted by every model of the
   stack and written. Peak RSS is sampled every 100 ms over the process and its workers together;
   CPU seconds are those of the process and its workers. The tasks report the wall seconds of
   their steps (read / features / predict / write, summed over tasks) and each worker's peak RSS
   after the first and the last tenth of the tasks (flat = memory does not grow with partitions).
4. Bare predict (after the stage, so under whatever load then runs; ``slowdown_vs_lgbm_in_stage``
   is the load-independent ratio: stage time over the time spent inside LightGBM during the stage):
   the feature matrices of the first partitions (``--bare-rows`` rows, built once
   with ``Scorer.features``, per partition like the stage) are predicted with
   ``FittedStack.predict`` while ``lightgbm.Booster.predict`` is recorded. ``bare_predict`` replays
   exactly those booster calls, each as a plain ``Booster.predict`` on the whole dense float32
   matrix: the LightGBM predict a user would call on the same feature matrix. (The stack hands a
   booster that splits on few columns only their values, ``DenseMatrix.restricted``; the time of
   the stack's own calls is ``stack_lgbm_rows_per_s``.) The same calls are replayed on a
   float64 matrix built independently from the category frame (``bare_predict_numpy``; its
   ``numpy_max_abs_diff`` against the stack's calls, dense or restricted, must be 0). Best of two passes.

Progress goes to stderr; the last line printed is one JSON object.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import multiprocessing as mp
import os
import resource
import shutil
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from harness import RssSampler  # noqa: E402  (benchmarks/harness.py)

SPEC_PATH = "config/datasets/smadex_d7.yaml"
LOGICAL_DATE = "2025-10-31T00:00:00+00:00"
DATA_START = "2025-10-01"
SCORE_START = datetime(2025, 10, 8, tzinfo=timezone.utc)  # after the training data, as in the real set
TRAIN_RUN = "bench_train"


def log(msg: str) -> None:
    print(f"[bench_scoring {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# --- memory sampling ---------------------------------------------------------------------------------
def _mb(n: float) -> float:
    return round(n / 2**20, 1)


# --- 1. the trained model ------------------------------------------------------------------------------
def train_windows(train_hours: int) -> dict[str, str]:
    """Explicit labelled windows over ``train_hours`` of data: 1/2 training, 1/4 validation, 1/4 holdout."""
    start = datetime.fromisoformat(f"{DATA_START}T00:00")
    a, b = train_hours // 2, train_hours * 3 // 4
    at = lambda h: (start + timedelta(hours=h)).strftime("%Y-%m-%dT%H:%M")  # noqa: E731
    return {"train_start": at(0), "train_end": at(a), "validation_start": at(a), "validation_end": at(b),
            "holdout_start": at(b), "holdout_end": at(train_hours)}


def quick_configs(cache: Path) -> dict[str, str]:
    """--quick (smoke test only): Dask threads instead of worker processes for the setup stages and
    a 20-round models config, so that a tiny run finishes in about a minute."""
    import yaml

    pipe = yaml.safe_load((ROOT / "config/pipeline.yaml").read_text())
    pipe["dask"].update({"processes": False, "n_workers": 1, "threads_per_worker": 2})
    models = yaml.safe_load((ROOT / "config/models.yaml").read_text())
    models.update({"num_boost_round": 20, "early_stopping_rounds": 5})
    models["baselines"]["names"] = ["zero", "lgbm_log1p"]
    (cache / "quick-pipeline.yaml").write_text(yaml.safe_dump(pipe))
    (cache / "quick-models.yaml").write_text(yaml.safe_dump(models))
    return {"config": str(cache / "quick-pipeline.yaml"), "models_config": str(cache / "quick-models.yaml")}


def ensure_model(cache: Path, seed: int, rpp: int, hours: int, extra: dict[str, str]
                 ) -> tuple[Path, Path, dict[str, str]]:
    """(train data root, store root, windows) of the trained run, trained once per argument set.
    Stages: ingest, validate, build_features and the training stages (evaluate and promote decide
    nothing the score stage uses: it is given the trained run's id)."""
    from ltv_core.context import make_context
    from ltv_core.pipeline import TRAINING_STAGES, Stage
    from ltv_core.inprocess import run_stages
    from ltv_core.store import ArtifactStore

    base = cache / f"train-s{seed}-r{rpp}-h{hours}{'-quick' if extra else ''}"
    data, store_root = base / "data", base / "store"
    windows = train_windows(hours)
    marker = base / "trained.json"
    # the model must be the one the current configs produce: retrain when any of them changed
    fingerprint = hashlib.sha256(json.dumps(
        [(ROOT / c).read_text() for c in ("config/models.yaml", "config/features.yaml", "config/pipeline.yaml")]
        + sorted(extra.items())).encode()).hexdigest()[:16]
    if marker.exists() and json.loads(marker.read_text()).get("configs") == fingerprint:
        return data, store_root, windows
    if base.exists():
        shutil.rmtree(base)
    from ltv_core.synthetic import generate_dataset

    t0 = time.perf_counter()
    log(f"generating the training set: {hours} h x ~{rpp} rows under {data}")
    generate_dataset(data, seed=seed, rows_per_partition=rpp, start=DATA_START, train_hours=hours, test_hours=2)
    log(f"training run {TRAIN_RUN} (ingest, build_features, training stages) in store {store_root}")
    params = {"data_root": str(data), "store_root": str(store_root), **windows, **extra}
    run_stages(make_context(TRAIN_RUN, LOGICAL_DATE, params),
               (Stage.INGEST, Stage.VALIDATE, Stage.BUILD_FEATURES, *TRAINING_STAGES))
    m = ArtifactStore(str(store_root)).read_manifest(TRAIN_RUN, "ingest")
    info = {"seconds": round(time.perf_counter() - t0, 1), "rows": {s: o["rows"] for s, o in m["outputs"].items()},
            "configs": fingerprint}
    marker.write_text(json.dumps(info))
    log(f"trained in {info['seconds']}s: {info['rows']}")
    return data, store_root, windows


# --- 2. the rows to score ----------------------------------------------------------------------------------
def score_hours(rows: int, rpp: int) -> int:
    """Hourly partitions needed for >= rows (partitions vary +-30% with the hour of day)."""
    from ltv_core.synthetic import KNOB_DEFAULTS, partition_rows

    hours, total = 0, 0
    while total < rows:
        total += partition_rows(rpp, SCORE_START + timedelta(hours=hours), KNOB_DEFAULTS["diurnal_amplitude"])
        hours += 1
    return hours


def _generate_test(out: str, seed: int, rpp: int, start: str, hours: int) -> None:
    from ltv_core.synthetic import generate_dataset

    generate_dataset(out, seed=seed, rows_per_partition=rpp, start=start, train_hours=0, test_hours=hours)


def ensure_score_data(cache: Path, train_data: Path, seed: int, rows: int, rpp: int, procs: int) -> tuple[Path, int]:
    """A data root whose test root holds the rows to score (its train root is the training set's)."""
    hours = score_hours(rows, rpp)
    base = cache / f"score-s{seed}-n{rows}-r{rpp}"
    data = base / "data"
    marker = base / "generated.json"
    if marker.exists():
        return data, hours
    if base.exists():
        shutil.rmtree(base)
    (data / "test/test").mkdir(parents=True)
    (data / "train").mkdir()
    os.symlink((train_data / "train/train").resolve(), data / "train/train")
    t0 = time.perf_counter()
    log(f"generating {hours} test partitions of ~{rpp} rows (>= {rows} rows) in {procs} processes")
    ctx = mp.get_context("spawn")
    jobs, per = [], math.ceil(hours / procs)
    for i in range(procs):
        first, n = i * per, min(per, hours - i * per)
        if n <= 0:
            continue
        start = (SCORE_START + timedelta(hours=first)).strftime("%Y-%m-%dT%H")
        p = ctx.Process(target=_generate_test, args=(str(base / f"gen-{i}"), seed, rpp, start, n))
        p.start()
        jobs.append((p, base / f"gen-{i}"))
    for p, _ in jobs:
        p.join()
        if p.exitcode != 0:
            raise SystemExit(f"test data generation failed with exit code {p.exitcode}")
    for _, gen in jobs:  # one test root: move the partition folders together
        for part in (gen / "test/test").iterdir():
            part.rename(data / "test/test" / part.name)
        shutil.rmtree(gen)
    seconds = round(time.perf_counter() - t0, 1)
    marker.write_text(json.dumps({"hours": hours, "rows_per_partition": rpp, "seconds": seconds}))
    log(f"generated in {seconds}s")
    return data, hours


def ensure_staged(store_root: Path, data: Path, windows: dict[str, str], run_id: str, hours: int,
                  extra: dict[str, str]) -> dict[str, Any]:
    """The scoring run's ingest (the real stage, on Dask): stages every test partition."""
    from ltv_core.context import make_context
    from ltv_core.stages import ingest
    from ltv_core.store import ArtifactStore

    store = ArtifactStore(str(store_root))
    end = SCORE_START + timedelta(hours=hours)
    if store.is_committed(run_id, "ingest"):
        m = store.read_manifest(run_id, "ingest")
        if m["outputs"].get("scoring", {}).get("window", [None, None])[1] == end.isoformat():
            return {"seconds": None, "rows": m["outputs"]["scoring"]["rows"]}
    t0 = time.perf_counter()
    log(f"ingest of run {run_id}: scoring window {SCORE_START.isoformat()} .. {end.isoformat()}")
    params = {"data_root": str(data), "store_root": str(store_root), **windows, **extra,
              "scoring_start": SCORE_START.strftime("%Y-%m-%dT%H:%M"), "scoring_end": end.strftime("%Y-%m-%dT%H:%M")}
    out = ingest.run(make_context(run_id, LOGICAL_DATE, params))
    seconds = round(time.perf_counter() - t0, 1)
    log(f"staged in {seconds}s: {out['rows']}")
    return {"seconds": seconds, "rows": out["rows"]["scoring"]}


# --- 3. the score stage, in a process of its own ------------------------------------------------------------
def _score_child(store_root: str, run_id: str, model_run_id: str, out_json: str, config: str | None) -> None:
    from ltv_core.config import load_config
    from ltv_core.stages.score import score_partitions
    from ltv_core.spec import load_spec
    from ltv_core.store import ArtifactStore

    spec = load_spec(ROOT / SPEC_PATH)
    store = ArtifactStore(store_root)
    cfg = load_config(config or ROOT / "config/pipeline.yaml")
    dask = cfg.dask
    proc = psutil.Process()
    rss_start = proc.memory_info().rss
    with RssSampler(interval=0.1, relist_every=10) as sampler:
        t0 = time.perf_counter()
        out = score_partitions(store, run_id, spec, model_run_id, dask=dask,
                               local_cluster_min_rows=cfg.scoring.local_cluster_min_rows)
        seconds = time.perf_counter() - t0
        # the workers' last CPU reading is from the sampler's last tick before the cluster closed
        # (at most 100 ms of their CPU missing)
    Path(out_json).write_text(json.dumps({
        "result": out, "seconds": seconds, "rss_start": rss_start, "peak_sampled": sampler.peak,
        "ru_maxrss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
        "cpu_seconds": sum(sampler.cpu.values()) - sampler.cpu_at_start,
        "dask": dask.model_dump(mode="json")}))


def run_scoring(store_root: Path, run_id: str, work: Path, config: str | None) -> dict[str, Any]:
    out_json = work / "score-child.json"
    out_json.unlink(missing_ok=True)
    ctx = mp.get_context("spawn")
    p = ctx.Process(target=_score_child, args=(str(store_root), run_id, TRAIN_RUN, str(out_json), config))
    p.start()
    p.join()
    if p.exitcode != 0 or not out_json.exists():
        raise SystemExit(f"scoring process failed with exit code {p.exitcode}")
    return json.loads(out_json.read_text())


# --- 4. bare LightGBM predict on the same feature matrices -------------------------------------------------
def to_numpy(X: Any) -> Any:
    """The float64 matrix LightGBM builds from the frame: category codes, -1 -> NaN."""
    import numpy as np
    import pandas as pd

    cols = []
    for c in X.columns:
        s = X[c]
        if isinstance(s.dtype, pd.CategoricalDtype):
            codes = s.cat.codes.to_numpy().astype(np.float64)
            codes[codes < 0] = np.nan
            cols.append(codes)
        else:
            cols.append(s.to_numpy(dtype=np.float64, na_value=np.nan))
    return np.column_stack(cols)


def bare_predict(store_root: Path, run_id: str, bare_rows: int) -> dict[str, Any]:
    import lightgbm as lgb
    import numpy as np

    from ltv_core.catalog import staged_partitions
    from ltv_core.scoring import Scorer
    from ltv_core.spec import load_spec
    from ltv_core.store import ArtifactStore

    store = ArtifactStore(str(store_root))
    scorer = Scorer.load(store, TRAIN_RUN, load_spec(ROOT / SPEC_PATH))
    frames = []
    for f in staged_partitions(store, run_id, "scoring"):
        frames.append(scorer.features(store.read_parquet(f["path"])))
        if sum(len(x) for x in frames) >= bare_rows:
            break
    rows = sum(len(x) for x in frames)
    log(f"bare predict on {rows} rows ({len(frames)} partitions, {frames[0].values.shape[1]} features)")

    calls: list[tuple[Any, Any, float]] = []
    orig = lgb.Booster.predict

    cpu = [0.0]

    def recording(self: Any, data: Any, *a: Any, **kw: Any) -> Any:
        t0, c0 = time.perf_counter(), time.process_time()
        out = orig(self, data, *a, **kw)
        calls.append((self, data, time.perf_counter() - t0))
        cpu[0] += time.process_time() - c0
        return out

    lgb.Booster.predict = recording
    try:
        passes = []
        for _ in range(2):
            calls.clear()
            cpu[0] = 0.0
            t0 = time.perf_counter()
            for X in frames:
                scorer.stack.predict(X)
            passes.append((time.perf_counter() - t0, sum(c[2] for c in calls), list(calls), cpu[0]))
    finally:
        lgb.Booster.predict = orig
    stack_s, stack_lgbm_s, last_calls, stack_lgbm_cpu_s = min(passes, key=lambda p: p[1])
    # The bare predict: the same booster calls, each on the whole dense float matrix, as a plain
    # ``Booster.predict(matrix)`` would be made (the stack passes a booster that splits on few
    # columns only those columns' values, DenseMatrix.restricted: that is the stack's own speed-up
    # and does not count as "bare").
    dense_of = {id(X.values): X.values for X in frames}
    for X in frames:
        dense_of.update({id(R): X.values for R in X._restricted.values()})
    bare_times = []
    for _ in range(2):
        t, c = 0.0, 0.0
        for booster, data, _ in last_calls:
            arg = dense_of.get(id(data), data)
            t0, c0 = time.perf_counter(), time.process_time()
            orig(booster, arg)
            t += time.perf_counter() - t0
            c += time.process_time() - c0
        bare_times.append((t, c))
    lgbm_s, lgbm_cpu_s = min(bare_times)
    # Replay the same booster calls on a float64 matrix built independently from the category frame
    # (a cross-check of the stack's own matrices, dense or restricted: numpy_max_abs_diff must be 0).
    numpy_of = {}
    for X in frames:
        as_numpy = to_numpy(X.frame)
        numpy_of.update({i: as_numpy for i, v in dense_of.items() if v is X.values})
    np_times, max_diff = [], 0.0
    for _ in range(2):
        t = 0.0
        for booster, data, _ in last_calls:
            arg = numpy_of.get(id(data), data)
            t0 = time.perf_counter()
            p = orig(booster, arg)
            t += time.perf_counter() - t0
            if id(data) in dense_of:
                max_diff = max(max_diff, float(np.max(np.abs(p - orig(booster, data)))))
        np_times.append(t)
    boosters = {id(b): b for b, _, _ in last_calls}
    per_frame = len(last_calls) // len(frames)
    trees = sorted((b.num_trees() for b in boosters.values()), reverse=True)
    return {"rows": rows, "partitions": len(frames), "features": int(frames[0].values.shape[1]),
            "stack_s": stack_s, "stack_lgbm_s": stack_lgbm_s, "stack_lgbm_cpu_s": stack_lgbm_cpu_s,
            "restricted_calls_per_partition": sum(id(d) in dense_of and d is not dense_of[id(d)]
                                                  for _, d, _ in last_calls) // len(frames),
            "lgbm_s": lgbm_s, "lgbm_cpu_s": lgbm_cpu_s, "numpy_s": min(np_times),
            "numpy_max_abs_diff": max_diff,
            "booster_calls_per_partition": per_frame, "distinct_boosters": len(boosters), "trees": trees}


# --- main ------------------------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rows", type=int, default=1_000_000, help="rows to score (at least; whole partitions)")
    ap.add_argument("--rows-per-partition", type=int, default=None,
                    help="rows per hourly partition to score (default min(50000, rows/4))")
    ap.add_argument("--cache-dir", default=str(ROOT / ".bench/scoring"))
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--train-rows-per-partition", type=int, default=2500)
    ap.add_argument("--train-hours", type=int, default=48, help="hours of labelled data for the model")
    ap.add_argument("--bare-rows", type=int, default=200_000, help="rows of the bare-predict comparison")
    ap.add_argument("--gen-procs", type=int, default=2)
    ap.add_argument("--quick", action="store_true",
                    help="smoke test only: threaded Dask for the setup and a 20-round model (not for numbers)")
    args = ap.parse_args(argv)
    rpp = args.rows_per_partition or max(1, min(50_000, args.rows // 4))
    cache = Path(args.cache_dir).resolve()
    cache.mkdir(parents=True, exist_ok=True)
    t_all = time.perf_counter()

    extra = quick_configs(cache) if args.quick else {}
    train_data, store_root, windows = ensure_model(cache, args.seed, args.train_rows_per_partition, args.train_hours,
                                                   extra)
    data, hours = ensure_score_data(cache, train_data, args.seed, args.rows, rpp, args.gen_procs)
    run_id = f"bench_score_s{args.seed}_n{args.rows}_r{rpp}"
    staged = ensure_staged(store_root, data, windows, run_id, hours, extra)

    load0 = os.getloadavg()[0]
    log(f"scoring {staged['rows']} rows in {hours} partitions (fresh process) ...")
    sc = run_scoring(store_root, run_id, cache, extra.get("config"))
    load1 = os.getloadavg()[0]
    rows, seconds, tasks = sc["result"]["rows"], sc["seconds"], sc["result"]["task_seconds"]
    log(f"scored {rows} rows in {seconds:.1f}s on {sc['result']['workers']} workers; task seconds {tasks}")
    bare = bare_predict(store_root, run_id, args.bare_rows)

    rows_per_s = rows / seconds
    bare_rps = bare["rows"] / bare["lgbm_s"]
    task_total = sum(tasks.values())
    result = {
        "rows": rows,
        "partitions": sc["result"]["partitions"],
        "rows_per_partition": rpp,
        "seconds": round(seconds, 1),
        "rows_per_s": round(rows_per_s),
        "bare_predict_rows_per_s": round(bare_rps),
        "bare_predict_numpy_rows_per_s": round(bare["rows"] / bare["numpy_s"]),
        "stack_predict_rows_per_s": round(bare["rows"] / bare["stack_s"]),
        # the stack's own booster calls on the same rows (restricted matrices where they pay)
        "stack_lgbm_rows_per_s": round(bare["rows"] / bare["stack_lgbm_s"]),
        "slowdown_vs_bare_predict": round(bare_rps / rows_per_s, 2),
        "target_slowdown": 1.5,
        # the stage scores on its Dask cluster from config scoring.local_cluster_min_rows rows on
        # (default 5M), in its own process below that
        "on_cluster": sc["result"]["on_cluster"],
        "workers": sc["result"]["workers"],
        "dask": {k: sc["dask"][k] for k in ("n_workers", "threads_per_worker", "processes", "scheduler_address")},
        # CPU seconds of the scoring process and its workers (all threads): how busy the cores were
        "cpu_seconds": round(sc["cpu_seconds"], 1),
        "cores_busy": round(sc["cpu_seconds"] / seconds, 2),
        "task_cpu_seconds": sc["result"]["task_cpu_seconds"],
        "bare_predict_cores_busy": round(bare["lgbm_cpu_s"] / bare["lgbm_s"], 2),
        # the scoring process and its workers together (sampled every 100 ms), and the process alone
        "peak_rss_mb": _mb(max(sc["peak_sampled"], sc["ru_maxrss"])),
        "peak_rss_sampled_mb": _mb(sc["peak_sampled"]),
        "peak_rss_scoring_process_mb": _mb(sc["ru_maxrss"]),
        "rss_mb_start": _mb(sc["rss_start"]),
        # each worker's peak RSS after the first / last tenth of its tasks: flat = no growth
        "worker_peak_rss_mb": sc["result"]["worker_peak_rss_mb"],
        # wall seconds of each step summed over every task of every worker (with n workers in
        # parallel the sum is about n x the stage's time), and each step's share of it
        "task_seconds_breakdown": {k: round(v, 1) for k, v in tasks.items()},
        "task_share": {k: round(v / task_total, 3) for k, v in tasks.items()} if task_total else None,
        # wall seconds of the stage's phases: model load + plan, cluster start, wait for the first
        # result (the workers' first imports), the other results, cluster close
        "stage_phases": sc["result"]["phases"],
        "bare": {"rows": bare["rows"], "partitions": bare["partitions"], "features": bare["features"],
                 "booster_calls_per_partition": bare["booster_calls_per_partition"],
                 "restricted_calls_per_partition": bare["restricted_calls_per_partition"],
                 "distinct_boosters": bare["distinct_boosters"], "trees": bare["trees"],
                 "numpy_max_abs_diff": bare["numpy_max_abs_diff"]},
        "staging": staged,
        "quick": args.quick,
        "cpu_count": os.cpu_count(),
        "load_avg_1m": [round(load0, 2), round(load1, 2)],
        "total_seconds": round(time.perf_counter() - t_all, 1),
        "when": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    print(json.dumps(result), flush=True)
    return result


if __name__ == "__main__":
    main()
