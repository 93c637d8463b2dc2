"""Run lineage (issue 17; docs/LINEAGE.md): a stage consumes exactly the attempts its upstream
committed, a re-run never leaves a mixed run readable, and the champion's model is pinned.

One small run 'champ' goes through every stage and is promoted; each test copies its store."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pandas as pd
import pytest
from support.configs import small_pipeline_config

from ltv_core.context import make_context
from ltv_core.errors import StoreError
from ltv_core.inprocess import run_stages
from ltv_core.lineage import LineageError, model_pins
from ltv_core.pipeline import INPUTS, STAGES, TRAINING_STAGES, Stage
from ltv_core.promotion import read_champion
from ltv_core.scoring import Scorer, stream_predictions
from ltv_core.spec import load_spec
from ltv_core.store import ArtifactStore

LOGICAL = "2025-10-31T00:00:00+00:00"
WINDOWS = {
    "train_start": "2025-10-01T00:00", "train_end": "2025-10-02T00:00",
    "validation_start": "2025-10-02T00:00", "validation_end": "2025-10-02T08:00",
    "holdout_start": "2025-10-02T08:00", "holdout_end": "2025-10-02T16:00",
}
ROOT = Path(__file__).resolve().parents[2]


def run(params: dict, *stages: Stage) -> dict:
    return run_stages(make_context("champ", LOGICAL, params), stages)


@pytest.fixture(scope="module")
def promoted(tmp_path_factory) -> dict:
    from ltv_core.synthetic import generate_dataset

    root = tmp_path_factory.mktemp("lineage")
    generate_dataset(root / "data", seed=5, rows_per_partition=120, train_hours=40, test_hours=6)
    config = small_pipeline_config(root, dask={"n_workers": 1, "threads_per_worker": 2, "processes": False})
    params = {"config": str(config), "data_root": str(root / "data"), "store_root": str(root / "store"), **WINDOWS}
    results = run(params, *STAGES)
    assert results[Stage.PROMOTE]["promoted"]
    return {"root": root, "params": params}


def fresh(promoted: dict, tmp_path: Path) -> tuple[dict, ArtifactStore]:
    shutil.copytree(promoted["root"] / "store", tmp_path / "store")
    return {**promoted["params"], "store_root": str(tmp_path / "store")}, ArtifactStore(str(tmp_path / "store"))


def champion_predictions(store: ArtifactStore) -> pd.DataFrame:
    spec = load_spec("config/datasets/smadex_d7.yaml")
    scorer = Scorer.champion(store, read_champion(store), spec)
    return pd.concat([p for _, p in stream_predictions(store, "champ", scorer)], ignore_index=True)


def assert_readable(store: ArtifactStore, *, healed: bool = True) -> None:
    """No partial or mixed state is readable: every committed stage's pointer names an attempt whose
    own manifest is the pointer, and the attempts its lineage names exist. ``healed``: every
    committed stage's inputs form one chain; otherwise a consumer of a mixed chain must be refused
    (``LineageError``), never served."""
    from ltv_core.lineage import consume

    for stage in STAGES:
        if not store.is_committed("champ", stage):
            continue
        pointer = store.read_manifest("champ", stage)
        attempt = store.attempt_dir("champ", stage, pointer["attempt"])
        assert store.read_json(f"{attempt}/_manifest.json") == pointer, stage
        for upstream, a in pointer.get("lineage", {}).items():
            assert store.exists(store.attempt_dir("champ", upstream, a)), (stage, upstream, a)
        try:
            consume(ArtifactStore(store.url), "champ", stage)
        except LineageError:
            assert not healed, stage


def test_every_manifest_records_its_inputs_attempts_and_hashes(promoted, tmp_path):
    params, store = fresh(promoted, tmp_path)
    for stage in STAGES:
        m = store.read_manifest("champ", stage)
        assert m["attempt"], stage
        inputs = [s.value for s in INPUTS[stage]]
        assert set(m["consumed"]) == set(inputs), stage
        for inp, c in m["consumed"].items():
            assert c["attempt"] == m["lineage"][inp] and len(c["sha256"]) == 64
    pointer = read_champion(store)
    assert pointer["lineage"][Stage.FIT_STACKER] == store.read_manifest("champ", Stage.FIT_STACKER)["attempt"]
    assert_readable(store)


def test_a_mixed_run_is_refused_and_the_champion_keeps_its_model(promoted, tmp_path):
    """Re-running build_features and the classifier, but not the regressor: the stacker refuses the
    mix naming build_features; promote records it and ships nothing; the champion's predictions
    (its pinned attempts) are unchanged; re-running the remaining stages heals the run."""
    params, store = fresh(promoted, tmp_path)
    before = champion_predictions(store)
    run(params, Stage.BUILD_FEATURES, Stage.RESAMPLE, Stage.TRAIN_CLASSIFIER)
    with pytest.raises(LineageError, match=r"stage 'fit_stacker'.*different attempts of 'build_features'"):
        run(params, Stage.FIT_STACKER)
    decision = run(params, Stage.PROMOTE)[Stage.PROMOTE]
    assert not decision["promoted"] and "mixed attempts" in decision["reason"]
    pd.testing.assert_frame_equal(champion_predictions(store), before, check_exact=True)
    scored = run(params, Stage.SCORE)[Stage.SCORE]
    assert store.read_manifest("champ", Stage.SCORE)["inputs"]["model_attempts"] == model_pins(read_champion(store))
    pd.testing.assert_frame_equal(pd.read_parquet(scored["predictions"]).reset_index(drop=True)[before.columns],
                                  before, check_exact=True)
    run(params, Stage.TRAIN_REGRESSOR, Stage.TRAIN_BASELINES, Stage.FIT_STACKER, Stage.OPTIMIZE_GATE,
        Stage.EVALUATE, Stage.DRIFT, Stage.PROMOTE)
    assert_readable(store)


def test_score_refuses_a_validation_of_another_ingest(promoted, tmp_path):
    """Re-running only ingest: validate checked the old attempt, so build_features and score refuse,
    naming both; once validate and promote ran again (a clear of ingest's downstream would), score
    scores the new rows with the champion's pinned model."""
    params, store = fresh(promoted, tmp_path)
    run(params, Stage.INGEST)
    for stage in (Stage.BUILD_FEATURES, Stage.SCORE):
        with pytest.raises(LineageError, match=r"different attempts of 'ingest': the committed 'ingest' is attempt "
                                               r"\S+, but 'validate' was made from its attempt "):
            run(params, stage)
    run(params, Stage.VALIDATE, Stage.PROMOTE)
    scored = run(params, Stage.SCORE)[Stage.SCORE]
    assert scored["rows"] > 0 and scored["model_run_id"] == "champ"


def _cli(params: dict, command: str) -> list[str]:
    args = [sys.executable, "-m", "ltv_core", command, "--run-id", "champ", "--logical-date", LOGICAL,
            "--config", params["config"], "--store-root", params["store_root"], "--data-root", params["data_root"]]
    for k, v in WINDOWS.items():
        args += [f"--{k.replace('_', '-')}", v]
    return args


def _prediction_files(store: ArtifactStore) -> dict[str, bytes]:
    folder = Path(store.stage_dir("champ", Stage.SCORE), "predictions")
    return {str(f.relative_to(folder)): f.read_bytes() for f in sorted(folder.rglob("*.parquet"))}


def kill_during(params: dict, command: str, stage: str, after: float) -> bool:
    """Start ``python -m ltv_core <command>`` on the champion's own run id, SIGKILL it ``after``
    seconds after its log says ``stage`` started (or after ``after`` seconds from the start when
    ``stage`` is empty); True when it was killed before it exited by itself."""
    env = {**os.environ, "PYTHONPATH": str(ROOT / "tests") + os.pathsep + str(ROOT), "LTV_PARALLEL_TASKS": "1"}
    proc = subprocess.Popen(_cli(params, command), cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    started = threading.Event()

    def watch() -> None:
        for line in proc.stderr:
            if not stage or f"stage {stage} of run champ: starting" in line:
                started.set()
        started.set()  # it exited (or failed) before the stage started: kill nothing

    threading.Thread(target=watch, daemon=True).start()
    assert started.wait(timeout=240), f"{command}: {stage} never started"
    time.sleep(after)
    killed = proc.poll() is None
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)  # reaped: a killed writer's claim is stale at once (ltv_core.claims)
    return killed


def test_sigkill_at_every_stage_of_the_champion_run_id(promoted, tmp_path):
    """Re-running the champion's own run id and SIGKILLing it in every stage, each through its own
    command (``python -m ltv_core <stage>``) shortly after it started: after each kill whatever had
    committed is readable and consistent, the champion predicts exactly as before, and the retry of
    the killed stage succeeds (the dead writer's claim is taken over). In the end the re-run of the
    logical date gives byte-identical predictions."""
    params, store = fresh(promoted, tmp_path)
    before = champion_predictions(store)
    first_files = _prediction_files(store)
    first_scores = pd.read_parquet(f"{store.stage_dir('champ', Stage.SCORE)}/predictions")
    first_attempt = store.read_manifest("champ", Stage.SCORE)["attempt"]
    pinned = {s: store.read_bytes(f"{store.attempt_dir('champ', s, a)}/_manifest.json")
              for s, a in read_champion(store)["lineage"].items()}
    killed: dict[str, bool] = {}

    def check() -> None:
        assert_readable(store, healed=False)
        pd.testing.assert_frame_equal(champion_predictions(store), before, check_exact=True)

    for stage in STAGES:  # each stage's own command, killed while the stage runs, then retried
        prior = store.read_manifest("champ", stage)["attempt"]
        running = kill_during(params, stage.value, stage.value,
                              after=1.0 if stage in (Stage.INGEST, Stage.VALIDATE) else 0.5)
        killed[stage.value] = running and store.read_manifest("champ", stage)["attempt"] == prior
        check()
        run(params, stage)
    assert_readable(store)
    assert sum(killed.values()) >= 8, f"most kills must land before the stage commits: {killed}"
    for s, manifest in pinned.items():  # the first champion's attempts: never rewritten or removed
        assert store.read_bytes(f"{store.attempt_dir('champ', s, json.loads(manifest)['attempt'])}/_manifest.json") \
            == manifest, s
    again = pd.read_parquet(f"{store.stage_dir('champ', Stage.SCORE)}/predictions")
    assert store.read_manifest("champ", Stage.SCORE)["attempt"] != first_attempt, "scored again, by the re-run"
    assert read_champion(store)["lineage"][Stage.FIT_STACKER] != json.loads(pinned[Stage.FIT_STACKER])["attempt"]
    pd.testing.assert_frame_equal(again, first_scores, check_exact=True)
    assert _prediction_files(store) == first_files, "the re-run's prediction files are byte-identical"


def test_a_damaged_champion_model_is_named_not_loaded(promoted, tmp_path):
    """One byte of the champion's classifier changed on disk: scoring fails in one line naming the
    file (its SHA-256 no longer matches its manifest) instead of LightGBM aborting the process."""
    params, store = fresh(promoted, tmp_path)
    committed = store.read_manifest("champ", Stage.SCORE)
    model = Path(store.stage_dir("champ", Stage.TRAIN_CLASSIFIER), "classifier.json")
    data = bytearray(model.read_bytes())
    at = data.index(b"tree_sizes")
    data[at:at + 10] = b"tree_sizeX"
    model.write_bytes(bytes(data))
    with pytest.raises(StoreError, match=r"classifier.json is damaged: its SHA-256 differs .* re-run that stage"):
        run(params, Stage.SCORE)
    assert store.read_manifest("champ", Stage.SCORE) == committed, "the committed predictions stay as they were"
