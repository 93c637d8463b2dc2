"""Fail fast (issue 16, items 2-4): every config file and param of a run is checked before its first
stage does any work (``ltv_core.preflight``). Each case runs the CLI's ``main`` the way a user would,
asserts its one-line message names the file / field / value at fault, that it came within seconds,
and that the store holds nothing afterwards (docs/RELIABILITY.md lists every case)."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from ltv_core.cli import main
from ltv_core.spec import load_spec

from support.configs import ROOT
from support.rawdata import hours, write_dataset

SPEC = load_spec("config/datasets/smadex_d7.yaml")
LOGICAL = "2025-11-04T03:00"


@pytest.fixture(scope="module")
def raw(tmp_path_factory) -> Path:
    import ltv_core.inprocess  # noqa: F401  the stages' imports (GX, LightGBM: seconds) are not the preflight's time
    root = tmp_path_factory.mktemp("raw")
    write_dataset(root, SPEC, hours(1, 3), hours(8, 2), rows=3)
    return root


def _yaml(folder: Path, name: str, source: str, edit) -> str:
    data = yaml.safe_load((ROOT / source).read_text())
    edit(data)
    path = folder / name
    path.write_text(yaml.safe_dump(data))
    return str(path)


def _run(capsys, argv: list[str], command: str = "run") -> tuple[int, str, float]:
    t0 = time.perf_counter()
    rc = main([command, "--logical-date", LOGICAL, *argv])
    seconds = time.perf_counter() - t0
    return rc, capsys.readouterr().err.strip(), seconds


def _nothing_written(store: Path) -> None:
    assert not store.exists() or [p.name for p in store.iterdir()] == [], list(store.iterdir())


def _models_typo(tmp_path: Path) -> str:
    return _yaml(tmp_path, "models-typo.yaml", "config/models.yaml", lambda d: d.update(num_boost_rounds=10))


CASES = {
    # name: (extra argv builder (tmp_path, raw) -> argv, fragments the message must contain)
    "models config typo": (lambda t, r: ["--models-config", _models_typo(t)],
                           ["models-typo.yaml", "num_boost_rounds", "Extra inputs are not permitted"]),
    "missing features config": (lambda t, r: ["--features-config", str(t / "nope.yaml")],
                                ["features config", "nope.yaml"]),
    "features config names an unknown column": (
        lambda t, r: ["--features-config", _yaml(t, "f.yaml", "config/features.yaml",
                                                 lambda d: d.update(exclude_columns=["hour", "no_such_col"]))],
        ["exclude_columns", "'no_such_col' is not a feature column"]),
    "features config names a label column": (
        lambda t, r: ["--features-config", _yaml(
            t, "f2.yaml", "config/features.yaml",
            lambda d: d["target_encoding"].update(columns=["iap_revenue_d7"]))],
        ["target_encoding.columns", "'iap_revenue_d7' is a label"]),
    "missing data root": (lambda t, r: ["--data-root", str(t / "no-data")],
                          ["no-data", "has no training folder 'train/train'"]),
    "data root that climbs": (lambda t, r: ["--data-root", f"{r}/../{r.name}"], ["data root", "contains '..'"]),
    "store root that climbs": (lambda t, r: ["--store-root", str(t / "store/../../etc")],
                               ["store root", "contains '..'"]),
    "store root that is a file": (lambda t, r: ["--store-root", str(_file(t))], ["is a file, not a folder"]),
    "unsafe run id": (lambda t, r: ["--run-id", ".."], ["run id '..' cannot name a run folder"]),
    "run id with a slash": (lambda t, r: ["--run-id", "a/../../b"], ["cannot name a run folder"]),
    "missing expectations file": (lambda t, r: ["--expectations", str(t / "exp-nope.yaml")], ["exp-nope.yaml"]),
    "expectations on an unknown column": (
        lambda t, r: ["--expectations", _yaml(t, "exp.yaml", "include/expectations/smadex_d7.yaml",
                                              lambda d: d["expectations"].append(
                                                  {"type": "ExpectColumnValuesToNotBeNull",
                                                   "kwargs": {"column": "no_such_column"}}))],
        ["exp.yaml", "no_such_column"]),
    "missing pipeline config": (lambda t, r: ["--config", str(t / "pipeline-nope.yaml")],
                                ["pipeline-nope.yaml"]),
    "missing dataset spec": (lambda t, r: ["--spec", str(t / "spec-nope.yaml")], ["spec-nope.yaml"]),
    "malformed window param": (lambda t, r: ["--train-start", "2025-13-40", "--train-end", "2025-10-03"],
                               ["train_start"]),
}


def _file(folder: Path) -> Path:
    f = folder / "a-file"
    f.write_text("not a folder")
    return f


@pytest.mark.parametrize("command", ["run", "train"])
@pytest.mark.parametrize("case", sorted(CASES))
def test_a_bad_config_or_param_fails_in_seconds_naming_it(case, command, raw, tmp_path, capsys):
    build, fragments = CASES[case]
    store = tmp_path / "store"
    argv = ["--data-root", str(raw), "--store-root", str(store), *build(tmp_path, raw)]
    rc, message, seconds = _run(capsys, argv, command)
    assert rc == 2 and message.startswith("error: ") and "Traceback" not in message, message
    for fragment in fragments:
        assert fragment in message, (fragment, message)
    assert seconds < 10, f"{case}: {seconds:.1f}s"
    _nothing_written(store)


def test_an_empty_flag_is_refused_by_the_parser(capsys):
    """``--store-root ''`` used to fall back to the project's own store/ without a word."""
    for flag in ("--store-root", "--data-root", "--run-id", "--models-config"):
        with pytest.raises(SystemExit) as exit_:
            main(["run", flag, ""])
        assert exit_.value.code == 2 and f"{flag} is empty" in capsys.readouterr().err


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_an_unreachable_s3_store_fails_in_seconds_naming_it(raw, monkeypatch, capsys):
    """Bounded retries (ltv_core.store.S3_OPTIONS): the preflight's probe write names the store."""
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{_closed_port()}")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test")
    rc, message, seconds = _run(capsys, ["--data-root", str(raw), "--store-root", "s3://ltv-bucket/store"])
    assert rc == 2 and "cannot write s3://ltv-bucket/store/_preflight-" in message, message
    assert "EndpointConnectionError" in message and seconds < 60, (message, seconds)


def test_a_models_typo_fails_in_seconds_from_a_fresh_process(raw, tmp_path):
    """The user's view: the whole command, imports included, ends in seconds with one line, and no
    stage folder exists (it used to fail after 96 s, three stages committed)."""
    store = tmp_path / "store"
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "ltv_core", "run", "--logical-date", LOGICAL,
                           "--data-root", str(raw), "--store-root", str(store),
                           "--models-config", _models_typo(tmp_path)],
                          capture_output=True, text=True, timeout=300, cwd=ROOT)
    seconds = time.perf_counter() - t0
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr and "num_boost_rounds" in proc.stderr, proc.stderr[-2000:]
    assert seconds < 60, seconds
    _nothing_written(store)
