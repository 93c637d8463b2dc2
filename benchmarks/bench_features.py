"""Benchmark of the feature build against a per-row Python reference and pyarrow's bare read.

    PYTHONPATH=. .venv/bin/python benchmarks/bench_features.py --rows 1000000 --data-dir /tmp/bench-data-1000000

1. Generates (once, cached under ``--data-dir``, default ``.bench/data-<rows>``) a synthetic
   Smadex-shaped data set with ``ltv_core.synthetic.generate_dataset`` in a child process (so the
   generator's memory is not counted here).
2. The state is fitted once, in this process, on the first ``--fit-partitions`` partitions.
3. A Dask LocalCluster is started the way the product's build_features stage (``ltv_core.stages.build_features``) runs it
   (``--workers`` worker PROCESSES, default one per core, ``threads_per_worker=1``); the state is
   scattered to every worker once (``broadcast=True``) and each worker runs one small warm-up task
   (imports, state deserialisation). None of this is timed.
4. Timed, back to back, ``--rounds`` times (best of each kept):
   (c) bare read: ``pq.read_table`` of every partition file in this process (warm page cache; Arrow
   uses every core);
   (a) features as the product runs them: one Dask task per partition file, each task = read the
   file + add its event time + ``FeatureBuilder.from_state(...).transform`` (no write). Wall clock
   from the first submit to the last result. This is ``feature_rows_per_s``.
   Then one more parallel pass where each task also writes its feature file
   (``feature_with_write_rows_per_s``; skip with ``--no-write``).
5. (a') the same transform in ONE process (``--threads`` threads, streaming one partition at a time;
   the write of each feature file timed apart): ``feature_rows_per_s_single_process``.
6. (b) per-row reference: the same transforms written the naive way, parsing nested fields per row
   (``for row in table.to_pylist()``, iterating each map's (key, value) tuples), on a subset of
   ``--ref-rows`` rows, in a child process; its rows/s is extrapolated from the subset.

Peak RSS is sampled every 20 ms in a thread per phase: this process plus all its descendants
(Dask nannies and worker processes included). ``peak_rss_mb`` is the peak of the parallel feature
phase (``peak_rss_phase``); ``peak_rss_mb_worker_max`` is the largest single child process seen
there. The last line printed is one JSON object with the results.
"""

from __future__ import annotations

import argparse
import bisect
import glob
import json
import math
import multiprocessing as mp
import os
import sys
import tempfile
import time
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from ltv_core.cluster import TRIM_KEY  # noqa: E402
from ltv_core.config import DaskConfig  # noqa: E402
from ltv_core.features import FeatureBuilder, FeatureFitter, FeatureState, load_features_config  # noqa: E402
from ltv_core.ingest import EVENT_TS  # noqa: E402
from ltv_core.spec import DatasetSpec, FeatureKind, load_spec  # noqa: E402

from harness import RssSampler  # noqa: E402  (benchmarks/harness.py)

SPEC_PATH = "config/datasets/smadex_d7.yaml"
ROWS_PER_PARTITION = 50_000


# --- memory sampling ---------------------------------------------------------------------------------
@contextmanager
def phase(name: str, peaks: dict[str, float], child_peaks: dict[str, float] | None = None):
    """Sample RSS during the block; a phase entered several times keeps its maximum."""
    with RssSampler() as s:
        yield
    peaks[name] = max(peaks.get(name, 0.0), round(s.peak / 2**20, 1))
    if child_peaks is not None:
        child_peaks[name] = max(child_peaks.get(name, 0.0), round(s.child_peak / 2**20, 1))


# --- data ----------------------------------------------------------------------------------------------
def _generate(out: str, rows: int) -> None:
    from datetime import timedelta

    from ltv_core.synthetic import KNOB_DEFAULTS, generate_dataset, partition_rows
    from ltv_core.synthetic.writer import parse_start

    start, hours, total = parse_start("2025-10-01"), 0, 0
    while total < rows:  # partitions vary +-30% with the hour: add hours until there are >= rows
        total += partition_rows(ROWS_PER_PARTITION, start + timedelta(hours=hours), KNOB_DEFAULTS["diurnal_amplitude"])
        hours += 1
    generate_dataset(out, seed=7, rows_per_partition=ROWS_PER_PARTITION, train_hours=hours, test_hours=0,
                     log=lambda m: print(m, file=sys.stderr, flush=True))


def ensure_data(data_dir: Path, rows: int) -> list[Path]:
    marker = data_dir / ".complete"
    if not marker.exists():
        print(f"generating ~{rows} rows under {data_dir} ...", file=sys.stderr, flush=True)
        p = mp.get_context("spawn").Process(target=_generate, args=(str(data_dir), rows))
        p.start()
        p.join()
        if p.exitcode != 0:
            raise SystemExit(f"data generation failed with exit code {p.exitcode}")
        marker.write_text("ok\n")
    files = sorted(Path(f) for f in glob.glob(str(data_dir / "train/train/datetime=*/*.parquet")))
    if not files:
        raise SystemExit(f"no partition files under {data_dir}")
    return files


def partition_value(path: Path) -> str:
    return path.parent.name.split("=", 1)[1]


def staged(table: pa.Table, spec: DatasetSpec, value: str) -> pa.Table:
    """What ingest adds to a partition: its value and its event time (Unix seconds)."""
    ts = int(spec.partition.parse(value).timestamp())
    table = table.append_column(spec.partition.key, pa.repeat(pa.scalar(value), table.num_rows))
    return table.append_column(EVENT_TS, pa.repeat(pa.scalar(ts, pa.int64()), table.num_rows))


# --- (c) bare read ---------------------------------------------------------------------------------------
def bare_read(files: list[Path]) -> tuple[int, float]:
    t0, rows = time.perf_counter(), 0
    for f in files:
        rows += pq.read_table(f).num_rows
    return rows, time.perf_counter() - t0


# --- (a) vectorised features -------------------------------------------------------------------------------
def fit_state(files: list[Path], spec: DatasetSpec, n: int, threads: int = 1
              ) -> tuple[FeatureBuilder, FeatureState, float]:
    fitter = FeatureFitter(spec, load_features_config(ROOT / "config/features.yaml"), threads=threads)
    t0 = time.perf_counter()
    parts = [(partition_value(f), staged(pq.read_table(f), spec, partition_value(f))) for f in files[:n]]
    state = fitter.fit(parts)
    return fitter.builder, state, time.perf_counter() - t0


def transform_all(files: list[Path], spec: DatasetSpec, builder: FeatureBuilder, state: FeatureState,
                  out_dir: str) -> dict[str, float]:
    """Read + transform every partition, one at a time; the parquet write is timed apart."""
    rows, t_feat, t_write = 0, 0.0, 0.0
    for i, f in enumerate(files):
        t0 = time.perf_counter()
        table = staged(pq.read_table(f), spec, partition_value(f))
        out = builder.transform(table, state)
        t1 = time.perf_counter()
        pq.write_table(out, f"{out_dir}/part-{i}.parquet", compression="snappy")
        t_write += time.perf_counter() - t1
        t_feat += t1 - t0
        rows += out.num_rows
        del table, out
    return {"rows": rows, "seconds": t_feat, "write_seconds": t_write, "n_features": len(state.feature_names)}


# --- (a) features as the product runs them: one Dask task per partition, one worker process per core ------
def _task_transform(path: str, value: str, spec: DatasetSpec, state: FeatureState, out_path: str | None
                    ) -> dict[str, Any]:
    """Worker task (mirrors ``stage.transform_file``): read one partition file, add its event time,
    transform it with the broadcast state and, if ``out_path``, write the feature file."""
    t0 = time.perf_counter()
    builder = FeatureBuilder.from_state(spec, state)  # as in the stage: built per task, threads=1
    table = staged(pq.read_table(path), spec, value)
    out = builder.transform(table, state)
    t1 = time.perf_counter()
    if out_path is not None:
        pq.write_table(out, out_path, compression="snappy")
    return {"rows": out.num_rows, "seconds": t1 - t0, "write_seconds": time.perf_counter() - t1,
            "worker": os.getpid()}


def _task_warm_up(path: str, value: str, spec: DatasetSpec, state: FeatureState) -> int:
    """Imports and state deserialisation on a worker, on the first 1,000 rows of one file."""
    table = staged(pq.read_table(path).slice(0, 1000), spec, value)
    return FeatureBuilder.from_state(spec, state).transform(table, state).num_rows


def start_cluster(workers: int, spec: DatasetSpec, state: FeatureState, files: list[Path],
                  malloc_trim_threshold: int | None) -> tuple[Any, Any, Any]:
    """LocalCluster as ``ltv_core.cluster.dask_client`` builds it, the state broadcast once, every
    worker warmed up; returns (cluster, client, state future). Not timed.

    ``malloc_trim_threshold`` is what the nannies put in the workers' ``MALLOC_TRIM_THRESHOLD_``
    (the product's ``dask.malloc_trim_threshold``: null, i.e. glibc's own; Dask's default is 65536)."""
    import dask
    from distributed import Client, LocalCluster, wait

    dask.config.set({TRIM_KEY: malloc_trim_threshold})
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)
    cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, memory_limit="auto",
                           dashboard_address=None)
    client = Client(cluster)
    client.wait_for_workers(workers)
    state_future = client.scatter(state, broadcast=True)
    addresses = list(client.scheduler_info()["workers"])
    warm = [client.submit(_task_warm_up, str(files[0]), partition_value(files[0]), spec, state_future,
                          workers=[a], allow_other_workers=False, pure=False) for a in addresses]
    wait(warm)
    for w in warm:
        w.result()
    return cluster, client, state_future


def transform_parallel(client: Any, files: list[Path], spec: DatasetSpec, state_future: Any, out_dir: str | None
                       ) -> dict[str, Any]:
    """All partitions, one task each, on the cluster; wall clock from first submit to last result."""
    from distributed import as_completed

    t0 = time.perf_counter()
    futures = [client.submit(_task_transform, str(f), partition_value(f), spec, state_future,
                             None if out_dir is None else f"{out_dir}/part-{i}.parquet", pure=False)
               for i, f in enumerate(files)]
    results = [fut.result() for fut in as_completed(futures)]
    wall = time.perf_counter() - t0
    return {"rows": sum(r["rows"] for r in results), "seconds": wall,
            "task_seconds": sum(r["seconds"] for r in results),
            "task_write_seconds": sum(r["write_seconds"] for r in results),
            "workers_used": len({r["worker"] for r in results})}


# --- (b) per-row Python reference (benchmark only) ---------------------------------------------------------
def _map_stats(pairs: list | None, stats: list[str]) -> list[float]:
    nan = math.nan
    if pairs is None:
        return [nan] * len(stats)
    vals = [v for _, v in pairs if v is not None and math.isfinite(v)]
    pos = sorted((v for v in vals if v > 0), reverse=True)
    mass = sum(pos)
    out = []
    for s in stats:
        if s == "count":
            out.append(float(len(pairs)))
        elif s == "sum":
            out.append(float(sum(vals)))
        elif s == "mean":
            out.append(sum(vals) / len(vals) if vals else nan)
        elif s == "max":
            out.append(max(vals) if vals else nan)
        elif s == "entropy":
            out.append(-sum(v / mass * math.log(v / mass) for v in pos) if mass > 0 else nan)
        else:
            k = int(s[3:-6])
            out.append(sum(pos[:k]) / mass if mass > 0 else nan)
    return out


def _ok_ts(ts: float | None, ev: float, tol: float) -> bool:
    return ts is not None and math.isfinite(ts) and 0 < ts <= ev + tol


def _age(ts: float | None, ev: float) -> float:
    return (ev - ts) / 86400.0 if ts is not None else math.nan


def per_row_features(row: dict, spec: DatasetSpec, state: FeatureState, cfg: Any, ev: float) -> list[float]:
    """The builder's transforms, one row at a time in plain Python (for the speed comparison only)."""
    nan, tol, out = math.nan, cfg.base.future_tolerance_days * 86400.0, []
    vocab_index = _VOCAB_CACHE.setdefault(id(state), {c: {v: i for i, v in enumerate(vs)}
                                                      for c, vs in state.vocabularies.items()})
    for col in spec.feature_columns:
        if col.name in cfg.exclude_columns:
            continue
        v, k = row.get(col.name), col.kind
        if k is FeatureKind.categorical:
            idx = vocab_index.get(col.name, {})
            out.append(-1 if v is None else idx.get(str(v), len(idx)))
        elif k in (FeatureKind.numeric, FeatureKind.timestamp):
            x = float(v) if v is not None and math.isfinite(v) else nan
            if k is FeatureKind.timestamp:
                x = _age(x, ev) if _ok_ts(x, ev, tol) else nan
            out.append(x)
            if col.name in state.missing_indicators:
                out.append(1.0 if math.isnan(x) else 0.0)
        elif k in (FeatureKind.map_numeric, FeatureKind.histogram):
            stats = cfg.base.map_numeric_stats if k is FeatureKind.map_numeric else cfg.base.histogram_stats
            out += _map_stats(v, stats)
        elif k is FeatureKind.map_timestamp:
            ts = [t for _, t in v if _ok_ts(t, ev, tol)] if v is not None else []
            out += [float(len(v)) if v is not None else nan, _age(max(ts), ev) if ts else nan,
                    _age(min(ts), ev) if ts else nan]
        elif k is FeatureKind.list_string:
            out += [nan, nan] if v is None else [float(len(v)), float(len({s for s in v if s is not None}))]
        else:  # map of maps
            keys = state.inner_keys.get(col.name, [])
            if v is None:
                out += [nan] * (2 + len(keys))
                continue
            inner = [(ik, iv) for _, m in v if m for ik, iv in m if iv is not None]
            if k is FeatureKind.map_of_maps:
                out += [float(len(v)), float(sum(iv for _, iv in inner))]
                out += [float(sum(iv for ik, iv in inner if ik == key)) for key in keys]
            else:
                ok = [(ik, iv) for ik, iv in inner if _ok_ts(iv, ev, tol)]
                out += [float(len(v)), _age(max((iv for _, iv in ok), default=None), ev)]
                out += [_age(max((iv for ik, iv in ok if ik == key), default=None), ev) for key in keys]
    hour, wd = (int(ev) // 3600) % 24, (int(ev) // 86400 + 3) % 7
    out += [math.sin(2 * math.pi * hour / 24), math.cos(2 * math.pi * hour / 24),
            math.sin(2 * math.pi * wd / 7), math.cos(2 * math.pi * wd / 7)]
    for lk in cfg.key_lookups.lookups:
        pairs, key = row.get(lk.map), row.get(lk.key_column)
        hit = next((val for k2, val in pairs if k2 == key), None) if pairs is not None else None
        out += [nan if pairs is None else (hit if hit is not None else (0.0 if lk.absent == "zero" else nan)),
                nan if pairs is None else float(hit is not None)]
    for name, g in state.geo.items():
        col, _, stat = g.value.partition("__")
        x = row.get(col) if not stat else _map_stats(row.get(col), [stat])[0]
        x = None if x is None or math.isnan(x) else x
        j = g.groups.index(row[g.group]) if row.get(g.group) in g.groups else -1
        xs, cdf = (g.x[j], g.cdf[j]) if j >= 0 else (g.global_x, g.global_cdf)
        if x is None or not xs:
            out.append(nan)
        else:
            i = bisect.bisect_left(xs, x)
            out.append(0.0 if i == 0 else 1.0 if i >= len(xs) else
                       cdf[i - 1] + (cdf[i] - cdf[i - 1]) * (x - xs[i - 1]) / (xs[i] - xs[i - 1]))
    te = _TE_CACHE.setdefault(id(state), {
        (c, t): dict(zip(state.target_encoding[c].categories, state.te_encodings(c, t, None, cfg.target_encoding.smoothing)[0]))
        for c in state.target_encoding for t in state.te_targets})
    for (c, t), table in te.items():
        out.append(table.get(row.get(c), nan))
    return out


_VOCAB_CACHE: dict[int, dict] = {}
_TE_CACHE: dict[int, dict] = {}


def _per_row_child(files: list[str], ref_rows: int, state_json: str, queue: Any) -> None:
    spec = load_spec(ROOT / SPEC_PATH)
    state = FeatureState.from_json(state_json)
    cfg = load_features_config(ROOT / "config/features.yaml")
    t0, done = time.perf_counter(), 0
    for f in files:
        value = Path(f).parent.name.split("=", 1)[1]
        ev = float(spec.partition.parse(value).timestamp())
        table = pq.read_table(f).slice(0, ref_rows - done)
        for row in table.to_pylist():  # the naive way: Python dicts, maps as lists of (key, value)
            per_row_features(row, spec, state, cfg, ev)
        done += table.num_rows
        if done >= ref_rows:
            break
    queue.put((done, time.perf_counter() - t0))


def per_row_reference(files: list[Path], ref_rows: int, state: FeatureState) -> tuple[int, float]:
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    p = ctx.Process(target=_per_row_child, args=([str(f) for f in files], ref_rows, state.to_json(), q))
    p.start()
    while True:
        try:
            rows, seconds = q.get(timeout=1.0)
            break
        except Exception:  # queue.Empty: fail instead of waiting forever on a dead child
            if not p.is_alive():
                raise SystemExit(f"per-row reference process died (exit code {p.exitcode})") from None
    p.join()
    return rows, seconds


# --- main ------------------------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--data-dir", default=None, help="default: .bench/data-<rows>")
    ap.add_argument("--ref-rows", type=int, default=50_000, help="rows for the per-row reference")
    ap.add_argument("--fit-partitions", type=int, default=4)
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1,
                    help="Dask worker processes (threads_per_worker=1), as the product runs the stage")
    ap.add_argument("--rounds", type=int, default=2,
                    help="back-to-back (bare read, parallel build) rounds; the best of each is kept")
    ap.add_argument("--no-write", action="store_true", help="skip the parallel pass that also writes")
    ap.add_argument("--malloc-trim-threshold", type=int, default=DaskConfig().malloc_trim_threshold,
                    help="workers' MALLOC_TRIM_THRESHOLD_; default: the product's (config dask.malloc_trim_threshold,"
                         " unset); 65536 is Dask's own default, for comparison")
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1,
                    help="threads of the single-process transform")
    args = ap.parse_args(argv)
    data_dir = Path(args.data_dir or ROOT / f".bench/data-{args.rows}")
    files = ensure_data(data_dir, args.rows)
    spec = load_spec(ROOT / SPEC_PATH)
    peaks: dict[str, float] = {}
    child_peaks: dict[str, float] = {}
    load = {"start": round(os.getloadavg()[0], 2)}
    with phase("fit", peaks):
        builder, state, fit_s = fit_state(files, spec, args.fit_partitions, args.threads)
    bare_read(files)  # warm the page cache so every timed pass reads from memory
    cluster, client, state_future = start_cluster(args.workers, spec, state, files, args.malloc_trim_threshold)  # not timed
    try:
        trim = sorted({str(v) for v in client.run(lambda: os.environ.get("MALLOC_TRIM_THRESHOLD_")).values()})
        load["before_timed"] = round(os.getloadavg()[0], 2)
        bare_runs, par_runs = [], []
        for _ in range(args.rounds):  # back to back, under the same load
            with phase("bare_read", peaks, child_peaks):
                bare_runs.append(bare_read(files))
            with phase("features_parallel", peaks, child_peaks):
                par_runs.append(transform_parallel(client, files, spec, state_future, None))
        par_write = None
        if not args.no_write:
            with phase("features_parallel_with_write", peaks, child_peaks), \
                    tempfile.TemporaryDirectory(prefix="bench-features-") as out_dir:
                par_write = transform_parallel(client, files, spec, state_future, out_dir)
        load["after_parallel"] = round(os.getloadavg()[0], 2)
    finally:
        client.close()
        cluster.close()
    rows, bare_s = bare_runs[0][0], min(s for _, s in bare_runs)
    par = min(par_runs, key=lambda r: r["seconds"])
    if par["rows"] != rows:
        raise SystemExit(f"parallel build produced {par['rows']} rows, the bare read {rows}")
    with phase("features_single_process", peaks), tempfile.TemporaryDirectory(prefix="bench-features-") as out_dir:
        feat = transform_all(files, spec, builder, state, out_dir)
    with phase("per_row_reference", peaks):
        ref_rows, ref_s = per_row_reference(files, args.ref_rows, state)
    load["end"] = round(os.getloadavg()[0], 2)
    feature_rps = par["rows"] / par["seconds"]
    single_rps = feat["rows"] / feat["seconds"]
    bare_rps = rows / bare_s
    ref_rps = ref_rows / ref_s
    result = {
        "rows": rows,
        "partitions": len(files),
        "n_features": feat["n_features"],
        "workers": args.workers,
        "workers_used": par["workers_used"],
        "threads_per_worker": 1,
        "worker_malloc_trim_threshold": trim,
        "feature_rows_per_s": round(feature_rps),
        "feature_with_write_rows_per_s": None if par_write is None else round(par_write["rows"] / par_write["seconds"]),
        "feature_rows_per_s_single_process": round(single_rps),
        "feature_with_write_rows_per_s_single_process": round(feat["rows"] / (feat["seconds"] + feat["write_seconds"])),
        "threads_single_process": args.threads,
        "per_row_ref_rows_per_s": round(ref_rps),
        "per_row_ref_rows": ref_rows,
        "bare_read_rows_per_s": round(bare_rps),
        "speedup_vs_per_row": round(feature_rps / ref_rps, 1),
        "slowdown_vs_bare_read": round(bare_rps / feature_rps, 2),
        "slowdown_vs_bare_read_single_process": round(bare_rps / single_rps, 2),
        "seconds": {"bare_read": [round(s, 3) for _, s in bare_runs],
                    "features_parallel": [round(r["seconds"], 3) for r in par_runs],
                    "features_parallel_task_sum": round(par["task_seconds"], 3),
                    "features_parallel_with_write": None if par_write is None else round(par_write["seconds"], 3),
                    "features_single_process": round(feat["seconds"], 3),
                    "write_single_process": round(feat["write_seconds"], 3)},
        "fit_seconds": round(fit_s, 2),
        "fit_rows": sum(pq.ParquetFile(f).metadata.num_rows for f in files[: args.fit_partitions]),
        "peak_rss_mb": peaks["features_parallel"],
        "peak_rss_phase": "features_parallel (this process + Dask nannies + worker processes)",
        "peak_rss_mb_worker_max": child_peaks["features_parallel"],
        "peak_rss_mb_by_phase": peaks,
        "cpu_count": os.cpu_count(),
        "load_avg_1m": load,
        "when": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    print(json.dumps(result), flush=True)
    return result


if __name__ == "__main__":
    main()
