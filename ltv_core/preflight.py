"""preflight: every config file and param of a run, checked before its first stage does any work.

A typo in the models config (``num_boost_rounds``) used to fail after ingest, validate and
build_features had run and committed (96 s in); a missing features config after 65 s. Here the
pipeline config and the params (already parsed by ``ltv_core.context.make_context``), the dataset
spec, the models config, the features config (against the spec's columns), the hand-written
expectations file, the data root and the store are all checked first (the run id even before the
configs are read, by ``make_context``), in well under a second on a local store, each failure
naming its file and field; no stage folder is written before (``tests/integration/test_preflight.py``).

Called by the CLI before the first stage it runs (``ltv_core.inprocess.run_stages``) and by the
DAG's first task, ingest (``ltv_core.stages.ingest.run``).
"""

from __future__ import annotations

import logging
import time
import uuid
from typing import TYPE_CHECKING, Any

from ltv_core.errors import DataError, StoreError, describe
from ltv_core.features.columns import FeatureColumns
from ltv_core.features.config import features_config_for
from ltv_core.store import ArtifactStore, check_root, fs_for
from ltv_core.validation.expectations import resolve_expectations

if TYPE_CHECKING:
    from ltv_core.context import RunContext

log = logging.getLogger(__name__)

PROBE = "_preflight"


def check(ctx: RunContext) -> dict[str, Any]:
    """Check everything the run will need; raises the first problem (SpecError, DataError or
    StoreError, one line each) and returns what was checked, for the log."""
    t0 = time.perf_counter()  # the run id was checked by make_context, before any config was read
    ctx.models  # noqa: B018  loads it: pydantic, extra="forbid": an unknown key fails naming file and field
    features = features_config_for(ctx.spec, ctx.config.features_config)
    FeatureColumns(ctx.spec, features)  # every column the features config names exists in the spec
    expectations = resolve_expectations(ctx.spec, None)
    data_root = check_data_root(ctx)
    check_store(ctx.store)
    checked = {"run_id": ctx.run_id, "pipeline_config": ctx.config.source_path, "spec": ctx.spec.source_path,
               "models_config": ctx.config.models_config,
               "features_config": features.source_path,
               "expectations": expectations.source if expectations else None,
               "data_root": data_root, "store": ctx.store.url, "seconds": round(time.perf_counter() - t0, 3)}
    log.info("preflight passed in %.2fs: configs, spec, expectations, data root %s, store %s",
             checked["seconds"], data_root, ctx.store.url)
    return checked


def check_data_root(ctx: RunContext) -> str:
    """The data root exists and holds the spec's training folder (a missing test folder is no error:
    the run simply has no scoring window)."""
    given = ctx.config.data_root
    root = check_root("data root", ctx.spec.resolved_data_root(given))  # keeps a given root's '..'
    train = ctx.spec.root_path("train", given)
    try:
        fs, path = fs_for(str(train))
        found = fs.exists(path)
    except Exception as exc:  # an unreachable or unauthorised object store
        raise DataError(f"cannot reach data root {root}: {describe(exc)}") from None
    if not found:
        raise DataError(f"data root {root} has no training folder {ctx.spec.roots.train!r} (spec "
                        f"{ctx.spec.source_path}): give --data-root (or the data_root param / LTV_DATA_ROOT) "
                        "the folder that holds it")
    return root


def check_store(store: ArtifactStore) -> None:
    """Write and remove one small object: proves the store is reachable, the credentials work and
    the user may write, before any stage starts (write errors are StoreErrors naming the store)."""
    probe = store.path(f"{PROBE}-{uuid.uuid4().hex}.txt")
    store.write_bytes(probe, b"preflight\n")
    try:
        store.fs.rm(probe)
    except Exception as exc:
        raise StoreError(f"store {store.url} accepts writes but not deletes ({describe(exc)}); "
                         "the pipeline replaces and prunes its attempts, so it needs both") from None
