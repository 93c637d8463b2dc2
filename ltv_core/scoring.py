"""The score stage: the champion's feature state and models applied to new partitions, one at a time.

Streaming keeps peak memory flat in the number of partitions: each staged scoring file is read,
transformed with the champion's *own* fitted feature state (vocabularies, statistics, encodings),
predicted with the champion's stack, written to ``score/predictions/<key>=<value>/part-0.parquet``
and dropped before the next one. An optional submission CSV is streamed into one atomic write.

Which model scores is decided by the promotion stage, not here: ``champion.json`` names the run
whose artefacts are used, so a rejected or failed training run never reaches the predictions.
"""

from __future__ import annotations

import io
import os
from contextlib import nullcontext
import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from ltv_core.errors import DataError
from ltv_core.features.builder import FeatureBuilder
from ltv_core.features.stage import category_labels, feature_frame, load_feature_state
from ltv_core.features.state import FeatureState
from ltv_core.ingest import STAGE as INGEST_STAGE
from ltv_core.models import DenseMatrix
from ltv_core.models.training import FittedStack
from ltv_core.spec import DatasetSpec
from ltv_core.store import ArtifactStore, StageTimer

log = logging.getLogger(__name__)

STAGE = "score"
MODEL_RUN_COLUMN = "model_run_id"


@dataclass
class Scorer:
    """A trained run's feature state + stack, applied to raw (staged) tables."""

    run_id: str
    spec: DatasetSpec
    state: FeatureState
    stack: FittedStack
    prune: bool = True  # compute only the features some tree splits on (see _plan)

    @classmethod
    def load(cls, store: ArtifactStore, run_id: str, spec: DatasetSpec, prune: bool = True) -> Scorer:
        from ltv_core.model_stages import load_stack

        return cls(run_id, spec, load_feature_state(store, run_id), load_stack(store, run_id), prune)

    def __post_init__(self) -> None:
        # one process scores: let the transform use every core (LightGBM does too)
        self.builder = FeatureBuilder.from_state(self.spec, self.state, threads=os.cpu_count() or 1)
        self._plan_cache: list[Any] = []
        self._categories = {c: category_labels(self.state.vocabularies.get(c, []))
                            for c in self.state.categorical_features}
        self._buffer: np.ndarray | None = None  # predict_arrow's matrix memory, reused (grow-only)

    def _plan(self, table: pa.Table) -> Any:
        """The pruned transform's plan, made once from the first table: features no tree of the
        stack splits on are left null instead of computed. Predictions are unchanged (tested);
        the transform does about half the work for a typical champion."""
        if not self.prune:
            return None
        if not self._plan_cache:
            used = self.stack.used_features()
            unknown = used - set(self.state.feature_names)
            if unknown:  # models and feature state disagree: compute everything, say why
                log.warning("not pruning features: the models split on %d column(s) unknown to the feature "
                            "state, e.g. %s", len(unknown), sorted(unknown)[:5])
                self._plan_cache.append(None)
            else:
                plan = self.builder.plan_for(used, self.state, table)
                log.info("scoring computes %d of %d features (the ones the models split on) from %d raw columns",
                         len(used), len(self.state.feature_names), len(plan.columns))
                self._plan_cache.append(plan)
        return self._plan_cache[0]

    def read(self, store: ArtifactStore, path: str) -> pa.Table:
        """A staged partition, reading only the raw columns the transform uses: those of the pruned
        plan once it is made (from the first partition), else every feature column; plus the id.
        Map columns whose keys nothing reads are read by their value leaf alone."""
        plan = self._plan_cache[0] if self._plan_cache else None
        columns = [*self.builder.input_columns(plan), self.spec.id_column]
        table = store.read_parquet(path, columns, skip_missing=True,
                                   map_values_only=plan.values_only if plan is not None else ())
        if self.prune and not self._plan_cache:
            self._plan(table)
        return table

    def features(self, table: pa.Table, reuse_buffer: bool = False) -> DenseMatrix:
        """The model matrix of raw rows, straight from the builder (no Arrow table, no category frame).

        ``reuse_buffer``: fill the scorer's own memory (overwritten by the next such call, so only
        for a matrix consumed at once): a fresh 50k x 300 float32 matrix per partition spent more
        time in first-touch page faults than in copying the features."""
        out = None
        if reuse_buffer:
            n, k = table.num_rows, len(self.state.feature_names)
            if self._buffer is None or self._buffer.size < n * k:
                self._buffer = np.empty(n * k, np.float32)
            out = self._buffer[: n * k].reshape(k, n).T  # column-major (n, k) view
        M = self.builder.matrix(table, self.state, plan=self._plan(table), out=out)
        return DenseMatrix.from_values(M, self.state.feature_names, self._categories)

    def features_frame(self, table: pa.Table) -> pd.DataFrame:
        """Every feature (no pruning) as a pandas frame with ``category`` columns (notebooks, debugging)."""
        return feature_frame(self.builder.transform(table, self.state), self.state)

    def predict_table(self, table: pa.Table) -> pd.DataFrame:
        """Row id, p_buyer, pred_<h>, value_<h> and the model's run id for every row of ``table``."""
        return self.predict_arrow(table).to_pandas()

    def predict_arrow(self, table: pa.Table) -> pa.Table:
        """``predict_table`` as an Arrow table, the form the stage writes: the id column is the
        input's own Arrow array and the run id one repeated scalar (no Python objects per row)."""
        if self.spec.id_column not in table.column_names:
            raise DataError(f"table to score lacks the id column {self.spec.id_column!r}")
        pred = self.stack.predict(self.features(table, reuse_buffer=True))  # consumed here: predictions are new arrays
        arrays = [table.column(self.spec.id_column)] + [pa.array(pred[c].to_numpy()) for c in pred.columns]
        arrays.append(pa.repeat(pa.scalar(self.run_id, pa.string()), table.num_rows))
        return pa.Table.from_arrays(arrays, names=[self.spec.id_column, *map(str, pred.columns), MODEL_RUN_COLUMN])


def _partitions(store: ArtifactStore, run_id: str, split: str) -> list[dict[str, Any]]:
    outputs = store.read_manifest(run_id, INGEST_STAGE)["outputs"]
    if split not in outputs:
        raise DataError(f"run {run_id!r}: ingest staged no {split!r} split (splits: {sorted(outputs)})")
    return sorted(outputs[split]["files"], key=lambda f: f["partition"])


def stream_predictions(store: ArtifactStore, run_id: str, scorer: Scorer, split: str = "scoring"
                       ) -> Iterator[tuple[str, pd.DataFrame]]:
    """(partition, predictions) for each staged file of ``split``, one in memory at a time."""
    for f in _partitions(store, run_id, split):
        yield f["partition"], scorer.predict_table(scorer.read(store, f["path"]))


def run_score_stage(store: ArtifactStore, run_id: str, spec: DatasetSpec, model_run_id: str, *,
                    submission_csv: bool = False, prune_features: bool = True) -> dict[str, Any]:
    """Score every staged scoring partition of ``run_id`` with the model of ``model_run_id``."""
    timer = StageTimer(STAGE, run_id)
    t0 = time.perf_counter()
    scorer = Scorer.load(store, model_run_id, spec, prune=prune_features)
    files = _partitions(store, run_id, "scoring")
    stage_dir = store.begin_stage(run_id, STAGE)
    key = spec.partition.key
    written, rows = [], 0
    csv_path = f"{stage_dir}/submission.csv"
    revenue = spec.primary.revenue
    with (store.open_atomic(csv_path) if submission_csv else nullcontext()) as csv:
        if csv is not None:
            csv.write(f"{spec.id_column},{revenue}\n".encode())
        for i, f in enumerate(files, 1):
            t1 = time.perf_counter()
            pred = scorer.predict_arrow(scorer.read(store, f["path"]))
            out = f"{stage_dir}/predictions/{key}={f['partition']}/part-0.parquet"
            # dictionary pages only where values repeat (the run id): on unique floats and ids
            # they are built and thrown away, which cost more than half of the write
            store.write_parquet(out, pred, use_dictionary=[MODEL_RUN_COLUMN])
            if csv is not None:
                buf = io.StringIO()
                pred.select([spec.id_column, f"pred_{spec.labels.primary}"]).to_pandas().to_csv(
                    buf, header=False, index=False)
                csv.write(buf.getvalue().encode())
            written.append({"path": out, "partition": f["partition"], "rows": pred.num_rows})
            rows += pred.num_rows
            log.info("[score %d/%d] %s: %d rows (%.2fs)", i, len(files), f["partition"], pred.num_rows,
                     time.perf_counter() - t1)
    seconds = time.perf_counter() - t0
    timer.inputs = {"model_run_id": model_run_id, "partitions": [f["partition"] for f in files]}
    timer.outputs = {"predictions": store.uri(f"{stage_dir}/predictions"), "files": written,
                     "submission_csv": store.uri(csv_path) if submission_csv else None}
    timer.extra = {"rows": rows, "rows_per_s": round(rows / seconds, 1) if seconds > 0 else None,
                   "model_run_id": model_run_id}
    manifest = store.commit_stage(run_id, STAGE, timer.finish({"model_run_id": model_run_id}))
    log.info("scored %d rows in %d partitions with model %s (%.1fs)", rows, len(files), model_run_id, seconds)
    return {"run_id": run_id, "model_run_id": model_run_id, "rows": rows, "partitions": len(files),
            "predictions": store.uri(f"{stage_dir}/predictions"), "manifest": store.uri(manifest),
            "submission_csv": store.uri(csv_path) if submission_csv else None}


__all__ = ["MODEL_RUN_COLUMN", "STAGE", "Scorer", "run_score_stage", "stream_predictions"]
