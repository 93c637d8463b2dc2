"""Small pipeline and models configs for the tests: the product's YAML files with test-sized settings."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def fast_models_config(folder: Path) -> str:
    """config/models.yaml with test-sized boosting (fewer, faster rounds; fewer bootstrap draws):
    the same code paths, seconds instead of minutes on tiny data."""
    import yaml

    raw = yaml.safe_load((ROOT / "config" / "models.yaml").read_text())
    raw["lgbm"]["learning_rate"] = 0.1
    raw["num_boost_round"] = 300
    raw["early_stopping_rounds"] = 20
    raw["evaluation"]["n_boot"] = 100
    path = Path(folder) / "models-fast.yaml"
    path.write_text(yaml.safe_dump(raw))
    return str(path)


def small_pipeline_config(folder: Path, *, windows: dict | None = None, dask: dict | None = None,
                          limits: dict | None = None, fast_models: bool = True) -> str:
    """config/pipeline.yaml with overrides, written to ``folder``; returns its path."""
    import yaml

    raw = yaml.safe_load((ROOT / "config" / "pipeline.yaml").read_text())
    raw["windows"].update(windows or {})
    raw["dask"].update(dask or {})
    raw["limits"].update(limits or {})
    if fast_models:
        raw["models_config"] = fast_models_config(folder)
    path = Path(folder) / "pipeline-small.yaml"
    path.write_text(yaml.safe_dump(raw))
    return str(path)
