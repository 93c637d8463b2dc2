"""The one ISO-time parser of the project: configs, params, manifests and the UI read times with it."""

from __future__ import annotations

from datetime import datetime, timezone

from ltv_core.errors import SpecError


def parse_time(value: str | datetime) -> datetime:
    """ISO time (``2025-10-01``, ``2025-10-01T13:00``, ``...Z``, with or without zone) as aware UTC;
    a naive time is UTC. Raises SpecError naming the value."""
    if isinstance(value, datetime):
        # a subclass (Airflow's pendulum logical date) becomes a plain datetime: pendulum drops the
        # zone in `astimezone(timezone.utc) - timedelta(...)` (tests/unit/test_timeutil.py)
        dt = value if type(value) is datetime else datetime.fromisoformat(value.isoformat())
    else:
        text = str(value).strip().replace(" ", "T")
        if text.endswith("Z"):
            text = text[:-1] + "+00:00"
        try:
            dt = datetime.fromisoformat(text)
        except ValueError as exc:
            raise SpecError(f"not an ISO date/time: {value!r}") from exc
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    return dt.astimezone(timezone.utc)


def try_parse_time(value: object) -> datetime | None:
    """``parse_time`` for values read back from artefacts: None when absent or not a time."""
    if not isinstance(value, (str, datetime)) or not value:
        return None
    try:
        return parse_time(value)
    except SpecError:
        return None
