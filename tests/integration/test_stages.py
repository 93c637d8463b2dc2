"""The store-backed stages after build_features, in-process on a small generated data set:
train (every modelling stage), evaluate, promote (+ report), score; determinism and idempotency;
champion/challenger with a deliberately worse model; failures recorded, never shipped."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
import yaml
from support.configs import small_pipeline_config

from ltv_core import catalog, cli
from ltv_core.context import make_context
from ltv_core.errors import DataError, ValidationFailed
from ltv_core.models import artefacts
from ltv_core.pipeline import REPORT_DIR, STAGES, TRAINING_STAGES, Stage
from ltv_core.promotion import read_champion
from ltv_core.inprocess import run_stages
from ltv_core.store import ArtifactStore, safe_run_id

LOGICAL = "2025-10-31T00:00:00+00:00"
WINDOWS = {
    "train_start": "2025-10-01T00:00", "train_end": "2025-10-02T00:00",
    "validation_start": "2025-10-02T00:00", "validation_end": "2025-10-02T08:00",
    "holdout_start": "2025-10-02T08:00", "holdout_end": "2025-10-02T16:00",
}


def run(run_id: str, params: dict, *stages: str) -> dict:
    """The named stages in order (``train``: every training stage), in this process, as the CLI
    runs them; the result of a single stage, else every result by stage name."""
    order = [s for name in stages for s in (TRAINING_STAGES if name == "train" else (Stage(name),))]
    results = run_stages(make_context(run_id, LOGICAL, params), order)
    return results[order[0].value] if len(stages) == 1 and stages[0] != "train" else results


@pytest.fixture(scope="module")
def base(tmp_path_factory) -> dict:
    """Data, a pipeline config with an in-process Dask cluster, and a store whose run 'base' has
    gone through ingest, validate and build_features (copied by each test that needs it)."""
    from ltv_core.synthetic import generate_dataset

    root = tmp_path_factory.mktemp("stages")
    data = root / "data"
    generate_dataset(data, seed=11, rows_per_partition=150, train_hours=40, test_hours=6)
    config = small_pipeline_config(root, dask={"n_workers": 1, "threads_per_worker": 2, "processes": False})
    store = root / "store"
    params = {"config": str(config), "data_root": str(data), "store_root": str(store), **WINDOWS}
    run("base", params, *STAGES[:3])
    return {"root": root, "data": data, "store": store, "params": params}


def fresh(base: dict, tmp_path: Path, **overrides) -> tuple[dict, ArtifactStore]:
    """A copy of the featurised store for one test (tests never share champions)."""
    store = tmp_path / "store"
    shutil.copytree(base["store"], store)
    params = {**base["params"], "store_root": str(store), **overrides}
    return params, ArtifactStore(str(store))


def clone_run(store: ArtifactStore, src: str, dst: str) -> None:
    """Another run on the same windows: the featurised stages copied under a new run id."""
    s = Path(store.root) / "runs"
    shutil.copytree(s / src, s / dst)
    for manifest in (s / dst).glob("*/_manifest.json"):
        m = json.loads(manifest.read_text())
        m["run_id"] = dst
        manifest.write_text(json.dumps(m))
    # feature-file paths in the build_features manifest point to the source run's copies (read-only)


def worse_models_config(tmp_path: Path) -> str:
    """A deliberately weak model: one boosting round, no stacker, and a gate that zeroes 99.9% of
    the rows (about the predict-zero baseline, which a trained stack beats)."""
    raw = yaml.safe_load((Path(__file__).resolve().parents[2] / "config/models.yaml").read_text())
    raw["evaluation"]["n_boot"] = 100
    raw["num_boost_round"] = 1
    raw["lgbm"]["learning_rate"] = 0.001
    raw["stacker"]["enabled"] = False
    raw["gate"]["target_zero_rate"] = 0.999
    path = tmp_path / "worse.yaml"
    path.write_text(yaml.safe_dump(raw))
    return str(path)


def test_train_evaluate_promote_score(base, tmp_path):
    params, store = fresh(base, tmp_path, submission_csv=True)
    trained = run("base", params, "train")
    assert set(trained) == set(TRAINING_STAGES)
    for stage in TRAINING_STAGES:
        assert store.is_committed("base", stage)

    stack = artefacts.load_stack(store, "base")
    X, _ = catalog.load_feature_matrix(store, "base", "holdout")
    pred = stack.predict(X)
    P = pred[[f"pred_{h}" for h in ("d7", "d14", "d28")]].to_numpy()
    assert (np.diff(P, axis=1) >= -1e-12).all(), "horizons must stay ordered for every row"

    ev = run("base", params, "evaluate")
    edir = Path(store.stage_dir("base", "evaluate"))
    table = (edir / "baselines.md").read_text()
    for name in ("stack_point", "zero", "mean", "lgbm_log1p", "lgbm_tweedie", "oracle_point"):
        assert f"| {name} |" in table
    assert json.loads((edir / "baselines.json").read_text())["kinds"]["oracle_point"] == "oracle"
    assert ev["champion_run_id"] is None and 0 < ev["rmsle"] < 1

    decision = run("base", params, "promote")
    assert decision["promoted"] and read_champion(store)["run_id"] == "base"
    report = Path(decision["report"]["report.html"]).read_text()
    assert "base" in report and report.count("data:image/png;base64,") >= 4
    metrics = json.loads(Path(decision["report"]["metrics.json"]).read_text())
    assert metrics["metrics"]["model"]["rmsle"] == pytest.approx(ev["rmsle"])

    scored = run("base", params, "score")
    preds = pd.read_parquet(scored["predictions"])
    assert len(preds) == scored["rows"] == store.read_manifest("base", "ingest")["outputs"]["scoring"]["rows"]
    assert set(preds["model_run_id"]) == {"base"}
    assert {"row_id", "p_buyer", "pred_d7", "pred_d14", "pred_d28", "value_d7"} <= set(preds.columns)
    parts = sorted(p.name for p in Path(scored["predictions"]).iterdir())
    assert parts and all(p.startswith("datetime=") for p in parts)
    csv_text = Path(scored["submission_csv"]).read_text()
    assert csv_text.startswith("row_id,iap_revenue_d7\n")
    csv = pd.read_csv(scored["submission_csv"], dtype={"row_id": str})
    assert list(csv.columns) == ["row_id", "iap_revenue_d7"] and len(csv) == len(preds)
    # the rows of the predictions, in partition order, the values exactly (shortest round-trip text)
    assert csv["row_id"].tolist() == preds["row_id"].astype(str).tolist()
    np.testing.assert_array_equal(csv["iap_revenue_d7"].to_numpy(), preds["pred_d7"].to_numpy())
    # the stage scored on Dask workers, each file as one task; the same predictions as in-process
    assert scored["workers"] >= 1 and set(scored["task_seconds"]) == {"read", "features", "predict", "write"}
    assert not scored["on_cluster"]  # a few thousand rows: scored in the task's own process
    from ltv_core.scoring import Scorer, stream_predictions
    from ltv_core.spec import load_spec

    in_process = pd.concat([p for _, p in stream_predictions(
        store, "base", Scorer.load(store, "base", load_spec("config/datasets/smadex_d7.yaml")))], ignore_index=True)
    pd.testing.assert_frame_equal(preds[list(in_process.columns)].reset_index(drop=True), in_process,
                                  check_dtype=False, check_categorical=False, check_exact=True)

    # deterministic and idempotent: re-running the same run writes byte-identical models and
    # gives identical predictions
    models = {(s, n): (Path(store.stage_dir("base", s)) / n).read_bytes()
              for s, n in (("train_classifier", "classifier.json"), ("train_regressor", "regressor.json"),
                           ("optimize_gate", "gate.json"))}
    run("base", params, "train")
    for (s, n), blob in models.items():
        assert (Path(store.stage_dir("base", s)) / n).read_bytes() == blob, s
    run("base", params, "evaluate")
    again = run("base", params, "promote")
    assert again["promoted"], again["reason"]  # it competes with itself: equal is not worse
    rescored = pd.read_parquet(run("base", params, "score")["predictions"])
    pd.testing.assert_frame_equal(preds, rescored)


def test_worse_model_is_not_promoted_and_champion_keeps_scoring(base, tmp_path):
    params, store = fresh(base, tmp_path)
    run("base", params, "train", "evaluate", "promote")
    champion_before = read_champion(store)

    clone_run(store, "base", "weak")
    for stage in TRAINING_STAGES + (Stage.EVALUATE, Stage.PROMOTE, Stage.SCORE, "report"):
        store.rm(store.stage_dir("weak", stage))
    weak = {**params, "models_config": worse_models_config(tmp_path)}
    run("weak", weak, "train")
    ev = run("weak", weak, "evaluate")
    assert ev["champion_run_id"] == "base"
    decision = run("weak", weak, "promote")
    assert not decision["promoted"]
    assert "rejected" in decision["reason"] and "base" in decision["reason"]
    assert read_champion(store) == champion_before
    recorded = store.read_json(f"{store.stage_dir('weak', 'promote')}/decision.json")
    assert recorded["promoted"] is False and recorded["champion"]["rmsle"] < recorded["candidate"]["rmsle"]
    # the report shows the run beside the champion
    metrics = json.loads(Path(decision["report"]["metrics.json"]).read_text())
    assert metrics["metrics"]["champion"]["rmsle"] == pytest.approx(recorded["champion"]["rmsle"])

    scored = run("weak", weak, "score")
    assert scored["model_run_id"] == "base"
    assert set(pd.read_parquet(scored["predictions"])["model_run_id"]) == {"base"}


def test_failed_run_is_recorded_never_shipped(base, tmp_path):
    params, store = fresh(base, tmp_path)
    run("base", params, "resample", "train_classifier", "train_regressor", "train_baselines",
        "fit_stacker")  # then optimize_gate "failed"
    decision = run("base", params, "promote")
    assert not decision["promoted"]
    assert "optimize_gate" in decision["reason"] and "evaluate" in decision["reason"]
    assert read_champion(store) is None
    assert decision["report"] is None
    with pytest.raises(DataError, match="no champion"):
        run("base", params, "score")


def test_score_stage_on_worker_processes(base, tmp_path):
    """The score stage's tasks on two worker processes (the default LocalCluster shape): the
    scorer, its pruned plan included, is pickled to them; the predictions equal the in-process
    ones. A file that cannot be read fails the stage, naming it, and nothing is committed."""
    import pickle

    from ltv_core.cluster import scheduler_address
    from ltv_core.config import DaskConfig
    from ltv_core.scoring import Scorer, stream_predictions
    from ltv_core.spec import load_spec
    from ltv_core.stages.score import score_partitions as run_score_stage

    params, store = fresh(base, tmp_path)
    run("base", params, "train")
    spec = load_spec("config/datasets/smadex_d7.yaml")
    scorer = Scorer.load(store, "base", spec, threads=1)
    staged = store.read_manifest("base", "ingest")["outputs"]["scoring"]["files"]
    table = scorer.read(store, staged[0]["path"])  # makes the plan
    sampled = Scorer.load(store, "base", spec, threads=1)
    sampled.prepare(store, staged[0]["path"])  # the same plan from the file's first rows alone
    assert sampled._plan_cache == scorer._plan_cache
    copy = pickle.loads(pickle.dumps(scorer))
    assert copy._plan_cache == scorer._plan_cache and copy._plan_cache[0] is not None
    pd.testing.assert_frame_equal(copy.predict_table(table), scorer.predict_table(table), check_exact=True)

    out = run_score_stage(store, "base", spec, "base", submission_csv=True,
                          dask=DaskConfig(n_workers=2, threads_per_worker=1, processes=True))
    assert out["on_cluster"] and out["workers"] == 2 and out["partitions"] == len(staged) >= 2
    assert set(out["phases"]) == {"load_and_plan", "cluster_start", "first_result", "other_results", "cluster_close"}
    assert out["worker_peak_rss_mb"]["max"] >= out["worker_peak_rss_mb"]["first_10pct"] > 0
    preds = pd.read_parquet(out["predictions"])
    in_process = pd.concat([p for _, p in stream_predictions(store, "base", Scorer.load(store, "base", spec))],
                           ignore_index=True)
    pd.testing.assert_frame_equal(preds[list(in_process.columns)].reset_index(drop=True), in_process,
                                  check_dtype=False, check_categorical=False, check_exact=True)

    # a small run without a scheduler address is scored in this process: the same files and predictions
    here = run_score_stage(store, "base", spec, "base", submission_csv=True, local_cluster_min_rows=10**9,
                           dask=DaskConfig(n_workers=2, processes=True))
    assert not here["on_cluster"] and here["workers"] == 1 and "cluster_start" not in here["phases"]
    pd.testing.assert_frame_equal(pd.read_parquet(here["predictions"]), preds, check_exact=True)
    # an address (here from the environment, as the DAG sets it) always means the cluster
    assert scheduler_address(DaskConfig(scheduler_address="tcp://10.0.0.1:8786"))

    # the staged files are shared by the tests' store copies: point this copy's manifest at a bad file
    bad = tmp_path / "not-parquet.parquet"
    bad.write_bytes(b"not parquet")
    manifest_path = Path(store.root) / "runs" / "base" / "ingest" / "_manifest.json"  # the stage's pointer
    manifest = json.loads(manifest_path.read_text())
    manifest["outputs"]["scoring"]["files"][-1]["path"] = str(bad)
    manifest_path.write_text(json.dumps(manifest))
    committed = store.read_manifest("base", "score")
    with pytest.raises(DataError, match=re.escape(f"({bad}) failed")):
        run_score_stage(store, "base", spec, "base", dask=DaskConfig(n_workers=1, processes=False))
    # the failed re-score left the committed predictions as they were: pointer and every file
    assert store.read_manifest("base", "score") == committed
    assert all(store.exists(f["path"]) for f in committed["outputs"]["files"])


def test_score_refuses_unvalidated_data(base, tmp_path):
    params, store = fresh(base, tmp_path)
    store.retract_stage("base", "validate")
    with pytest.raises(DataError, match="validate"):
        run("base", params, "score")


def test_an_id_in_two_splits_fails_validation(base, tmp_path):
    """A holdout row that re-uses a training row's id (its label would leak into the evaluation)
    fails validate, naming the column, both splits and the id; the stage is not committed."""
    params, store = fresh(base, tmp_path)
    outputs = catalog.staged_outputs(store, "base")
    train_id = store.read_parquet(outputs["train"]["files"][0]["path"], columns=["row_id"])["row_id"][0].as_py()
    f = outputs["holdout"]["files"][0]
    table = store.read_parquet(f["path"])
    ids = table["row_id"].to_pylist()
    ids[0] = train_id
    copy = store.write_parquet(f"{tmp_path}/holdout-copy.parquet",
                               table.set_column(table.schema.get_field_index("row_id"), "row_id",
                                                pa.array(ids, table.schema.field("row_id").type)))
    ingest_dir = Path(store.stage_dir("base", "ingest"))
    for manifest in (ingest_dir / "_manifest.json", ingest_dir.parent.parent / "_manifest.json"):
        m = json.loads(manifest.read_text())
        m["outputs"]["holdout"]["files"][0]["path"] = copy
        manifest.write_text(json.dumps(m))
    with pytest.raises(ValidationFailed) as err:
        run("base", params, "validate")
    assert f"'row_id': 1 ids appear in both split 'train' and split 'holdout', e.g. [{train_id!r}]" in str(err.value)
    assert not store.is_committed("base", "validate")
    result = json.loads(Path(store.newest_attempt_dir("base", "validate"), "result.json").read_text())
    assert result["success"] is False and result["ids_shared_across_splits"][0]["splits"] == ["train", "holdout"]


def test_a_data_set_without_test_root_runs_to_a_clean_success(base, tmp_path, capsys):
    """No test partitions: every stage runs, drift and score are skipped with the reason in their
    manifests, the model is promoted, and the CLI exits 0."""
    data = tmp_path / "data"
    shutil.copytree(base["data"], data, ignore=shutil.ignore_patterns("test"))
    params = {**base["params"], "data_root": str(data), "store_root": str(tmp_path / "store")}
    args = ["run", "--run-id", "notest", "--logical-date", LOGICAL, "--config", params["config"],
            "--data-root", str(data), "--store-root", params["store_root"]]
    for k, v in WINDOWS.items():
        args += [f"--{k.replace('_', '-')}", v]
    assert cli.main(args) == 0, capsys.readouterr().err[-3000:]
    store = ArtifactStore(params["store_root"])
    assert "scoring" not in store.read_manifest("notest", "ingest")["outputs"]
    scored = store.read_manifest("notest", "score")
    assert scored["rows"] == 0 and scored["skipped"].startswith("no scoring window")
    assert "no scoring window" in " ".join(store.read_manifest("notest", "drift")["notes"])
    assert store.read_manifest("notest", "promote")["promoted"] is True


def test_cli_train_and_evaluate(base, tmp_path, capsys):
    params, store = fresh(base, tmp_path)
    args = ["--run-id", "base", "--logical-date", LOGICAL, "--config", params["config"],
            "--data-root", params["data_root"], "--store-root", params["store_root"]]
    args += [f"--{k.replace('_', '-')}={v}" for k, v in WINDOWS.items()]
    assert cli.main(["train", *args]) == 0
    assert set(json.loads(capsys.readouterr().out)) == set(TRAINING_STAGES)
    assert cli.main(["evaluate", *args]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["stage"] == "evaluate" and out["best_baseline_rmsle"] in ("zero", "mean", "lgbm_log1p", "lgbm_tweedie")
    assert cli.main(["score", *args]) == 2  # no champion yet: a clear error, exit code 2
    assert "no champion" in capsys.readouterr().err


def test_pruned_scoring_gives_identical_predictions(base, tmp_path):
    """Scoring computes only the features some tree splits on; every prediction is unchanged."""
    import pyarrow as pa

    from ltv_core.catalog import read_staged
    from ltv_core.scoring import Scorer
    from ltv_core.spec import load_spec

    params, store = fresh(base, tmp_path)
    run("base", params, "train")
    spec = load_spec("config/datasets/smadex_d7.yaml")
    table = read_staged(store, "base", "scoring")
    pruned, full = Scorer.load(store, "base", spec), Scorer.load(store, "base", spec, prune=False)
    used = pruned.stack.used_features()
    assert 0 < len(used) < len(pruned.state.feature_names)
    got, want = pruned.predict_table(table), full.predict_table(table)
    pd.testing.assert_frame_equal(got, want)
    plan = pruned._plan(table)
    assert plan is not None and len(plan.columns) < len(pruned.builder.columns)
    # the pruned matrix: the used columns equal the full transform's, the others are null
    X_p, X_f = pruned.features(table), full.features(table)
    names = list(pruned.state.feature_names)
    for j, name in enumerate(names):
        if name in used:
            np.testing.assert_array_equal(X_p.values[:, j], X_f.values[:, j], err_msg=name)
    skipped = [j for j, n in enumerate(names) if n not in used and n not in plan.columns]
    assert skipped and np.isnan(X_p.values[:, skipped]).any()
    # an empty table still scores (zero rows)
    assert len(pruned.predict_table(table.slice(0, 0))) == 0
    assert isinstance(table, pa.Table)
    # the stage's reads: after the first partition (which makes the plan), only the plan's raw
    # columns are read from a file; the predictions are the full read's, partition by partition
    reader = Scorer.load(store, "base", spec)
    files = catalog.staged_partitions(store, "base", "scoring")
    assert len(files) >= 2
    for i, f in enumerate(files):
        staged = store.read_parquet(f["path"])
        got_t = reader.read(store, f["path"])
        if i:
            assert set(got_t.column_names) < set(staged.column_names)
            assert set(got_t.column_names) <= set(reader.builder.input_columns(plan)) | {spec.id_column}
        pd.testing.assert_frame_equal(reader.predict_table(got_t), full.predict_table(staged))
        assert reader.predict_arrow(got_t).schema.field("model_run_id").type == pa.string()


# Raw columns free of hand-written value rules (include/expectations): new values still validate
DRIFT_CATEGORIES = ("dev_make", "dev_model", "carrier", "region", "advertiser_subcategory",
                    "advertiser_bottom_taxonomy_level", "last_advertiser_action")
DRIFT_NUMBERS = ("avg_act_days", "avg_days_ins", "weeks_since_first_seen", "weekend_ratio", "wifi_ratio")


def inject_drift(data: Path, test_root: str) -> None:
    """The raw scoring-window files with every free categorical column renamed (all values unseen
    in training) and the non-negative numbers moved (x5, ratios squared), nulls kept."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    for f in sorted((data / test_root).rglob("*.parquet")):
        t = pq.read_table(f)
        for name in t.column_names:
            col, typ = t[name], t.schema.field(name).type
            if name in DRIFT_CATEGORIES:
                new = pc.binary_join_element_wise("drifted-", pc.cast(col, pa.string()), "")
            elif name in DRIFT_NUMBERS:
                new = pc.power(col, 2) if name.endswith("ratio") else pc.multiply(col, 5)
            else:
                continue
            t = t.set_column(t.column_names.index(name), name, pc.cast(new, typ))
        pq.write_table(t, f)


def test_drift_flags_injected_drift_and_the_run_still_promotes_and_scores(base, tmp_path, caplog):
    """A whole run on data whose scoring window drifted: the drift stage flags it (drift.json,
    its manifest, one WARNING line naming features), promote records the flag and still promotes
    (no champion yet), the report has the drift section, and score still scores. A run whose
    drift did not commit promotes too."""
    import logging

    from ltv_core.spec import load_spec

    data = tmp_path / "data"
    shutil.copytree(base["data"], data)
    inject_drift(data, load_spec("config/datasets/smadex_d7.yaml").roots.test)
    params = {**base["params"], "data_root": str(data), "store_root": str(tmp_path / "store")}
    store = ArtifactStore(str(tmp_path / "store"))
    with caplog.at_level(logging.INFO, logger="ltv_core.stages.drift"):
        results = run("drifted", params, *[s.value for s in STAGES])
    drift = results[Stage.DRIFT]
    assert drift["flagged"] is True and drift["max_psi"] > 0.25, drift
    report = catalog.load_drift(store, "drifted")
    assert report.flagged and report.reasons and report.features and report.score_rows > 0
    assert report.prediction is not None and report.prediction.reference == "validation"  # no champion yet
    assert not any("weekday" in f.feature for f in report.features), "excluded by drift.exclude_features"
    unseen = {f.feature: f.unseen_share for f in report.features if f.unseen_share is not None}
    assert all(unseen[c] == 1.0 for c in DRIFT_CATEGORIES if c in unseen), unseen
    assert store.read_manifest("drifted", Stage.DRIFT)["flagged"] is True
    warnings = [r.getMessage() for r in caplog.records if r.name == "ltv_core.stages.drift" and r.levelname == "WARNING"]
    assert len(warnings) == 1 and warnings[0].startswith("DRIFT FLAGGED for run drifted")
    assert report.top(1)[0].feature in warnings[0]

    promoted = store.read_manifest("drifted", Stage.PROMOTE)
    assert results[Stage.PROMOTE]["promoted"] and promoted["drift"]["flagged"] is True
    assert results[Stage.PROMOTE]["drift_flagged"] is True
    page = Path(results[Stage.PROMOTE]["report"]["report.html"]).read_text()
    assert "drift flagged" in page
    metrics = json.loads(Path(results[Stage.PROMOTE]["report"]["metrics.json"]).read_text())
    assert metrics["drift"]["flagged"] is True
    assert results[Stage.SCORE]["rows"] > 0 and results[Stage.SCORE]["model_run_id"] == "drifted"

    # a drift stage that failed (no manifest): promote still decides and records no drift
    store.retract_stage("drifted", Stage.DRIFT)
    again = run("drifted", params, "promote")
    assert again["promoted"] and again["drift_flagged"] is None
    assert store.read_manifest("drifted", Stage.PROMOTE)["drift"] is None


class ReadRecorder:
    """Which stages of one run each stage reads, seen at the store: every read, existence check and
    listing under ``runs/<run>/<stage>/`` is attributed to the stage running at the time; the
    champion pointer counts as a read of ``promote`` (whose output it is) for stages after it in
    the pipeline, and as nothing for earlier ones (there it is a previous run's). Reads of other
    runs' folders (the champion's models) are left out. The Dask stages run on threads of this
    process (``processes: False``), so their workers' reads are seen too."""

    def __init__(self, store: ArtifactStore, run_id: str):
        from ltv_core.store import safe_run_id

        self.prefix = f"{store.root}/runs/{safe_run_id(run_id)}/"
        self.champion = store.path("champion.json")
        self.reads: dict[Stage, set[str]] = {}
        self.current: Stage | None = None

    def see(self, path: str) -> None:
        if self.current is None:
            return
        seen = self.reads.setdefault(self.current, set())
        if path.startswith(self.prefix):
            stage = path[len(self.prefix):].split("/", 1)[0]
            own = {self.current.value} | ({REPORT_DIR} if self.current is Stage.PROMOTE else set())
            if stage not in own:  # its own folders: the stage clears and writes them
                seen.add(stage)
        elif path == self.champion and STAGES.index(self.current) > STAGES.index(Stage.PROMOTE):
            seen.add(Stage.PROMOTE.value)

    def install(self, monkeypatch: pytest.MonkeyPatch) -> None:
        from fsspec.implementations.local import LocalFileSystem

        for cls, names in ((ArtifactStore, ("read_bytes", "read_parquet", "exists", "is_committed", "parquet_schema")),
                           (LocalFileSystem, ("ls", "exists", "cat_file", "open", "glob"))):
            for name in names:
                monkeypatch.setattr(cls, name, self._wrap(getattr(cls, name), cls is ArtifactStore and name == "is_committed"))

    def _wrap(self, fn, is_committed: bool):
        recorder = self

        def wrapped(obj, path, *args, **kwargs):
            if is_committed:  # (store, run_id, stage)
                stage = args[0] if args else kwargs["stage"]
                recorder.see(obj.path("runs", safe_run_id(path), stage, "_manifest.json"))
            else:
                recorder.see(str(path))
            return fn(obj, path, *args, **kwargs)

        return wrapped


def test_each_stage_reads_exactly_its_declared_inputs(base, tmp_path, monkeypatch):
    """Derived from a real run, not declared: run 'b' goes through all thirteen stages with the
    store's reads recorded, beside a champion 'base' (so evaluate compares against it and score
    reads the pointer). Each stage's reads are exactly ``pipeline.INPUTS``, which the DAG's edges
    are (``tests/dags/test_dag.py::test_edges_are_the_declared_inputs``)."""
    from ltv_core.pipeline import INPUTS

    params, store = fresh(base, tmp_path)
    run("base", params, "train", "evaluate", "promote")
    weak = {**params, "models_config": worse_models_config(tmp_path)}
    recorder = ReadRecorder(store, "b")
    recorder.install(monkeypatch)
    ctx = make_context("b", LOGICAL, weak)
    results: dict = {}
    for stage in STAGES:
        recorder.current = stage
        results.update(run_stages(ctx, [stage], results))
    recorder.current = None
    assert not results[Stage.PROMOTE]["promoted"] and results[Stage.SCORE]["model_run_id"] == "base"
    assert {s: recorder.reads.get(s, set()) for s in STAGES} == {s: {u.value for u in INPUTS[s]} for s in STAGES}
    # and each stage's manifest names the manifest of every input it was given
    for stage in STAGES:
        upstream = store.read_manifest("b", stage)["upstream"]
        assert set(upstream) == {u.value for u in INPUTS[stage]}, stage
