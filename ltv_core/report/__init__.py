"""Holdout evaluation report of one training run: one self-contained HTML file plus metrics.json.

Why one file: the report is served from the artefact store by the "LTV runs" page inside a sandbox
(no session, no external requests), and reviewers download and mail it; so every plot is a base64
PNG inside the HTML, there is no JavaScript and the page forbids scripts via its own CSP.

Why metrics.json: the UI (``ltv_core.runs_view._metrics``) reads the primary metric of the
model, the baselines and the champion from ``metrics["model"|"baselines"|"champion"]``; the model
block is scored the way docs/MODELS.md scores the stack: error metrics on the RMSLE point column
(``pred_<h>``), ranking and totals on the expected-value column (``value_<h>``), classifier
metrics on ``p_buyer``. Baselines and oracles have one column and are scored on it for all.

Undefined metrics (all-zero holdout: no Gini, no whales, no AUC) are ``null``, never NaN: the file
is strict JSON. Every metric comes from ``ltv_core.metrics``; nothing is recomputed here.

Modules: ``build`` (inputs, metric blocks, the page), ``plots`` (matplotlib PNGs),
``templates/report.html.j2`` (the page, Jinja2 with autoescape: every text from the inputs is
escaped).
"""

from ltv_core.report.build import METRIC_COLUMNS, ReportInputs, build_report, json_safe, score

__all__ = ["METRIC_COLUMNS", "ReportInputs", "build_report", "json_safe", "score"]
