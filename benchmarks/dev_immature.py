"""Development study (VALIDATION window of a development seed only): does training also on the young
users, their d120 inferred from their latest matured horizon (``immature_labels``), help?

    PYTHONPATH=. .venv/bin/python benchmarks/dev_immature.py --seed 43 --rows-per-partition 1000

Generates gaming data (``ltv_core.synthetic.gaming``, development seed: not the 5 of the tests nor
the 7 / 31 the docs report), runs the product's CLI up to ``optimize_gate`` once per variant (``off``:
the default; ``on:<min_horizon>:<zeros>``: the option) on the same files and logical date (the export
date: the 120 newest install days are young), then scores each run's own stack and ``lgbm_log1p``
baseline on the validation window (matured users, identical rows in every run). Prints the metrics,
paired bootstrap intervals of (variant - off) and, last, one JSON object. ``--window holdout`` only
confirms a decision already taken on validation, on a fresh seed (docs/BENCHMARKS.md "Immature labels").
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import time
from pathlib import Path

import numpy as np
import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

SPEC = "config/datasets/gaming_d120.yaml"


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def variant_config(folder: Path, name: str) -> str:
    """config/pipeline.yaml with the variant's ``immature_labels`` block."""
    raw = yaml.safe_load((ROOT / "config" / "pipeline.yaml").read_text())
    # explicit on both sides: the pipeline config's null would take the spec's own choice
    raw["immature_labels"] = {**raw.get("immature_labels", {}), "enabled": False}
    if name != "off":
        _, horizon, zeros = name.split(":")
        raw["immature_labels"] = {"enabled": True, "min_horizon": None if horizon == "any" else horizon,
                                  "zeros": zeros}
    path = folder / f"pipeline-{name.replace(':', '_')}.yaml"
    path.write_text(yaml.safe_dump(raw))
    return str(path)


def run_variant(name: str, data: Path, work: Path, logical: str) -> dict:
    from ltv_core import cli

    run_id = "dev-" + name.replace(":", "-")
    args = ["run", "--spec", SPEC, "--config", variant_config(work, name), "--data-root", str(data),
            "--store-root", str(work / "store"), "--logical-date", logical, "--run-id", run_id,
            "--until", "optimize_gate"]
    t0 = time.perf_counter()
    with contextlib.redirect_stdout(sys.stderr):
        rc = cli.main(args)
    if rc != 0:
        raise SystemExit(f"variant {name}: the run failed (rc {rc})")
    return {"run_id": run_id, "seconds": round(time.perf_counter() - t0, 1)}


def window_predictions(store_root: Path, run_id: str, window: str = "validation") -> dict:
    """The run's stack point prediction and lgbm_log1p on its validation (or, to confirm a decision
    already taken, holdout) matrix, by user id."""
    from ltv_core import catalog
    from ltv_core.models import artefacts
    from ltv_core.pipeline import Split
    from ltv_core.spec import load_spec
    from ltv_core.store import ArtifactStore

    spec, store = load_spec(SPEC), ArtifactStore(str(store_root))
    X, meta = catalog.training_matrix(store, run_id, Split(window))
    order = np.argsort(meta[spec.id_column].to_numpy())
    stack = artefacts.load_stack(store, run_id)
    point = stack.predict(X)[f"pred_{spec.labels.primary}"].to_numpy()
    base = artefacts.load_baselines(store, run_id)["lgbm_log1p"].predict(X)
    train = store.read_manifest(run_id, "ingest")["outputs"]["train"]
    young = train.get("immature_labels")
    return {"ids": meta[spec.id_column].to_numpy()[order], "y": meta[spec.primary.revenue].to_numpy(np.float64)[order],
            "stack": point[order], "lgbm_log1p": np.asarray(base)[order], "train_rows": train["rows"],
            "young": None if young is None else {k: young[k] for k in ("rows", "rows_inferred", "inferred_from")}}


def compare(off: dict, on: dict, n_boot: int, seed: int) -> dict:
    from ltv_core import metrics

    if not np.array_equal(off["ids"], on["ids"]):
        raise SystemExit("the variants' validation rows differ: not a paired comparison")
    y, out = off["y"], {}
    for model in ("stack", "lgbm_log1p"):
        row = {}
        for metric, fn in (("rmsle", metrics.rmsle), ("gini", metrics.normalized_gini)):
            ci = metrics.paired_bootstrap_ci(y, on[model], off[model], metric, n_boot=n_boot, seed=seed)
            row[metric] = {"on": round(fn(y, on[model]), 5), "off": round(fn(y, off[model]), 5),
                           "diff": round(float(ci.diff), 5), "ci": [round(float(ci.lo), 5), round(float(ci.hi), 5)]}
        out[model] = row
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seed", type=int, default=43)
    ap.add_argument("--rows-per-partition", type=int, default=1000)
    ap.add_argument("--work", default="/tmp/dev_immature")
    ap.add_argument("--as-of", default="2024-03-13")
    ap.add_argument("--variants", nargs="+", default=["on:d30:keep", "on:any:keep", "on:d30:sample"])
    ap.add_argument("--n-boot", type=int, default=1000)
    ap.add_argument("--window", choices=["validation", "holdout"], default="validation",
                    help="holdout only to confirm a decision already taken on validation, on a fresh seed")
    args = ap.parse_args(argv)
    if args.seed in (5, 7, 31):
        raise SystemExit(f"seed {args.seed} is reported by a test or benchmark: use a development seed")
    from ltv_core.synthetic.gaming import generate_gaming_dataset

    work = Path(args.work) / f"seed{args.seed}-{args.rows_per_partition}"
    data = work / "data"
    if not (data / "train").exists():
        generate_gaming_dataset(data, seed=args.seed, rows_per_partition=args.rows_per_partition, as_of=args.as_of)
    logical = f"{args.as_of}T00:00:00+00:00"
    out: dict = {"seed": args.seed, "rows_per_partition": args.rows_per_partition, "logical_date": logical,
                 "window": args.window, "n_boot": args.n_boot, "variants": {}}
    runs = {name: run_variant(name, data, work, logical) for name in ["off", *args.variants]}
    preds = {name: window_predictions(work / "store", r["run_id"], args.window) for name, r in runs.items()}
    out[f"{args.window}_rows"] = len(preds["off"]["y"])
    out["off"] = {"train_rows": preds["off"]["train_rows"], "seconds": runs["off"]["seconds"]}
    for name in args.variants:
        out["variants"][name] = {"train_rows": preds[name]["train_rows"], "young": preds[name]["young"],
                                 "seconds": runs[name]["seconds"],
                                 **compare(preds["off"], preds[name], args.n_boot, args.seed)}
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
