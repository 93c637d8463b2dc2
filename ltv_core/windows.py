"""Time windows of a run and the hive partitions that fall in them.

Four time-ordered windows: ``train`` < ``validation`` (tuning) < ``holdout`` (reporting and
promotion only) from the labelled root, and ``scoring`` from the unlabelled root. By default they
derive from the run's logical date: every labelled window ends at least the label maturity before
it (7-day labels exist only 7 days after the impression), holdout and validation are the most
recent matured windows, training comes before them, and scoring is the newest test partitions
before the logical date. Any window can be given explicitly (backfills, month-long horizons).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from ltv_core.config import PipelineConfig, TimeRange, WindowsConfig
from ltv_core.errors import DataError, SpecError
from ltv_core.pipeline import LABELLED, Split
from ltv_core.spec import DatasetSpec
from ltv_core.store import fs_for

log = logging.getLogger(__name__)



@dataclass(frozen=True)
class Partition:
    """One hive partition directory and its data files."""

    value: str  # e.g. "2025-10-01-00-00"
    time: datetime
    path: str  # directory (bare fsspec path)
    files: tuple[str, ...]
    protocol: str = "file"

    @property
    def urls(self) -> list[str]:
        if self.protocol in ("file", "local"):
            return list(self.files)
        return [f"{self.protocol}://{f}" for f in self.files]


@dataclass(frozen=True)
class Window:
    name: str
    start: datetime
    end: datetime  # exclusive

    def contains(self, t: datetime) -> bool:
        return self.start <= t < self.end

    @property
    def hours(self) -> float:
        return (self.end - self.start).total_seconds() / 3600

    def to_dict(self) -> dict[str, str]:
        return {"name": self.name, "start": self.start.isoformat(), "end": self.end.isoformat()}


def _is_data_file(name: str) -> bool:
    base = name.rsplit("/", 1)[-1]
    return base.endswith(".parquet") and not base.startswith((".", "_"))


def list_partitions(root: str, spec: DatasetSpec) -> list[Partition]:
    """Hive partitions ``<key>=<value>`` under ``root``, sorted by time; fails on a malformed name."""
    fs, base = fs_for(root)
    protocol = fs.protocol if isinstance(fs.protocol, str) else fs.protocol[0]
    if not fs.exists(base):
        raise DataError(f"data root does not exist: {root}")
    prefix = f"{spec.partition.key}="
    parts: list[Partition] = []
    for entry in fs.ls(base, detail=True):
        name = entry["name"].rstrip("/").rsplit("/", 1)[-1]
        if entry["type"] != "directory" or name.startswith((".", "_")):
            continue
        if not name.startswith(prefix):
            log.warning("ignoring %s under %s: not a %s=... partition", name, root, spec.partition.key)
            continue
        value = name[len(prefix):]
        try:
            when = spec.partition.parse(value)
        except SpecError as exc:
            raise DataError(f"malformed partition directory {entry['name']}: {exc}") from None
        files = sorted(f for f in fs.ls(entry["name"], detail=False) if _is_data_file(f))
        parts.append(Partition(value, when, entry["name"].rstrip("/"), tuple(files), protocol))
    parts.sort(key=lambda p: (p.time, p.value))
    check_spellings(parts, spec, root)
    return parts


def check_spellings(parts: list[Partition], spec: DatasetSpec, root: str) -> None:
    """One folder per time, spelled the way the spec's format writes it. strptime is lenient
    (``2025-10-2-5-00`` parses like ``2025-10-02-05-00``), so without this a partition spelled two
    ways would be ingested twice (``tests/unit/test_windows.py::test_a_partition_spelled_two_ways_fails``)."""
    for a, b in zip(parts, parts[1:]):
        if a.time == b.time:
            raise DataError(f"partitions {a.path} and {b.path} under {root} are the same time "
                            f"({a.time.isoformat()}): keep one folder per time, spelled "
                            f"{spec.partition.key}={spec.partition.render(a.time)}")
    for part in parts:
        canonical = spec.partition.render(part.time)
        if part.value != canonical:
            raise DataError(f"partition folder {part.path} does not match the spec's format "
                            f"{spec.partition.format!r}: rename it {spec.partition.key}={canonical}")


def _floor(t: datetime, grain_hours: int) -> datetime:
    epoch_h = int(t.timestamp() // 3600)
    return datetime.fromtimestamp((epoch_h - epoch_h % grain_hours) * 3600, tz=timezone.utc)


def for_spec(cfg: WindowsConfig, spec: DatasetSpec) -> WindowsConfig:
    """The pipeline config's windows with the data set's own lengths and maturity (the spec's
    ``windows:`` block) in place of its values; explicit windows are kept and still win."""
    given = spec.windows.given() if spec.windows else {}
    return cfg.model_copy(update=given) if given else cfg


def maturity_days(cfg: WindowsConfig, spec: DatasetSpec) -> int:
    cfg = for_spec(cfg, spec)
    if cfg.maturity == "longest":
        return spec.max_horizon_days
    if cfg.maturity == "primary":
        return spec.primary.days
    return int(cfg.maturity)


def _explicit(name: str, rng: TimeRange | None) -> Window | None:
    return None if rng is None else Window(name, rng.start, rng.end)


def labelled_windows(logical_date: datetime, cfg: WindowsConfig, spec: DatasetSpec) -> dict[str, Window]:
    """Train, validation and holdout windows for a logical date (explicit ones win)."""
    cfg = for_spec(cfg, spec)
    grain = spec.partition.grain_hours
    mature_end = _floor(logical_date, grain) - timedelta(days=maturity_days(cfg, spec))
    gap = timedelta(hours=cfg.gap_hours)
    holdout = _explicit(Split.HOLDOUT, cfg.holdout) or Window(
        Split.HOLDOUT, mature_end - timedelta(hours=cfg.holdout_hours), mature_end
    )
    validation = _explicit(Split.VALIDATION, cfg.validation) or Window(
        Split.VALIDATION, holdout.start - gap - timedelta(hours=cfg.validation_hours), holdout.start - gap
    )
    train = _explicit(Split.TRAIN, cfg.train) or Window(
        Split.TRAIN, validation.start - gap - timedelta(hours=cfg.train_hours), validation.start - gap
    )
    windows = {Split.TRAIN: train, Split.VALIDATION: validation, Split.HOLDOUT: holdout}
    check_order(windows, logical_date, mature_end)
    return windows


def check_order(windows: dict[str, Window], logical_date: datetime, mature_end: datetime) -> None:
    """Training, validation and holdout must be disjoint, in that order, and matured."""
    seq = [windows[n] for n in LABELLED]
    for earlier, later in zip(seq, seq[1:]):
        if earlier.end > later.start:
            raise SpecError(
                f"window {earlier.name} [{earlier.start.isoformat()}, {earlier.end.isoformat()}) overlaps or "
                f"follows {later.name} [{later.start.isoformat()}, {later.end.isoformat()}): "
                "train < validation < holdout is required so that nothing is tuned or reported on data it saw"
            )
    for w in seq:
        if w.end > mature_end:
            raise SpecError(
                f"window {w.name} ends {w.end.isoformat()}, after the label maturity limit {mature_end.isoformat()} "
                f"for logical date {logical_date.isoformat()}: its labels are not complete yet"
            )


def scoring_window(
    logical_date: datetime, cfg: WindowsConfig, spec: DatasetSpec, test_partitions: list[Partition] | None
) -> Window | None:
    """Explicit scoring window, else the newest ``scoring_hours`` of test partitions before the logical date."""
    cfg = for_spec(cfg, spec)
    if cfg.scoring is not None:
        return Window(Split.SCORING, cfg.scoring.start, cfg.scoring.end)
    if not test_partitions:
        return None
    grain = timedelta(hours=spec.partition.grain_hours)
    eligible = [p for p in test_partitions if p.time < logical_date]
    if not eligible:
        return None
    newest = eligible[-1].time + grain
    return Window(Split.SCORING, newest - timedelta(hours=cfg.scoring_hours), newest)


def select(partitions: list[Partition], window: Window, spec: DatasetSpec, root: str) -> list[Partition]:
    """Partitions inside a window; logs holes and fails when the window is empty."""
    chosen = [p for p in partitions if window.contains(p.time)]
    expected = int(window.hours // spec.partition.grain_hours)
    if not chosen:
        available = f"{partitions[0].value} .. {partitions[-1].value}" if partitions else "none"
        raise DataError(
            f"window {window.name} [{window.start.isoformat()}, {window.end.isoformat()}) has no partitions "
            f"under {root} (available: {available})"
        )
    empty = [p.value for p in chosen if not p.files]
    if empty:
        raise DataError(f"window {window.name}: partitions without data files under {root}: {empty[:5]}")
    if len(chosen) < expected:
        log.warning(
            "window %s: %d of %d expected partitions present under %s", window.name, len(chosen), expected, root
        )
    return chosen


def resolve(
    logical_date: datetime, config: PipelineConfig, spec: DatasetSpec, data_root: str | None = None
) -> tuple[dict[str, Window], dict[str, list[Partition]]]:
    """Windows of a run and the partitions each reads."""
    train_root = spec.root_path("train", data_root)
    test_root = spec.root_path("test", data_root)
    assert train_root is not None
    windows: dict[str, Window] = labelled_windows(logical_date, config.windows, spec)
    train_parts = list_partitions(train_root, spec)
    chosen = {name: select(train_parts, windows[name], spec, train_root) for name in LABELLED}
    test_parts = None
    if test_root and _exists(test_root):
        test_parts = list_partitions(test_root, spec)
    elif test_root:
        log.warning("test root %s does not exist: this run has no scoring window", test_root)
    sw = scoring_window(logical_date, config.windows, spec, test_parts)
    if sw is not None:
        assert test_root is not None, "an explicit scoring window needs a test root in the dataset spec"
        windows[Split.SCORING] = sw
        chosen[Split.SCORING] = select(test_parts or [], sw, spec, test_root)
    return windows, chosen


def _exists(url: str) -> bool:
    fs, path = fs_for(url)
    return fs.exists(path)


def suggest_logical_date(spec: DatasetSpec, config: PipelineConfig, data_root: str | None = None) -> datetime:
    """The earliest logical date at which the newest labelled partition has matured (for demos)."""
    root = spec.root_path("train", data_root)
    assert root is not None
    parts = list_partitions(root, spec)
    if not parts:
        raise DataError(f"no partitions under {root}")
    end = parts[-1].time + timedelta(hours=spec.partition.grain_hours)
    return end + timedelta(days=maturity_days(config.windows, spec))


def describe(windows: dict[str, Window], chosen: dict[str, list[Partition]]) -> dict[str, Any]:
    return {
        n: {**w.to_dict(), "partitions": len(chosen.get(n, [])), "files": sum(len(p.files) for p in chosen.get(n, []))}
        for n, w in windows.items()
    }
