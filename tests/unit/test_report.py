"""ltv_core.report: the self-contained HTML report and the metrics.json the "LTV runs" page reads."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from ltv_core import metrics
from ltv_core.runs_view import build_view, summarize_run
from ltv_core.report import METRIC_COLUMNS, ReportInputs, build_report, json_safe, score
from ltv_core.stages.promote import write_report
from ltv_core.store import ArtifactStore, safe_run_id

RUN = "scheduled__2025-11-04T03:00:00+00:00"
CHAMP = "scheduled__2025-11-03T03:00:00+00:00"
SECTIONS = ("Promotion decision", "Metrics: model vs champion", "Cumulative gain", "Calibration of p_buyer",
            "Predicted vs actual by decile", "Feature importance", "Drift: scoring window vs training window",
            "Per-horizon metrics", "Training stages")


def _inputs(n: int = 600, seed: int = 0, *, zeros: bool = False, full: bool = True, run_id: str = RUN) -> ReportInputs:
    """Zero-inflated revenue (~8% buyers, lognormal spend) and noisy predictions of it."""
    rng = np.random.default_rng(seed)
    signal = rng.normal(size=n)
    p_true = 1 / (1 + np.exp(-(signal * 1.5 - 3.0)))
    buyer = rng.random(n) < p_true
    y = np.where(buyer, np.exp(rng.normal(1.0 + 0.5 * signal, 1.0)), 0.0)
    if zeros:
        y = np.zeros(n)
    p = np.clip(p_true * rng.uniform(0.7, 1.3, n), 0, 1)
    value = p * np.exp(1.5 + 0.5 * signal)
    point = np.expm1(p * (1.0 + 0.5 * signal).clip(0))
    baselines = {"zero": np.zeros(n), "mean": np.full(n, 0.4),
                 "lgbm_log1p": point * rng.uniform(0.5, 1.5, n)}
    evaluation = {"rows": n, "horizons": {"d7": {"point": {"rmsle": 0.4, "gini": 0.5},
                                                 "value": {"rmsle": 0.6, "gini": float("nan")}}},
                  "classifier": {"auc": 0.8},
                  "rmsle_diff_ci": {"metric": "rmsle", "diff": -0.01, "lo": -0.02, "hi": -0.001, "level": 0.95,
                                    "n_boot": 100, "seed": 0, "excludes_zero": True},
                  "best_baseline_rmsle": "lgbm_log1p", "arr": np.arange(3), "inf": float("inf")}
    extra: dict[str, Any] = {}
    if full:
        extra = dict(champion={"run_id": CHAMP, "metrics": {"rmsle": 0.55, "gini": 0.1},
                               "value": value * rng.uniform(0.8, 1.2, n)},
                     decision={"run_id": run_id, "promoted": False, "primary_metric": "rmsle", "tolerance": 0.0,
                               "reason": "rejected: rmsle worse than champion <b>", "champion_run_id": CHAMP,
                               "decided_at": "2025-11-04T04:00:00+00:00"},
                     oracle={"oracle_point": np.expm1(p_true * (1.0 + 0.5 * signal).clip(0)),
                             "oracle_mean": p_true * np.exp(1.5 + 0.5 * signal)})
    return ReportInputs(
        run_id=run_id, logical_date="2025-11-04T03:00:00+00:00", primary="d7", primary_metric="rmsle",
        y_true=y, point=point, value=value, p_buyer=p, baselines=baselines, evaluation=evaluation,
        feature_importance={f"f{i}": float(100 - i) for i in range(40)},
        stage_info={"classifier": {"calibration": "beta"}, "gate": {"log_scale": 1.05},
                    "stacker": {"chosen": "hurdle"}},
        **extra)


def _strict(text: str) -> Any:
    def refuse(c: str) -> None:
        raise ValueError(f"non-strict JSON constant {c}")
    return json.loads(text, parse_constant=refuse)


def test_html_has_every_section_and_embedded_plots() -> None:
    page, doc = build_report(_inputs())
    for section in SECTIONS:
        assert section in page
    images = re.findall(r'<img src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)
    assert len(images) >= 4
    assert all(img.startswith("iVBOR") for img in images), "PNG signature"
    assert "<script" not in page and "http://" not in page and "https://" not in page, "self-contained, no JS"
    assert RUN in page and "2025-11-04T03:00:00+00:00" in page and CHAMP in page
    assert "not promoted" in page and "rejected: rmsle worse than champion &lt;b&gt;" in page
    assert "beta" in page and "log_scale" in page, "stage info summary"
    assert "pred_d7" in page and "value_d7" in page, "says which column each metric uses"


def test_model_block_uses_point_for_errors_and_value_for_ranking() -> None:
    inp = _inputs()
    _, doc = build_report(inp)
    model = doc["metrics"]["model"]
    assert model["rmsle"] == pytest.approx(metrics.rmsle(inp.y_true, inp.point))
    assert model["r2"] == pytest.approx(metrics.r2(inp.y_true, inp.point))
    assert model["gini"] == pytest.approx(metrics.normalized_gini(inp.y_true, inp.value))
    assert model["top10_share"] == pytest.approx(metrics.top_share(inp.y_true, inp.value, 0.1))
    assert model["whales_missed_top10"] == pytest.approx(metrics.whales_missed(inp.y_true, inp.value))
    assert model["auc"] == pytest.approx(metrics.roc_auc((inp.y_true > 0).astype(float), inp.p_buyer))
    assert doc["metric_columns"] == METRIC_COLUMNS and METRIC_COLUMNS["rmsle"] == "point"
    base = doc["metrics"]["baselines"]["lgbm_log1p"]
    full = metrics.evaluate(inp.y_true, inp.baselines["lgbm_log1p"])
    assert {k: base[k] for k in full if k in base} == pytest.approx({k: full[k] for k in full if k in base})
    oracle = doc["metrics"]["oracle"]
    assert oracle["rmsle"] == pytest.approx(metrics.rmsle(inp.y_true, inp.oracle["oracle_point"]))
    assert oracle["gini"] == pytest.approx(metrics.normalized_gini(inp.y_true, inp.oracle["oracle_mean"]))
    champ = doc["metrics"]["champion"]
    assert champ["rmsle"] == 0.55, "given champion metrics are kept"
    assert champ["gini"] == pytest.approx(metrics.normalized_gini(inp.y_true, inp.champion["value"]))
    assert doc["evaluation"]["arr"] == [0, 1, 2] and doc["evaluation"]["inf"] is None
    assert doc["evaluation"]["horizons"]["d7"]["value"]["gini"] is None


def test_metrics_json_round_trips_through_the_runs_view(tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path / "store")
    store.commit_stage(RUN, "ingest", {"stage": "ingest", "run_id": RUN, "started_at": "2025-11-04T03:00:00+00:00",
                                       "seconds": 1.0, "inputs": {"logical_date": "2025-11-04T03:00:00+00:00"}})
    inp = _inputs()
    uris = write_report(store, RUN, inp)
    assert set(uris) == {"report.html", "metrics.json"}
    folder = store.stage_dir(RUN, "report")
    doc = _strict(store.read_text(f"{folder}/metrics.json"))
    assert doc["run_id"] == RUN and doc["primary_metric"] == "rmsle" and doc["primary_horizon"] == "d7"
    assert set(doc["metrics"]) == {"model", "champion", "candidates", "baselines", "oracle"}
    assert store.read_text(f"{folder}/report.html").startswith("<!DOCTYPE html>")

    run = summarize_run(store, safe_run_id(RUN))
    assert run.metrics is not None and run.metrics.name == "rmsle" and not run.metrics.higher_is_better
    assert run.metrics.model == pytest.approx(doc["metrics"]["model"]["rmsle"])
    assert run.metrics.champion == 0.55
    best = min(doc["metrics"]["baselines"], key=lambda k: doc["metrics"]["baselines"][k]["rmsle"])
    assert run.metrics.best_baseline == best
    assert run.metrics.baseline == pytest.approx(doc["metrics"]["baselines"][best]["rmsle"])
    assert {"report.html", "metrics.json"} <= run.artefacts and run.problems == ()
    assert build_view(store.url).runs[0].logical_date == "2025-11-04T03:00:00+00:00"
    with pytest.raises(ValueError, match="cannot be written"):
        write_report(store, CHAMP, inp)


def test_text_is_escaped() -> None:
    evil = "run<script>alert(1)</script>&"
    inp = _inputs(run_id=evil)
    inp.stage_info["<img src=x onerror=alert(2)>"] = "</code><script>x</script>"
    inp.feature_importance["<script>f</script>"] = 1e6
    page, doc = build_report(inp)
    assert "<script" not in page.lower() and "<img src=x" not in page
    assert "run&lt;script&gt;alert(1)&lt;/script&gt;&amp;" in page
    assert doc["run_id"] == evil


def test_without_champion_oracle_or_decision() -> None:
    page, doc = build_report(_inputs(full=False))
    _strict(json.dumps(doc, allow_nan=False))
    m = doc["metrics"]
    assert m["champion"] is None and m["oracle"] is None and doc["decision"] is None
    assert "No promotion decision" in page and "no champion" in page
    assert len(re.findall(r"data:image/png;base64,", page)) >= 4


def test_all_zero_holdout_gives_nulls_not_a_crash(tmp_path: Path) -> None:
    inp = _inputs(zeros=True)
    page, doc = build_report(inp)
    text = json.dumps(doc, allow_nan=False)
    model = _strict(text)["metrics"]["model"]
    for undefined in ("gini", "top10_share", "whales_missed_top10", "calibration_ratio", "auc"):
        assert model[undefined] is None, undefined
    assert model["rmsle"] == pytest.approx(metrics.rmsle(inp.y_true, inp.point)) and model["mean_true"] == 0.0
    assert model["r2"] is None, "-inf on a constant target is not JSON"
    assert "undefined: the holdout has no revenue" not in page or len(re.findall(r"base64,", page)) >= 4
    assert len(re.findall(r"data:image/png;base64,", page)) >= 4
    write_report(ArtifactStore(tmp_path / "s"), RUN, inp)


def test_bad_inputs_fail_loudly() -> None:
    inp = _inputs()
    inp.point = inp.point[:-1]
    with pytest.raises(ValueError, match="point has"):
        build_report(inp)
    inp = _inputs()
    inp.baselines["mean"] = np.full(len(inp.y_true), np.nan)
    with pytest.raises(ValueError, match="baseline mean"):
        build_report(inp)


def test_score_and_json_safe_helpers() -> None:
    y = np.array([0.0, 0.0, 5.0, 1.0])
    s = score(y, np.array([0.0, 0.1, 2.0, 0.5]))
    assert s["rows"] == 4 and s["gini"] == pytest.approx(1.0) and "auc" not in s
    assert json_safe({"a": np.float32(1.5), "b": (np.nan, np.int64(2)), 3: {"c": -math.inf}}) == {
        "a": 1.5, "b": [None, 2], "3": {"c": None}}


def _drift_doc(flagged: bool) -> dict[str, Any]:
    """A real drift report (ltv_core.drift) of two features, one shifted, and the predictions."""
    from ltv_core import drift as D

    rng = np.random.default_rng(1)
    a, b = rng.normal(size=3000), rng.normal(1.5 if flagged else 0.0, 1.0, 3000)
    rows = [D.numeric_drift("shifted<b>", a, b), D.numeric_drift("steady", a, rng.normal(size=3000))]
    pred = D.prediction_drift(np.abs(a), np.abs(b), column="value_d7", reference_name="champion",
                              reference_run_id=CHAMP)
    return D.assess(rows, pred, D.Thresholds()).model_dump(mode="json")


def test_drift_section_with_plots_and_metrics_json_key() -> None:
    plain, _ = build_report(_inputs())
    inp = _inputs()
    inp.drift = _drift_doc(flagged=True)
    page, doc = build_report(inp)
    assert "drift flagged" in page and "shifted&lt;b&gt;" in page and "prediction PSI" in page
    assert len(re.findall(r"data:image/png;base64,", page)) == len(re.findall(r"data:image/png;base64,", plain)) + 2
    text = json.dumps(doc, allow_nan=False)
    assert _strict(text)["drift"]["flagged"] is True and doc["drift"]["flagged_features"] == ["shifted<b>"]
    inp.drift = _drift_doc(flagged=False)
    page, doc = build_report(inp)
    assert "within thresholds" in page and doc["drift"]["flagged"] is False
    assert "No drift measured for this run" in plain


def test_a_candidate_strategy_is_a_row_of_the_metrics_table_judged_like_the_model() -> None:
    """The cohort model (or any candidate) gets its RMSLE from its point column and its Gini from
    its value column, exactly like the stack, and shows as kind "candidate"."""
    import dataclasses

    inp = _inputs()
    point, value = inp.point * 0.9, inp.value[::-1].copy()
    html, doc = build_report(dataclasses.replace(inp, candidates={"cohorts": (point, value)}))
    block = doc["metrics"]["candidates"]["cohorts"]
    assert block["rmsle"] == pytest.approx(metrics.rmsle(inp.y_true, point))
    assert block["gini"] == pytest.approx(metrics.normalized_gini(inp.y_true, value))
    row = re.search(r"<tr[^>]*>\s*<td>\s*cohorts\s*</td>\s*<td>candidate</td>", html)
    assert row, "the metrics table has no candidate row for cohorts"


def test_the_candidates_race_is_shown_with_its_evidence_and_winner() -> None:
    import dataclasses

    ci = {"metric": "rmsle", "diff": -0.02, "lo": -0.03, "hi": -0.01, "level": 0.95, "n_boot": 100, "seed": 0}
    race = {"enabled": True, "winners": {"point": "lgbm_log1p", "value": "stack"}, "margin": {"rmsle": 0.0},
            "point": {"metric": "rmsle", "winner": "lgbm_log1p", "candidates": {
                "stack": {"rmsle": 0.41}, "lgbm_log1p": {"rmsle": 0.39, "diff_vs_stack_ci": ci,
                                                         "significantly_better": True}}},
            "value": {"metric": "gini", "winner": "stack", "candidates": {"stack": {"gini": 0.7}}}}
    inp = _inputs()
    html, _ = build_report(dataclasses.replace(inp, stage_info={"fit_stacker": {"chosen": "hurdle", "race": race}}))
    assert "point pred_d7 ← <b>lgbm_log1p</b>" in html and "value value_d7 ←\n<b>stack</b>" in html
    assert re.search(r"<td>point</td><td>rmsle</td><td>lgbm_log1p</td><td>0.3900</td><td>-0.0200</td>"
                     r"<td>-0.0300</td><td>-0.0100</td><td>yes</td><td>✔</td>", html)
    assert "<b>model</b> <small>(point ← lgbm_log1p)</small>" in html  # the metrics table names it too
    html2, _ = build_report(inp)
    assert "No candidates race was recorded" in html2


def test_prediction_intervals_section_shows_coverage_and_plot() -> None:
    import dataclasses

    inp = _inputs()
    ev = {**inp.evaluation, "intervals": {
        "coverage": {"0.1": 0.11, "0.5": 0.49, "0.9": 0.93}, "max_abs_error": 0.03,
        "curve": {"levels": [0.1, 0.5, 0.9], "coverage": [0.11, 0.49, 0.93]},
        "whale": {"threshold": 12.5, "mean_probability": 0.02, "observed_share": 0.021}}}
    html, _ = build_report(dataclasses.replace(inp, evaluation=ev))
    assert "<td>q90</td><td>0.9300</td><td>0.0300</td>" in html
    assert 'alt="coverage of the revenue quantiles"' in html and "P(revenue &gt; 12.5000)" in html
    assert "No prediction intervals for this run" in build_report(inp)[0]
