"""Fingerprint of a demo run: SHA-256 of its predictions and of its holdout evaluation.

Used to prove that a refactor changes no number (issue "One house for the pipeline"): run
``make demo`` at two commits and compare the two JSON lines this prints.

The predictions carry the run id of the model that made them (``model_run_id``), which differs
between any two runs, so each file's table is hashed without that column (Arrow IPC bytes of the
remaining columns, in file order). ``evaluation.json`` holds no run id or timestamp; it is hashed
as canonical JSON (sorted keys).

    PYTHONPATH=. .venv/bin/python benchmarks/demo_fingerprint.py [--store .demo/store] [--run RUN]
"""

from __future__ import annotations

import argparse
import hashlib
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from ltv_core.store import ArtifactStore


def table_digest(path: Path) -> str:
    table = pq.read_table(path)
    if "model_run_id" in table.column_names:
        table = table.drop_columns(["model_run_id"])
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return hashlib.sha256(sink.getvalue().to_pybytes()).hexdigest()


def fingerprint(run_dir: Path) -> dict[str, object]:
    store = ArtifactStore(str(run_dir.parent.parent))
    score_dir = Path(store.stage_dir(run_dir.name, "score"))  # the committed attempt
    files = sorted((score_dir / "predictions").rglob("*.parquet"))
    per_file = {str(f.relative_to(score_dir)): table_digest(f) for f in files}
    combined = hashlib.sha256("".join(f"{k}={v}\n" for k, v in per_file.items()).encode()).hexdigest()
    evaluation = json.loads(Path(store.stage_dir(run_dir.name, "evaluate"), "evaluation.json").read_text())
    eval_digest = hashlib.sha256(json.dumps(evaluation, sort_keys=True).encode()).hexdigest()
    return {"run": run_dir.name, "prediction_files": len(files), "predictions_sha256": combined,
            "evaluation_sha256": eval_digest}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", default=".demo/store")
    parser.add_argument("--run", default=None, help="run folder name (default: the newest run)")
    args = parser.parse_args()
    runs = Path(args.store) / "runs"
    run_dir = runs / args.run if args.run else max(runs.iterdir(), key=lambda d: d.stat().st_mtime)
    print(json.dumps(fingerprint(run_dir)))


if __name__ == "__main__":
    main()
