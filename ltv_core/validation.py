"""Validate staged splits with Great Expectations before anything is trained or scored on them.

Why a separate stage: ingest aligns files to the spec, but it cannot tell whether the *content* is
sane (a duplicated id, a buyer flag that disagrees with revenue, a feed that suddenly ships a column
empty). A model trained on such data fails silently; this stage fails loudly instead, with a
message that names the split, the column and example values.

The suite for a split is derived from the dataset spec (columns exist, types, id not null and
unique, label rules, horizon monotonicity, non-empty split) plus a hand-written expectations file
(allowed values, ranges, null-share bands). GX runs on a compact pandas *view* of the staged data
(:func:`validation_frame`): nested MAP/LIST columns become their length, so memory stays close to
one number per cell and GX's pandas engine never touches Python objects.

Data docs: GX 1.x ephemeral contexts keep nothing, so each run registers a filesystem data docs
site in a temporary folder, runs one ValidationDefinition per split (which stores its result in the
context's in-memory results store), calls ``context.build_data_docs()``, and copies the generated
HTML into the artefact store under ``runs/<run_id>/validate/data_docs/``.

Great Expectations takes seconds to import, so it is imported lazily: importing this module (e.g.
while Airflow parses a DAG) stays cheap.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from ltv_core.errors import DataError, SpecError
from ltv_core.ingest import EVENT_TS
from ltv_core.jsonutil import to_jsonable
from ltv_core.spec import ColumnSpec, DatasetSpec, Role
from ltv_core.yamlconf import project_root

if TYPE_CHECKING:  # pragma: no cover - typing only; GX is imported lazily at run time
    import great_expectations as gx
    from great_expectations.core import ExpectationSuiteValidationResult

__all__ = [
    "EVENT_TS_END",
    "Failure",
    "HandWrittenExpectations",
    "ValidationReport",
    "build_suite",
    "helper_columns",
    "load_expectations_file",
    "concat_views",
    "resolve_expectations",
    "validate_splits",
    "validation_frame",
    "view_table",
]

log = logging.getLogger(__name__)

EVENT_TS_END = "__event_ts_end"  # helper: end of the row's event-time grain
DOCS_SITE = "ltv_validation"
MAX_EXAMPLES = 5
# Key-rule rows kept beyond the sample (both copies of each duplicated id, and null ids), so the
# uniqueness and not-null checks stay exact on a sampled split without blowing up its size.
MAX_FORCED_KEY_ROWS = 1000
# Walkthrough animations GX copies into every site; no page references them (3.4 MB).
_SKIP_DOC_SUFFIXES = (".gif",)
RESULT_FORMAT: dict[str, Any] = {"result_format": "SUMMARY", "partial_unexpected_count": 20}

_INT_DTYPES: dict[pa.DataType, Any] = {
    pa.int8(): pd.Int8Dtype(),
    pa.int16(): pd.Int16Dtype(),
    pa.int32(): pd.Int32Dtype(),
    pa.int64(): pd.Int64Dtype(),
    pa.uint8(): pd.UInt8Dtype(),
    pa.uint16(): pd.UInt16Dtype(),
    pa.uint32(): pd.UInt32Dtype(),
    pa.uint64(): pd.UInt64Dtype(),
    pa.bool_(): pd.BooleanDtype(),
}
# Field metadata marking a nested column whose Arrow type differs from the spec: the view holds the
# observed type as text, so the type expectation fails and shows the observed type as its example.
_MISMATCH_KEY = b"ltv.view"
_MISMATCH_VALUE = b"arrow_type_mismatch"


# --------------------------------------------------------------------------------------------
# Hand-written expectations file
# --------------------------------------------------------------------------------------------
class _Entry(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    type: str = Field(min_length=1)
    kwargs: dict[str, Any] = Field(default_factory=dict)
    applies_to: list[str] | None = None
    notes: str | None = None


class _ExpectationsFile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    description: str = ""
    expectations: list[_Entry] = Field(default_factory=list)
    null_share: dict[str, tuple[float, float]] = Field(default_factory=dict)

    @field_validator("null_share")
    @classmethod
    def _bands_ordered(cls, v: dict[str, tuple[float, float]]) -> dict[str, tuple[float, float]]:
        bad = {c: b for c, b in v.items() if not 0.0 <= b[0] <= b[1] <= 1.0}
        if bad:
            raise ValueError(f"null_share bands must satisfy 0 <= min <= max <= 1, got {bad}")
        return v


@dataclass(frozen=True)
class HandWrittenExpectations:
    """The parsed expectations file, checked against the spec once so every split reuses it."""

    source: str
    sha256: str  # recorded in the stage manifest: which rules a run was held to
    expectations: tuple[_Entry, ...]
    null_share: Mapping[str, tuple[float, float]]


def helper_columns(spec: DatasetSpec) -> dict[str, str]:
    """Derived columns the view adds for cross-column rules, name -> meaning."""
    out = {
        f"__{h.buyer}_expected": f"int({h.revenue} > 0)" for h in spec.labels.horizons if h.buyer
    }
    out[EVENT_TS_END] = f"{EVENT_TS} + {spec.partition.grain_hours} h (end of the event's grain)"
    return out


def _referenced_columns(kwargs: Mapping[str, Any]) -> list[str]:
    cols = [kwargs[k] for k in ("column", "column_A", "column_B") if isinstance(kwargs.get(k), str)]
    cols += [c for c in kwargs.get("column_list") or [] if isinstance(c, str)]
    return cols


def _expectation_class(name: str) -> type:
    import great_expectations.expectations as gxe
    from great_expectations.expectations.expectation import Expectation

    cls = getattr(gxe, name, None)
    if not (isinstance(cls, type) and issubclass(cls, Expectation)):
        raise ValueError(f"{name!r} is not an expectation in great_expectations.expectations")
    return cls


def _check_entry(i: int, entry: _Entry, spec: DatasetSpec, known: set[str], source: str) -> None:
    where = f"expectations file {source}, expectations[{i}] ({entry.type})"
    try:
        _expectation_class(entry.type)(**entry.kwargs, meta={})
    except (ValueError, TypeError) as exc:  # pydantic's ValidationError is a ValueError
        raise SpecError(f"{where}: {exc}") from None
    unknown = [c for c in _referenced_columns(entry.kwargs) if c not in known]
    if unknown:
        raise SpecError(f"{where}: columns {unknown} are neither in spec {spec.name!r} nor helpers")
    splits = set(entry.applies_to or [])
    if splits and not splits <= {"train", "validation", "holdout", "scoring"}:
        raise SpecError(f"{where}: applies_to {sorted(splits)} names an unknown split")


def load_expectations_file(path: str | os.PathLike[str], spec: DatasetSpec) -> HandWrittenExpectations:
    """Parse and check the file up front, so a typo fails here naming the entry, not mid-run."""
    p = Path(path)
    if not p.is_absolute() and not p.exists():
        p = project_root() / p
    if not p.exists():
        raise SpecError(f"expectations file not found: {path} (spec {spec.name!r})")
    text = p.read_text()
    try:
        parsed = _ExpectationsFile.model_validate(yaml.safe_load(text) or {})
    except (yaml.YAMLError, ValidationError) as exc:
        raise SpecError(f"invalid expectations file {p}: {exc}") from None
    declared = {c.name for c in spec.columns}
    known = declared | set(helper_columns(spec))
    for i, entry in enumerate(parsed.expectations):
        _check_entry(i, entry, spec, known, str(p))
    undeclared = sorted(set(parsed.null_share) - declared)
    if undeclared:
        raise SpecError(f"expectations file {p}: null_share names undeclared columns {undeclared}")
    unbanded = [c for c in spec.feature_names if c not in parsed.null_share]
    if unbanded:
        raise SpecError(f"expectations file {p}: null_share has no band for feature columns {unbanded}")
    digest = hashlib.sha256(text.encode()).hexdigest()
    return HandWrittenExpectations(str(p), digest, tuple(parsed.expectations), dict(parsed.null_share))


def resolve_expectations(
    spec: DatasetSpec, expectations_file: str | os.PathLike[str] | HandWrittenExpectations | None
) -> HandWrittenExpectations | None:
    if isinstance(expectations_file, HandWrittenExpectations):
        return expectations_file
    path = expectations_file if expectations_file is not None else spec.expectations
    return None if path is None else load_expectations_file(path, spec)


# --------------------------------------------------------------------------------------------
# The view GX validates
# --------------------------------------------------------------------------------------------
def _is_nested(t: pa.DataType) -> bool:
    return pa.types.is_map(t) or pa.types.is_list(t) or pa.types.is_large_list(t)


def _split_columns(spec: DatasetSpec, labelled: bool) -> list[ColumnSpec]:
    return [c for c in spec.columns if labelled or c.role in (Role.id, Role.feature)]


def _view_column(col: ColumnSpec, arr: pa.ChunkedArray) -> tuple[pa.ChunkedArray, bool]:
    """(view array, type mismatch flag): nested -> length; mismatched nested -> observed type text."""
    if not _is_nested(arr.type):
        return arr, False
    if arr.type != col.arrow_type:
        text = pa.scalar(_type_text(arr.type), pa.string())
        return pc.if_else(pc.is_valid(arr), text, pa.scalar(None, pa.string())), True
    return pa.chunked_array([_lengths(c) for c in arr.chunks], pa.int64()), False


def _type_text(t: pa.DataType) -> str:
    """An Arrow type in the spec's notation (``map<string, float64>``), without field names."""
    if pa.types.is_map(t):
        return f"map<{_type_text(t.key_type)}, {_type_text(t.item_type)}>"
    if pa.types.is_list(t) or pa.types.is_large_list(t):
        return f"list<{_type_text(t.value_type)}>"
    return {pa.float64(): "float64", pa.float32(): "float32"}.get(t, str(t))


def _lengths(chunk: pa.Array) -> pa.Array:
    """Entries per value, null where the value is null (list_value_length has no MAP kernel)."""
    if pa.types.is_map(chunk.type):
        offsets = chunk.offsets  # already shifted for sliced arrays
        lengths = pc.cast(pc.subtract(offsets[1:], offsets[:-1]), pa.int64())
        return pc.if_else(chunk.is_valid(), lengths, pa.scalar(None, pa.int64()))
    return pc.cast(pc.list_value_length(chunk), pa.int64())


def _helper_arrays(spec: DatasetSpec, table: pa.Table, labelled: bool) -> dict[str, pa.ChunkedArray]:
    """Helpers for rules GX cannot express on raw columns; absent inputs leave a helper out."""
    out: dict[str, pa.ChunkedArray] = {}
    names = set(table.column_names)
    if labelled:
        for h in spec.labels.horizons:
            if h.buyer and h.revenue in names:
                try:
                    out[f"__{h.buyer}_expected"] = pc.cast(pc.greater(table[h.revenue], 0), pa.int32())
                except (pa.ArrowException, TypeError):
                    pass  # revenue of a wrong type: its type expectation reports it
    if EVENT_TS in names and pa.types.is_integer(table[EVENT_TS].type):
        grain = spec.partition.grain_hours * 3600
        out[EVENT_TS_END] = pc.add(pc.cast(table[EVENT_TS], pa.int64()), grain)
    return out


def view_table(spec: DatasetSpec, table: pa.Table, labelled: bool) -> pa.Table:
    """The view as Arrow, so per-file views concatenate without copies before one pandas convert."""
    fields, arrays = [], []
    for col in _split_columns(spec, labelled):
        if col.name not in table.column_names:
            continue  # ExpectTableColumnsToMatchSet reports it
        arr, mismatch = _view_column(col, table[col.name])
        meta = {_MISMATCH_KEY: _MISMATCH_VALUE} if mismatch else None
        fields.append(pa.field(col.name, arr.type, metadata=meta))
        arrays.append(arr)
    for name, arr in _helper_arrays(spec, table, labelled).items():
        fields.append(pa.field(name, arr.type))
        arrays.append(arr)
    return pa.Table.from_arrays(arrays, schema=pa.schema(fields))


def _view_to_pandas(view: pa.Table) -> pd.DataFrame:
    """Ints/bools as nullable pandas dtypes so nulls stay nulls and the dtype matches the file."""
    df = view.to_pandas(types_mapper=_INT_DTYPES.get, split_blocks=True)
    for f in view.schema:
        if f.metadata and f.metadata.get(_MISMATCH_KEY) == _MISMATCH_VALUE:
            # object dtype: GX's type check then runs per value and lists the observed type text
            df[f.name] = pd.Series(df[f.name].to_numpy(dtype=object, na_value=None), dtype=object)
    return df


def concat_views(views: list[pa.Table]) -> pd.DataFrame:
    if not views:
        raise DataError("no staged files to validate")
    try:
        return _view_to_pandas(pa.concat_tables(views))
    except pa.ArrowInvalid:  # files disagree on a type: keep each file's own view types
        return pd.concat([_view_to_pandas(v) for v in views], ignore_index=True)


def validation_frame(spec: DatasetSpec, table: pa.Table, labelled: bool) -> pd.DataFrame:
    """A compact, GX-friendly view of staged rows, built with vectorised Arrow compute.

    - id, labels and scalar features as they are (strings as pandas strings, integers and bools
      as nullable pandas dtypes), so the type checks see the file's real types;
    - MAP/LIST columns as their number of entries (nullable Int64; null where the value is null,
      0 for an empty map); a nested column whose Arrow type differs from the spec holds the
      observed type as text instead, so its type expectation fails naming that type;
    - helper columns (see :func:`helper_columns`) for cross-column rules.
    Spec columns missing from ``table`` are left out; ``ExpectTableColumnsToMatchSet`` reports them.
    """
    return _view_to_pandas(view_table(spec, table, labelled))


# --------------------------------------------------------------------------------------------
# Suite
# --------------------------------------------------------------------------------------------
def _view_type(t: pa.DataType) -> str:
    """The type name GX reports for a column of Arrow type ``t`` in the view."""
    if _is_nested(t):
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
        note = f"Arrow type {c.type}" + (" (the view holds its length)" if _is_nested(c.arrow_type) else "")
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
        if any(c not in present and c not in helpers for c in _referenced_columns(entry.kwargs)):
            continue  # outcome columns on an unlabelled split
        meta = {"source": hw.source, **({"notes": entry.notes} if entry.notes else {})}
        out.append(_expectation_class(entry.type)(**entry.kwargs, meta=meta))
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
    columns = _split_columns(spec, labelled)
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


# --------------------------------------------------------------------------------------------
# Report
# --------------------------------------------------------------------------------------------
class Failure(NamedTuple):
    """One failed expectation, in the words an on-call engineer needs."""

    split: str
    expectation: str
    column: str
    observed: Any
    examples: list[Any]
    unexpected_count: int | None
    detail: str


def _columns_of(kwargs: Mapping[str, Any]) -> str:
    return ", ".join(_referenced_columns(kwargs))


def _exception_text(info: Mapping[str, Any]) -> str | None:
    """GX nests exception info per metric; return the first message, if anything raised."""
    if info.get("raised_exception"):
        return str(info.get("exception_message") or "exception")
    for v in info.values():
        if isinstance(v, Mapping) and v.get("raised_exception", True) and v.get("exception_message"):
            return str(v["exception_message"]).splitlines()[0]
    return None


def _describe(
    kwargs: Mapping[str, Any], meta: Mapping[str, Any], result: Mapping[str, Any], exc: str | None
) -> str:
    """A short sentence about what was expected and what was seen."""
    if exc:
        return f"could not be evaluated: {exc}"
    observed = result.get("observed_value")
    missing = ((result.get("details") or {}).get("mismatched") or {}).get("missing")
    if missing:
        return f"missing columns {sorted(missing)}"
    if "null_share_band" in meta and isinstance(observed, (int, float)):
        lo, hi = meta["null_share_band"]
        return f"null share {1 - observed:.4f} outside band [{lo:g}, {hi:g}]"
    skip = ("column", "column_A", "column_B", "batch_id")
    expected = {k: kwargs[k] for k in sorted(kwargs) if k not in skip}
    parts = [f"expected {expected}"] if expected else []
    if observed is not None:
        parts.append(f"observed {observed!r}")
    if result.get("unexpected_count") is not None:
        parts.append(
            f"{result['unexpected_count']} unexpected of {result.get('element_count')} rows"
            f" ({(result.get('unexpected_percent') or 0):.3g}% of non-null values)"
        )
    return "; ".join(parts)


def _failure(split: str, r: Mapping[str, Any]) -> Failure:
    cfg = r.get("expectation_config") or {}
    kwargs, meta = cfg.get("kwargs") or {}, cfg.get("meta") or {}
    result = r.get("result") or {}
    exc = _exception_text(r.get("exception_info") or {})
    examples = list(result.get("partial_unexpected_list") or [])[:MAX_EXAMPLES]
    return Failure(
        split=split,
        expectation=_class_name(cfg.get("type", "?")),
        column=_columns_of(kwargs),
        observed=result.get("observed_value"),
        examples=examples,
        unexpected_count=result.get("unexpected_count"),
        detail=_describe(kwargs, meta, result, exc),
    )


def _class_name(snake: str) -> str:
    """GX stores ``expect_column_to_exist``; people and the YAML use ``ExpectColumnToExist``."""
    return "".join(p.capitalize() for p in snake.split("_")) if "_" in snake else snake


@dataclass
class ValidationReport:
    """Outcome of validating every split: JSON-able results, failures, and data docs HTML."""

    success: bool
    results: dict[str, dict[str, Any]]
    splits: dict[str, dict[str, Any]] = field(default_factory=dict)
    html: dict[str, bytes] = field(default_factory=dict, repr=False)

    @property
    def evaluated(self) -> int:
        return sum(len(r.get("results", [])) for r in self.results.values())

    @property
    def failed(self) -> int:
        return sum(1 for r in self.results.values() for x in r.get("results", []) if not x.get("success"))

    def failures(self) -> list[Failure]:
        """Failed expectations by split, table-level first, then by column (GX's order is not stable)."""
        out = [
            _failure(split, r)
            for split, res in self.results.items()
            for r in res.get("results", [])
            if not r.get("success")
        ]
        return sorted(out, key=lambda f: (f.split, f.column != "", f.column, f.expectation))

    def summary(self) -> str:
        """Readable text for the task's error message: every failure, with example values."""
        fails = self.failures()
        if not fails:
            return f"validation passed: {self.evaluated} expectations on splits {sorted(self.results)}"
        bad_splits = sorted({f.split for f in fails})
        lines = [
            f"validation failed: {len(fails)} of {self.evaluated} expectations failed in splits {bad_splits}"
        ]
        for split in bad_splits:
            lines += _split_lines(split, [f for f in fails if f.split == split], self.splits.get(split, {}))
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        return {
            "success": self.success,
            "evaluated": self.evaluated,
            "failed": self.failed,
            "splits": self.splits,
            "failures": [f._asdict() for f in self.failures()],
            "summary": self.summary(),
            "results": self.results,
            "data_docs": sorted(self.html),
        }


def _split_lines(split: str, fails: list[Failure], info: Mapping[str, Any]) -> list[str]:
    """Lines for one split; an empty split reports that alone, not every check it then fails."""
    empty = [f for f in fails if f.expectation == "ExpectTableRowCountToBeBetween" and f.observed == 0]
    if empty:
        return [f"  [{split}] split is empty (0 rows): ExpectTableRowCountToBeBetween failed; "
                f"{len(fails) - 1} further failures on it omitted (see result.json)"]
    lines = []
    for f in fails:
        line = f"  [{split}] {f.expectation} on {f.column or '<table>'}: {f.detail}"
        if f.examples:
            line += f"; examples: {f.examples}"
        lines.append(line)
    keys = info.get("keys") or {}
    if keys.get("duplicate_ids") or keys.get("null_ids"):
        lines.append(
            f"  [{split}] whole split before sampling: {keys.get('rows')} rows, {keys.get('duplicate_ids')} "
            f"duplicated ids on {keys.get('duplicate_rows')} rows, {keys.get('null_ids')} null ids"
        )
    return lines


# --------------------------------------------------------------------------------------------
# Running GX
# --------------------------------------------------------------------------------------------
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
    """Run one GX validation per split (frames from :func:`validation_frame`) and build data docs.

    ``frames`` maps split -> (view, labelled). ``split_info`` is merged into the report's per-split
    record (rows before sampling, whole-split key counts). One GX context serves every split.
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
