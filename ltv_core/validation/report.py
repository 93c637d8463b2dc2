"""The outcome of a validation in the words an on-call engineer needs.

Why it exists: GX's result JSON is long and nested. :class:`ValidationReport` keeps it whole (it is
written to ``result.json``) and turns each failed expectation into a :class:`Failure` naming the
split, the expectation, the column, example values and a one-line detail; :meth:`summary` is the
text of the task's error message. It works on the JSON-able result alone, so a report can be
rebuilt from a stored ``result.json`` without GX
(``tests/unit/test_validation.py::test_report_api_round_trips_from_result_json``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from ltv_core.validation.expectations import referenced_columns

MAX_EXAMPLES = 5


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
    return ", ".join(referenced_columns(kwargs))


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
