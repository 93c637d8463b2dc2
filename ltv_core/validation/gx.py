"""Running Great Expectations: one ephemeral context, one validation per split, then data docs.

Why it exists: everything that touches a live GX context is here, so the other modules of this
package stay plain functions of the spec and the data. GX 1.x ephemeral contexts keep nothing, so
each run registers a filesystem data docs site in a temporary folder, runs one
ValidationDefinition per split (which stores its result in the context's in-memory results store),
calls ``context.build_data_docs()``, and returns the generated HTML; the validate stage
(``ltv_core.stages.validate``) writes it under ``runs/<run_id>/validate/data_docs/``.

Great Expectations takes seconds to import, so it is imported lazily inside the functions that
need it: importing this module (e.g. while Airflow parses a DAG) stays cheap.
"""

from __future__ import annotations

import logging
import os
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from ltv_core.errors import DataError
from ltv_core.jsonutil import to_jsonable
from ltv_core.spec import DatasetSpec
from ltv_core.validation.expectations import HandWrittenExpectations, resolve_expectations
from ltv_core.validation.report import ValidationReport
from ltv_core.validation.suite import build_suite

if TYPE_CHECKING:  # pragma: no cover - typing only; GX is imported lazily at run time
    from great_expectations.core import ExpectationSuiteValidationResult

log = logging.getLogger(__name__)

DOCS_SITE = "ltv_validation"
# Walkthrough animations GX copies into every site; no page references them (3.4 MB).
_SKIP_DOC_SUFFIXES = (".gif",)
RESULT_FORMAT: dict[str, Any] = {"result_format": "SUMMARY", "partial_unexpected_count": 20}


def _context(docs_dir: str) -> Any:
    """An ephemeral context whose only data docs site writes to ``docs_dir``."""
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    ctx = gx.get_context(mode="ephemeral")
    ctx.variables.progress_bars = ProgressBarsConfig(globally=False)
    ctx.variables.data_docs_sites = {
        DOCS_SITE: {
            "class_name": "SiteBuilder",
            "show_how_to_buttons": False,
            "store_backend": {"class_name": "TupleFilesystemStoreBackend", "base_directory": docs_dir},
            "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
        }
    }
    return ctx


def _run_split(
    ctx: Any, spec: DatasetSpec, split: str, frame: pd.DataFrame, labelled: bool,
    hw: HandWrittenExpectations | None, run_name: str | None,
) -> ExpectationSuiteValidationResult:
    import great_expectations as gx
    from great_expectations.core.run_identifier import RunIdentifier

    suite = ctx.suites.add(build_suite(spec, split, labelled, hw))
    asset = ctx.data_sources.add_pandas(name=f"{spec.name}.{split}").add_dataframe_asset(name=split)
    batch = asset.add_batch_definition_whole_dataframe("whole")
    vd = ctx.validation_definitions.add(
        gx.ValidationDefinition(name=f"{spec.name}.{split}", data=batch, suite=suite)
    )
    return vd.run(
        batch_parameters={"dataframe": frame},
        result_format=RESULT_FORMAT,
        run_id=RunIdentifier(run_name=run_name) if run_name else None,
    )


def _collect_docs(docs_dir: str) -> dict[str, bytes]:
    out: dict[str, bytes] = {}
    for path in sorted(Path(docs_dir).rglob("*")):
        if path.is_file() and not path.name.endswith(_SKIP_DOC_SUFFIXES):
            out[path.relative_to(docs_dir).as_posix()] = path.read_bytes()
    if "index.html" not in out:
        raise RuntimeError(f"GX built no data docs index in {docs_dir}")
    return out


def validate_splits(
    spec: DatasetSpec,
    frames: Mapping[str, tuple[pd.DataFrame, bool]],
    expectations_file: str | os.PathLike[str] | HandWrittenExpectations | None = None,
    *,
    run_name: str | None = None,
    split_info: Mapping[str, Mapping[str, Any]] | None = None,
) -> ValidationReport:
    """Run one GX validation per split and build data docs.

    ``frames`` maps split -> (view, labelled), the view from
    :func:`~ltv_core.validation.view.validation_frame` or
    :func:`~ltv_core.validation.view.concat_views`. ``split_info`` is merged into the report's
    per-split record (rows before sampling, whole-split key counts). One GX context serves every
    split.
    """
    if not frames:
        raise DataError("validate_splits needs at least one split")
    hw = resolve_expectations(spec, expectations_file)
    results: dict[str, dict[str, Any]] = {}
    splits: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="ltv-gx-docs-") as docs_dir:
        ctx = _context(docs_dir)
        for split, (frame, labelled) in frames.items():
            t0 = time.time()
            res = _run_split(ctx, spec, split, frame, labelled, hw, run_name)
            results[split] = to_jsonable(res.to_json_dict())
            n_fail = sum(1 for r in res.results if not r.success)
            splits[split] = {
                **dict((split_info or {}).get(split, {})),
                "labelled": labelled, "rows_validated": len(frame), "success": bool(res.success),
                "evaluated": len(res.results), "failed": n_fail, "seconds": round(time.time() - t0, 3),
            }
            log.info("validated %s: %d rows, %d expectations, %d failed, %.2fs",
                     split, len(frame), len(res.results), n_fail, time.time() - t0)
        ctx.build_data_docs(site_names=[DOCS_SITE])
        html = _collect_docs(docs_dir)
    return ValidationReport(all(s["success"] for s in splits.values()), results, splits, html)
