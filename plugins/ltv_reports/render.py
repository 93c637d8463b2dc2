"""HTML for the "LTV runs" page: Jinja2 with autoescaping plus small display filters. No Airflow import."""

from __future__ import annotations

from functools import cache
from pathlib import Path
from urllib.parse import quote

from jinja2 import Environment, FileSystemLoader, select_autoescape

from ltv_core.runs_view import RunsView
from ltv_core.timeutil import try_parse_time

TEMPLATES = Path(__file__).resolve().parent / "templates"
DASH = "\u2014"

# Link labels of a run's artefacts, in the order shown; data docs are linked to their index page.
LINKS: tuple[tuple[str, str, str], ...] = (
    ("report.html", "report", "report.html"),
    ("metrics.json", "metrics", "metrics.json"),
    ("decision.json", "decision", "decision.json"),
    ("data_docs", "data docs", "data_docs/index.html"),
    ("validation.json", "validation result", "validation.json"),
    ("drift.json", "drift", "drift.json"),
)


def fmt_metric(value: float | None) -> str:
    return DASH if value is None else f"{value:.4f}"


def fmt_time(value: str | None) -> str:
    """ISO time as 'YYYY-MM-DD HH:MM UTC' (a naive time is UTC); anything unparseable is shown as
    it is."""
    if not value:
        return DASH
    parsed = try_parse_time(value)
    return value if parsed is None else parsed.strftime("%Y-%m-%d %H:%M UTC")


def fmt_seconds(value: float | None) -> str:
    return "" if value is None else f"{value:.1f} s"


def url_segment(value: str) -> str:
    """One path segment (an Airflow run id has ':' and '+')."""
    return quote(value, safe="")


@cache
def _environment() -> Environment:
    env = Environment(loader=FileSystemLoader(str(TEMPLATES)), autoescape=select_autoescape(["html"]),
                      trim_blocks=True, lstrip_blocks=True)
    env.filters.update(metric=fmt_metric, time=fmt_time, seconds=fmt_seconds, segment=url_segment)
    return env


def render_runs(view: RunsView, dag_id: str, error: str | None = None) -> str:
    """The page; links are relative to it, so it works under any api-server base URL."""
    return _environment().get_template("runs.html").render(view=view, dag_id=dag_id, links=LINKS,
                                                           error=error)
