"""Validate staged splits with Great Expectations before anything is trained or scored on them.

Why a separate stage: ingest aligns files to the spec, but it cannot tell whether the *content* is
sane (a duplicated id, a buyer flag that disagrees with revenue, a feed that suddenly ships a column
empty). A model trained on such data fails silently; this stage fails loudly instead, with a
message that names the split, the column and example values. The stage's I/O (reading, sampling,
writing results, committing) is ``ltv_core.stages.validate``; this package is the rest, one job per
module:

- :mod:`~ltv_core.validation.expectations`: the hand-written expectations file, parsed and checked;
- :mod:`~ltv_core.validation.view`: the compact pandas view of staged data that GX runs on;
- :mod:`~ltv_core.validation.suite`: the suite for one split, from the spec and the file;
- :mod:`~ltv_core.validation.report`: failures and the error message, from GX's JSON result;
- :mod:`~ltv_core.validation.gx`: the GX context, one validation per split, data docs.

Great Expectations takes seconds to import, so the modules that use it import it lazily inside the
functions that need it: importing this package (e.g. while Airflow parses a DAG) stays cheap.
"""

from ltv_core.validation.expectations import (
    HandWrittenExpectations,
    load_expectations_file,
    resolve_expectations,
)
from ltv_core.validation.gx import validate_splits
from ltv_core.validation.report import Failure, ValidationReport
from ltv_core.validation.suite import build_suite
from ltv_core.validation.view import (
    EVENT_TS_END,
    concat_views,
    helper_columns,
    validation_frame,
    view_table,
)

__all__ = [
    "EVENT_TS_END",
    "Failure",
    "HandWrittenExpectations",
    "ValidationReport",
    "build_suite",
    "concat_views",
    "helper_columns",
    "load_expectations_file",
    "resolve_expectations",
    "validate_splits",
    "validation_frame",
    "view_table",
]
