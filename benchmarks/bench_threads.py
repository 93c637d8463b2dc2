"""A training stage's LightGBM fit, idle and beside one competing CPU-bound process, under the old
thread policy (``num_threads: 2`` fixed, OpenMP's default spin-waiting) and the new one
(``ltv_core.threads``: the stage's budget, ``OMP_WAIT_POLICY=PASSIVE``).

Scenarios (each fit runs in its own subprocess: OpenMP reads its environment when it loads):
- ``alone``: one fit, as the CLI or a lone task runs it;
- ``two_tasks``: two fits at once, as a parallel executor runs train_classifier beside
  train_baselines (old: 2 threads each; new: the budget, 1 each on 2 cores);
each idle and with ``--compete`` processes spinning (``while True: pass``) for the duration.

The matrix has the demo's training shape (``--rows`` x ``--cols`` numeric columns, a zero-heavy
revenue label); the parameters are the product's (``lgb_params`` over config/models.yaml).

    python benchmarks/bench_threads.py                 # ~2-4 min on 2 cores
    python benchmarks/bench_threads.py --rows 5000 --rounds 20 --quick

Progress goes to stderr; the last line of stdout is one JSON object.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
from harness import Competitor  # noqa: E402  (benchmarks/harness.py)

# Runs in a fresh interpreter. lightgbm is imported FIRST so that OpenMP initialises with the
# environment the parent chose (ltv_core's import would set OMP_WAIT_POLICY=PASSIVE otherwise).
WORKER = r"""
import json, sys, time
import lightgbm as lgb
import numpy as np
rows, cols, rounds, threads = (int(a) for a in sys.argv[1:5])
from ltv_core.models.config import load_models_config
from ltv_core.models.lgb import lgb_params
rng = np.random.default_rng(0)
X = rng.normal(size=(rows, cols)).astype(np.float32)
buy = rng.random(rows) < 1 / (1 + np.exp(-(X[:, 0] + X[:, 1] - 3)))
y = np.where(buy, np.log1p(np.exp(1 + X[:, 2] + 0.5 * X[:, 3] + rng.normal(size=rows))), 0.0)
params = lgb_params(load_models_config("config/models.yaml").lgbm, seed=1, objective="regression")
params["num_threads"] = threads
ds = lgb.Dataset(X, y, params={"max_bin": params["max_bin"], "verbosity": -1}).construct()
t0 = time.perf_counter()
lgb.train(params, ds, num_boost_round=rounds)
print(json.dumps({"fit_s": time.perf_counter() - t0}))
"""

def say(msg: str) -> None:
    print(f"[bench_threads] {msg}", file=sys.stderr, flush=True)


def policy_env(policy: str) -> dict[str, str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("OMP_WAIT_POLICY", None)
    if policy == "new":
        env["OMP_WAIT_POLICY"] = "PASSIVE"  # what ltv_core/__init__.py sets before OpenMP loads
    return env


def policy_threads(policy: str, tasks: int, cores: int) -> int:
    """old: the former fixed num_threads 2; new: the stage's share (ltv_core.threads)."""
    return 2 if policy == "old" else max(1, cores // tasks)


def run_fits(policy: str, tasks: int, args: argparse.Namespace, cores: int) -> float:
    """Wall seconds of ``tasks`` simultaneous fits (the slowest one's fit time)."""
    n = policy_threads(policy, tasks, cores)
    argv = [sys.executable, "-c", WORKER, str(args.rows), str(args.cols), str(args.rounds), str(n)]
    procs = [subprocess.Popen(argv, env=policy_env(policy), cwd=ROOT, stdout=subprocess.PIPE, text=True)
             for _ in range(tasks)]
    fits = []
    for p in procs:
        out, _ = p.communicate(timeout=args.timeout)
        if p.returncode != 0:
            raise SystemExit(f"a fit failed (policy {policy}, {tasks} task(s)): exit {p.returncode}")
        fits.append(json.loads(out.strip().splitlines()[-1])["fit_s"])
    return round(max(fits), 3)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, default=38_400, help="training rows (demo: 38,400)")
    ap.add_argument("--cols", type=int, default=282, help="numeric columns (demo: 282)")
    ap.add_argument("--rounds", type=int, default=100, help="boosting rounds per fit")
    ap.add_argument("--compete", type=int, default=1, help="competing busy processes in the loaded runs")
    ap.add_argument("--timeout", type=float, default=900.0, help="seconds before a fit counts as hung")
    ap.add_argument("--quick", action="store_true", help="only the 'alone' scenario")
    args = ap.parse_args()
    sys.path.insert(0, str(ROOT))
    from ltv_core.threads import available_cores

    cores = available_cores()
    scenarios = ["alone"] if args.quick else ["alone", "two_tasks"]
    results: dict[str, dict[str, float]] = {}
    for load in ("idle", "loaded"):
        with contextlib.ExitStack() as spinners:
            for _ in range(args.compete if load == "loaded" else 0):
                spinners.enter_context(Competitor())
            time.sleep(0.5 if load == "loaded" else 0)
            for scenario in scenarios:
                tasks = 1 if scenario == "alone" else 2
                for policy in ("old", "new"):
                    key = f"{scenario}/{load}"
                    say(f"{key}: policy {policy}, {tasks} fit(s) x {policy_threads(policy, tasks, cores)} thread(s) ...")
                    secs = run_fits(policy, tasks, args, cores)
                    results.setdefault(key, {})[policy] = secs
                    say(f"{key}: policy {policy}: {secs:.2f} s")
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                            text=True).stdout.strip()
    print(json.dumps({"benchmark": "threads", "rows": args.rows, "cols": args.cols, "rounds": args.rounds,
                      "cores": cores, "compete": args.compete, "fit_seconds": results,
                      "speedup_new_vs_old": {k: round(v["old"] / max(v["new"], 0.01), 2) for k, v in results.items()},
                      "load_average": [round(x, 2) for x in os.getloadavg()], "commit": commit}))


if __name__ == "__main__":
    main()
