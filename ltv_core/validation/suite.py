"""The GX suite for one split: rules derived from the dataset spec plus the hand-written file.

Why it exists: a new data set gets the structural rules for free from its spec (split not empty,
every declared column present, types as declared, id not null and unique, label rules, horizon
monotonicity, required columns never entirely null); the hand-written file
(:mod:`ltv_core.validation.expectations`) adds what the spec cannot know. Column types are stated
as GX sees them in the view (:mod:`ltv_core.validation.view`), not as Arrow writes them.

Great Expectations takes seconds to import, so it is imported lazily inside the functions that
need it: importing this module (e.g. while Airflow parses a DAG) stays cheap.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

from ltv_core.spec import ColumnSpec, DatasetSpec, Role
from ltv_core.validation.expectations import (
    HandWrittenExpectations,
    expectation_class,
    referenced_columns,
    resolve_expectations,
)
from ltv_core.validation.view import EVENT_TS_END, helper_columns, is_nested, split_columns

if TYPE_CHECKING:  # pragma: no cover - typing only; GX is imported lazily at run time
    import great_expectations as gx


def _view_type(t: pa.DataType) -> str:
    """The type name GX reports for a column of Arrow type ``t`` in the view."""
    if is_nested(t):
        return "int64"  # the view holds the length
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        return "str"
    if pa.types.is_boolean(t):
        return "bool"
    return np.dtype(t.to_pandas_dtype()).name  # int32, float64, ...


def _spec_expectations(spec: DatasetSpec, columns: list[ColumnSpec]) -> list[Any]:
    import great_expectations.expectations as gxe

    out: list[Any] = [
        gxe.ExpectTableRowCountToBeBetween(min_value=1, meta={"notes": "a split must not be empty"}),
        # One table-level check instead of one ExpectColumnToExist per column: same verdict, and it
        # lists every missing column at once; GX's cost is per expectation, not per row.
        gxe.ExpectTableColumnsToMatchSet(
            column_set=[c.name for c in columns], exact_match=False,
            meta={"notes": "every column the spec declares for this split exists"},
        ),
    ]
    for c in columns:
        note = f"Arrow type {c.type}" + (" (the view holds its length)" if is_nested(c.arrow_type) else "")
        out.append(gxe.ExpectColumnValuesToBeOfType(
            column=c.name, type_=_view_type(c.arrow_type), meta={"notes": note}
        ))
    out.append(gxe.ExpectColumnValuesToNotBeNull(column=spec.id_column))
    out.append(gxe.ExpectColumnValuesToBeUnique(column=spec.id_column))
    return out


def _pair_ge(a: str, b: str, notes: str) -> Any:
    import great_expectations.expectations as gxe

    return gxe.ExpectColumnPairValuesAToBeGreaterThanB(
        column_A=a, column_B=b, or_equal=True, ignore_row_if="either_value_is_missing", meta={"notes": notes}
    )


def _label_expectations(spec: DatasetSpec) -> list[Any]:
    """Label rules every labelled split must satisfy, whatever the data set."""
    import great_expectations.expectations as gxe

    out: list[Any] = []
    horizons = spec.labels.horizons
    for h in horizons:
        out.append(gxe.ExpectColumnValuesToNotBeNull(column=h.revenue))
        out.append(gxe.ExpectColumnValuesToBeBetween(column=h.revenue, min_value=0))
        if h.buyer:
            out.append(gxe.ExpectColumnValuesToNotBeNull(column=h.buyer))
            out.append(gxe.ExpectColumnValuesToBeInSet(column=h.buyer, value_set=[0, 1]))
            out.append(gxe.ExpectColumnPairValuesToBeEqual(
                column_A=h.buyer, column_B=f"__{h.buyer}_expected", ignore_row_if="either_value_is_missing",
                meta={"notes": f"{h.buyer} must equal int({h.revenue} > 0)"},
            ))
    for prev, nxt in zip(horizons, horizons[1:]):
        out.append(_pair_ge(nxt.revenue, prev.revenue, f"revenue is cumulative: {nxt.name} >= {prev.name}"))
        if prev.buyer and nxt.buyer:
            out.append(_pair_ge(nxt.buyer, prev.buyer, f"a {prev.name} buyer is a {nxt.name} buyer"))
    return out


def _required_expectations(
    columns: list[ColumnSpec], banded: Mapping[str, tuple[float, float]]
) -> list[Any]:
    """Required columns must hold some values. Ids and labels have stricter not-null rules, and a
    null-share band whose max is below 1 already implies it, so those are not repeated."""
    import great_expectations.expectations as gxe

    return [
        gxe.ExpectColumnProportionOfNonNullValuesToBeBetween(
            column=c.name, min_value=0, strict_min=True,
            meta={"notes": "required column: never entirely null"},
        )
        for c in columns
        if c.required
        and c.role not in (Role.id, Role.label)
        and banded.get(c.name, (0.0, 1.0))[1] >= 1.0
    ]


def _null_share_expectation(column: str, band: tuple[float, float]) -> Any:
    import great_expectations.expectations as gxe

    lo, hi = band
    return gxe.ExpectColumnProportionOfNonNullValuesToBeBetween(
        column=column, min_value=round(1.0 - hi, 12), max_value=round(1.0 - lo, 12),
        meta={"null_share_band": [lo, hi], "notes": f"null share must lie in [{lo}, {hi}]"},
    )


def _file_expectations(
    hw: HandWrittenExpectations, split: str, present: set[str], helpers: set[str]
) -> list[Any]:
    """Hand-written entries for this split; entries on columns the split lacks are skipped."""
    out: list[Any] = []
    for entry in hw.expectations:
        if entry.applies_to and split not in entry.applies_to:
            continue
        if any(c not in present and c not in helpers for c in referenced_columns(entry.kwargs)):
            continue  # outcome columns on an unlabelled split
        meta = {"source": hw.source, **({"notes": entry.notes} if entry.notes else {})}
        out.append(expectation_class(entry.type)(**entry.kwargs, meta=meta))
    out += [_null_share_expectation(c, band) for c, band in hw.null_share.items() if c in present]
    return out


def build_suite(
    spec: DatasetSpec,
    split: str,
    labelled: bool,
    expectations_file: str | os.PathLike[str] | HandWrittenExpectations | None = None,
) -> gx.ExpectationSuite:
    """The suite for one split: spec-derived rules plus the hand-written file.

    ``expectations_file`` defaults to the spec's own ``expectations`` path; pass a loaded
    :class:`HandWrittenExpectations` to parse the file once for many splits.
    """
    import great_expectations as gx

    hw = resolve_expectations(spec, expectations_file)
    columns = split_columns(spec, labelled)
    present = {c.name for c in columns}
    helpers = set(helper_columns(spec)) if labelled else {EVENT_TS_END}
    expectations = _spec_expectations(spec, columns)
    if labelled:
        expectations += _label_expectations(spec)
    expectations += _required_expectations(columns, hw.null_share if hw else {})
    if hw:
        expectations += _file_expectations(hw, split, present, helpers)
    # Passed to the constructor: add_expectation would need an active context to save into.
    return gx.ExpectationSuite(
        name=f"{spec.name}.{split}", expectations=expectations, meta={"split": split, "labelled": labelled}
    )
