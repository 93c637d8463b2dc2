"""``RunParams``: what one run may override. The one schema behind the DAG's Params, the CLI's flags
and the overrides applied to the pipeline config.

Every field is optional; None keeps the config's value. The DAG builds its ``Param``s from
:func:`airflow_param_specs` (``dags/ltv_daily.py``), the CLI its flags from :func:`add_arguments`
(``ltv_core/cli.py``), and a run applies them with :meth:`RunParams.apply`
(``tests/unit/test_params.py`` checks that all three agree).
"""

from __future__ import annotations

import argparse
import re
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from ltv_core import yamlconf
from ltv_core.config import PipelineConfig, load_config
from ltv_core.pipeline import SPLITS
from ltv_core.timeutil import parse_time

# ISO date or date-time, optional zone: what the DAG's form accepts before a run starts.
ISO_TIME_PATTERN = r"^\d{4}-\d{2}-\d{2}([T ]\d{2}(:\d{2}(:\d{2})?)?)?(Z|[+-]\d{2}:\d{2})?$"
_ISO_RE = re.compile(ISO_TIME_PATTERN)
WINDOW_PARAMS = tuple(f"{s}_{edge}" for s in SPLITS for edge in ("start", "end"))


def _text(title: str, description: str, flag: str | None = None) -> Any:
    return Field(None, title=title, description=description, json_schema_extra={"cli": flag} if flag else None)


def _edge(split: str, edge: str) -> Any:
    return Field(None, title=f"{split} window {edge}",
                 description=f"ISO time (UTC) of the {split} window's {edge}; empty derives it from the logical date.",
                 json_schema_extra={"pattern": ISO_TIME_PATTERN})


Text = Annotated[str | None, "path or address"]
Time = Annotated[str | None, "ISO time"]


class RunParams(BaseModel):
    """The overrides of one run. Unknown names and malformed values fail before any work starts."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    config: Text = _text("Pipeline config",
                         "YAML like config/pipeline.yaml; empty: $LTV_PIPELINE_CONFIG, else that file.")
    dataset_spec: Text = _text("Dataset spec", "YAML under config/datasets/; empty uses the pipeline config's.",
                               "--spec")
    data_root: Text = _text("Raw data root", "Local path or s3:// URL; empty: the config's, else "
                                             "$LTV_DATA_ROOT, else the spec's data_root.")
    store_root: Text = _text("Artefact store root",
                             "Local path or s3:// URL; empty: the config's, else $LTV_STORE_ROOT, else ./store.")
    models_config: Text = _text("Models config", "YAML like config/models.yaml; empty uses the pipeline config's.")
    features_config: Text = _text("Features config",
                                  "YAML like config/features.yaml; empty: the pipeline config's, else the "
                                  "dataset spec's, else a default from the spec's column kinds.")
    expectations: Text = _text("Expectations file",
                               "Hand-written Great Expectations YAML (include/expectations/); empty: the dataset "
                               "spec's.")
    dask_scheduler: Text = _text("Dask scheduler", "An existing Dask scheduler (tcp://host:8786); empty: the "
                                                   "dask_default connection, else the config's.")
    submission_csv: bool | None = Field(None, title="Also write a submission CSV",
                                        description="score: also write score/submission.csv.")
    train_start: Time = _edge("train", "start")
    train_end: Time = _edge("train", "end")
    validation_start: Time = _edge("validation", "start")
    validation_end: Time = _edge("validation", "end")
    holdout_start: Time = _edge("holdout", "start")
    holdout_end: Time = _edge("holdout", "end")
    scoring_start: Time = _edge("scoring", "start")
    scoring_end: Time = _edge("scoring", "end")

    @field_validator("config", "dataset_spec", "data_root", "store_root", "models_config", "features_config",
                     "expectations", "dask_scheduler", mode="before")
    @classmethod
    def _empty_is_none(cls, v: Any) -> Any:
        return None if v == "" else v

    @field_validator(*WINDOW_PARAMS, mode="before")
    @classmethod
    def _iso(cls, v: Any) -> Any:
        if v in (None, ""):
            return None
        if not isinstance(v, str) or not _ISO_RE.match(v.strip()):
            raise ValueError(f"not an ISO date/time: {v!r}")
        parse_time(v)  # well-formed yet no date (2025-13-40) fails here
        return v.strip()

    @model_validator(mode="after")
    def _both_edges(self) -> RunParams:
        for s in SPLITS:
            start, end = getattr(self, f"{s}_start"), getattr(self, f"{s}_end")
            if bool(start) != bool(end):
                raise ValueError(f"window {s.value!r}: give both {s}_start and {s}_end, got start={start!r} "
                                 f"end={end!r}")
            if start and parse_time(end) <= parse_time(start):
                raise ValueError(f"window {s.value!r}: window end {end} must be after its start {start}")
        return self

    @classmethod
    def parse(cls, values: RunParams | dict[str, Any] | None) -> RunParams:
        """From a DAG's ``params`` or any mapping; fails naming every bad field (SpecError)."""
        if isinstance(values, RunParams):
            return values
        try:
            return cls.model_validate({k: v for k, v in (values or {}).items() if v is not None})
        except ValidationError as exc:
            raise yamlconf.invalid("run params", "<params>", exc) from None

    def given(self) -> dict[str, Any]:
        """The fields that were set (what a run passes on)."""
        return self.model_dump(exclude_none=True)

    def load_config(self) -> PipelineConfig:
        """The pipeline config named by ``config`` (or the default), with these overrides applied."""
        return self.apply(load_config(self.config))

    def apply(self, config: PipelineConfig) -> PipelineConfig:
        data = config.model_dump(mode="python")
        for key in ("dataset_spec", "store_root", "data_root", "models_config", "features_config", "expectations"):
            if getattr(self, key):
                data[key] = getattr(self, key)
        if self.submission_csv is not None:
            data["scoring"]["submission_csv"] = self.submission_csv
        if self.dask_scheduler:
            data["dask"]["scheduler_address"] = self.dask_scheduler
        for s in SPLITS:
            if getattr(self, f"{s}_start"):
                data["windows"][s.value] = {"start": getattr(self, f"{s}_start"), "end": getattr(self, f"{s}_end")}
        try:
            return PipelineConfig.model_validate(data)
        except ValidationError as exc:
            raise yamlconf.invalid("pipeline config", config.source_path or "<overrides>", exc) from None


def _schema(name: str) -> dict[str, Any]:
    info = RunParams.model_fields[name]
    extra = info.json_schema_extra if isinstance(info.json_schema_extra, dict) else {}
    return {"title": info.title, "description": info.description, **extra}


def _kind(name: str) -> str:
    return "boolean" if RunParams.model_fields[name].annotation == (bool | None) else "string"


def airflow_param_specs() -> dict[str, dict[str, Any]]:
    """``Param(**spec)`` keyword arguments for every field: JSON schema type, title, description
    and (windows) the ISO pattern, so the trigger form refuses a malformed time."""
    specs = {}
    for name in RunParams.model_fields:
        s = _schema(name)
        s.pop("cli", None)
        specs[name] = {"default": None, "type": ["null", _kind(name)], **s}
    return specs


def cli_flag(name: str) -> str:
    return _schema(name).get("cli") or "--" + name.replace("_", "-")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """One flag per field (``--store-root``, ``--spec``, ``--train-start``, ``--submission-csv``...)."""
    for name in RunParams.model_fields:
        s = _schema(name)
        if _kind(name) == "boolean":
            parser.add_argument(cli_flag(name), dest=name, action="store_const", const=True, default=None,
                                help=s["description"])
        else:
            parser.add_argument(cli_flag(name), dest=name, default=None, type=non_empty(cli_flag(name)),
                                help=f"{s['title']}: {s['description']}")


def non_empty(flag: str) -> Any:
    """On the command line an empty value is a mistake (``--store-root ''`` used to fall back to
    the project's own store without a word); in the DAG's form an empty field means "default"."""
    def parse(value: str) -> str:
        if not value.strip():
            raise argparse.ArgumentTypeError(f"{flag} is empty: give a value, or leave the flag out for the default")
        return value
    return parse


def from_namespace(args: argparse.Namespace) -> RunParams:
    return RunParams.parse({name: getattr(args, name, None) for name in RunParams.model_fields})


__all__ = ["ISO_TIME_PATTERN", "RunParams", "add_arguments", "airflow_param_specs", "cli_flag", "from_namespace",
           "non_empty"]
