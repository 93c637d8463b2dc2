"""ltv_core.params: one schema for the DAG's Params, the CLI's flags and the config overrides."""

from __future__ import annotations

import argparse

import pytest

from ltv_core import params
from ltv_core.config import PipelineConfig
from ltv_core.errors import SpecError
from ltv_core.params import RunParams


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser()
    params.add_arguments(p)
    return p


def test_dag_params_cli_flags_and_fields_are_the_same_names():
    fields = set(RunParams.model_fields)
    assert set(params.airflow_param_specs()) == fields
    dests = {a.dest for a in _parser()._actions if a.dest != "help"}
    assert dests == fields
    assert params.cli_flag("dataset_spec") == "--spec" and params.cli_flag("store_root") == "--store-root"


def test_cli_flags_parse_into_run_params():
    ns = _parser().parse_args(["--spec", "s.yaml", "--store-root", "/tmp/s", "--features-config", "f.yaml",
                               "--submission-csv", "--train-start", "2025-10-01", "--train-end", "2025-10-02T06:00"])
    got = params.from_namespace(ns)
    assert got.given() == {"dataset_spec": "s.yaml", "store_root": "/tmp/s", "features_config": "f.yaml",
                           "submission_csv": True, "train_start": "2025-10-01", "train_end": "2025-10-02T06:00"}


def test_airflow_specs_carry_types_and_the_time_pattern():
    specs = params.airflow_param_specs()
    assert specs["submission_csv"]["type"] == ["null", "boolean"]
    assert specs["store_root"]["type"] == ["null", "string"] and "pattern" not in specs["store_root"]
    assert specs["holdout_end"]["pattern"] == params.ISO_TIME_PATTERN
    assert all(s["default"] is None and s["title"] and s["description"] for s in specs.values())


def test_apply_overrides_the_config():
    cfg = RunParams.parse({"store_root": "s3://b/p", "data_root": "/d", "models_config": "m.yaml",
                           "features_config": "f.yaml", "expectations": "e.yaml", "dataset_spec": "x.yaml", "submission_csv": True,
                           "dask_scheduler": "tcp://h:8786", "scoring_start": "2025-10-03",
                           "scoring_end": "2025-10-04"}).apply(PipelineConfig())
    assert (cfg.store_root, cfg.data_root, cfg.models_config, cfg.features_config, cfg.dataset_spec) == (
        "s3://b/p", "/d", "m.yaml", "f.yaml", "x.yaml")
    assert cfg.scoring.submission_csv and cfg.dask.scheduler_address == "tcp://h:8786" and cfg.expectations == "e.yaml"
    assert cfg.windows.scoring.start.isoformat() == "2025-10-03T00:00:00+00:00"
    untouched = RunParams.parse({"": None, "store_root": ""}).apply(PipelineConfig())
    assert untouched == PipelineConfig()


@pytest.mark.parametrize("given, message", [
    ({"store_rot": "x"}, "store_rot: Extra inputs are not permitted"),
    ({"train_start": "2025-10-01"}, "give both train_start and train_end"),
    ({"train_start": "2025-10-02", "train_end": "2025-10-01"}, "must be after its start"),
    ({"holdout_start": "yesterday", "holdout_end": "2025-10-01"}, "holdout_start: Value error, not an ISO"),
    ({"scoring_start": "2025-13-40", "scoring_end": "2025-10-01"}, "not an ISO date/time: '2025-13-40'"),
    ({"submission_csv": "maybe"}, "submission_csv: Input should be a valid boolean"),
])
def test_bad_params_fail_naming_the_field(given, message):
    with pytest.raises(SpecError, match="invalid run params") as info:
        RunParams.parse(given)
    assert message in str(info.value)
