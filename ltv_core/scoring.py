"""The ``Scorer``: a trained run's feature state and stack, applied to raw (staged) tables.

Used by the score stage (``ltv_core.stages.score``, one partition per Dask task), by the evaluate
stage (the champion on this run's holdout) and from a notebook (``Scorer.load(...).predict_table``).
It reads only the raw columns its pruned plan needs and computes only the features the stack's
trees split on, straight into the float matrix LightGBM predicts on (same predictions as the full
transform: ``tests/integration/test_stages.py::test_pruned_scoring_gives_identical_predictions``).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from ltv_core import catalog, lineage
from ltv_core.threads import current as current_threads
from ltv_core.errors import DataError
from ltv_core.features.builder import FeatureBuilder
from ltv_core.features.plan import PLAN_SAMPLE_ROWS
from ltv_core.features.state import FeatureState, category_labels
from ltv_core.models import artefacts
from ltv_core.models.matrix import DenseMatrix
from ltv_core.models.stack import FittedStack
from ltv_core.pipeline import Split
from ltv_core.spec import DatasetSpec
from ltv_core.store import ArtifactStore

log = logging.getLogger(__name__)

MODEL_RUN_COLUMN = "model_run_id"


@dataclass
class Scorer:
    """A trained run's feature state + stack, applied to raw (staged) tables."""

    run_id: str
    spec: DatasetSpec
    state: FeatureState
    stack: FittedStack
    prune: bool = True  # compute only the features some tree splits on (see _plan)
    threads: int | None = None  # the transform's threads; None: the stage's budget (ltv_core.threads)

    @classmethod
    def load(cls, store: ArtifactStore, run_id: str, spec: DatasetSpec, prune: bool = True,
             threads: int | None = None, pins: Mapping[str, str] | None = None) -> Scorer:
        """The model of ``run_id``; ``pins``: read its stages from these attempts (a champion
        pointer's, ``ltv_core.lineage.model_pins``), checked to form one chain first."""
        with store.pinned(run_id, dict(pins or {})):
            lineage.verify_chain(store, run_id, pins or {})
            return cls(run_id, spec, catalog.load_feature_state(store, run_id), artefacts.load_stack(store, run_id),
                       prune, threads)

    @classmethod
    def champion(cls, store: ArtifactStore, pointer: Mapping[str, Any], spec: DatasetSpec, **kwargs: Any) -> Scorer:
        """The model a champion pointer names, from exactly the attempts it pins: a later re-run of
        the champion's run id cannot change it (``tests/integration/test_lineage.py``)."""
        return cls.load(store, str(pointer["run_id"]), spec, pins=lineage.model_pins(pointer), **kwargs)

    def __post_init__(self) -> None:
        self.builder = FeatureBuilder.from_state(self.spec, self.state, threads=self.threads or current_threads())
        self._plan_cache: list[Any] = []
        self._categories = {c: category_labels(self.state.vocabularies.get(c, []))
                            for c in self.state.categorical_features}
        self._local = threading.local()  # per thread: predict_arrow's matrix memory, reused (grow-only)

    def __getstate__(self) -> dict[str, Any]:
        """Shipped to Dask workers: the fields and the plan; the builder (a thread pool) and the
        matrix buffer are made afresh on the other side."""
        return {"fields": (self.run_id, self.spec, self.state, self.stack, self.prune, self.threads),
                "plan": list(self._plan_cache)}

    def __setstate__(self, d: dict[str, Any]) -> None:
        self.run_id, self.spec, self.state, self.stack, self.prune, self.threads = d["fields"]
        self.__post_init__()
        self._plan_cache.extend(d["plan"])

    def _plan(self, table: pa.Table) -> Any:
        """The pruned transform's plan, made once from the first table: features no tree of the
        stack splits on are left null instead of computed. Predictions are unchanged
        (``tests/integration/test_stages.py::test_pruned_scoring_gives_identical_predictions``);
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

    def read(self, store: ArtifactStore, path: str, max_rows: int | None = None) -> pa.Table:
        """A staged partition, reading only the raw columns the transform uses: those of the pruned
        plan once it is made (from the first partition), else every feature column; plus the id.
        Map columns whose keys nothing reads are read by their value leaf alone. ``max_rows``: the
        file's first rows only."""
        plan = self._plan_cache[0] if self._plan_cache else None
        columns = [*self.builder.input_columns(plan), self.spec.id_column]
        table = store.read_parquet(path, columns, skip_missing=True, max_rows=max_rows,
                                   map_values_only=plan.values_only if plan is not None else ())
        if self.prune and not self._plan_cache:
            self._plan(table)
        return table

    def prepare(self, store: ArtifactStore, path: str) -> None:
        """Make the pruned plan from the first rows of ``path`` (all the plan looks at), before the
        partitions are scored elsewhere: the stage ships the scorer with its plan to the workers."""
        if self.prune and not self._plan_cache:
            self.read(store, path, max_rows=PLAN_SAMPLE_ROWS)

    def features(self, table: pa.Table, reuse_buffer: bool = False) -> DenseMatrix:
        """The model matrix of raw rows, straight from the builder (no Arrow table, no category frame).

        ``reuse_buffer``: fill the scorer's own memory (overwritten by the next such call, so only
        for a matrix consumed at once): a fresh 50k x 300 float32 matrix per partition spent more
        time in first-touch page faults than in copying the features."""
        out = None
        if reuse_buffer:
            n, k = table.num_rows, len(self.state.feature_names)
            buffer = getattr(self._local, "buffer", None)
            if buffer is None or buffer.size < n * k:
                buffer = self._local.buffer = np.empty(n * k, np.float32)
            out = buffer[: n * k].reshape(k, n).T  # column-major (n, k) view
        M = self.builder.matrix(table, self.state, plan=self._plan(table), out=out)
        # the builder wrote the codes from the state's own vocabularies: no need to check them again
        return DenseMatrix.from_values(M, self.state.feature_names, self._categories, check_codes=False)

    def predict_table(self, table: pa.Table) -> pd.DataFrame:
        """Row id, p_buyer, pred_<h>, value_<h> and the model's run id for every row of ``table``."""
        return self.predict_arrow(table).to_pandas()

    def predict_arrow(self, table: pa.Table) -> pa.Table:
        """``predict_table`` as an Arrow table, the form the stage writes."""
        self.check_id(table)
        return self.prediction_table(table, self.stack.predict(self.features(table, reuse_buffer=True)))

    def prediction_table(self, table: pa.Table, pred: pd.DataFrame) -> pa.Table:
        """Row id, the stack's prediction columns and the model's run id: the id column is the
        input's own Arrow array and the run id one repeated scalar (no Python objects per row)."""
        arrays = [table.column(self.spec.id_column)] + [pa.array(pred[c].to_numpy()) for c in pred.columns]
        arrays.append(pa.repeat(pa.scalar(self.run_id, pa.string()), table.num_rows))
        return pa.Table.from_arrays(arrays, names=[self.spec.id_column, *map(str, pred.columns), MODEL_RUN_COLUMN])

    def check_id(self, table: pa.Table) -> None:
        if self.spec.id_column not in table.column_names:
            raise DataError(f"table to score lacks the id column {self.spec.id_column!r}")


def stream_predictions(store: ArtifactStore, run_id: str, scorer: Scorer, split: Split = Split.SCORING
                       ) -> Iterator[tuple[str, pd.DataFrame]]:
    """(partition, predictions) for each staged file of ``split``, one in memory at a time."""
    for f in catalog.staged_partitions(store, run_id, split):
        yield f["partition"], scorer.predict_table(scorer.read(store, f["path"]))
