"""ltv_core.timeutil.parse_time: every input becomes a plain, aware UTC datetime."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pendulum
import pytest

from ltv_core.errors import SpecError
from ltv_core.timeutil import parse_time


@pytest.mark.parametrize("text", ["2024-03-16", "2024-03-16T00:00", "2024-03-16T00:00:00Z",
                                  "2024-03-16 01:00:00+01:00"])
def test_strings_are_aware_utc(text):
    assert parse_time(text) == datetime(2024, 3, 16, tzinfo=timezone.utc)
    assert parse_time(text).tzinfo is not None


def test_a_pendulum_logical_date_stays_aware_after_arithmetic():
    # Airflow hands a pendulum DateTime; pendulum's own arithmetic after astimezone dropped the zone,
    # and comparing the result with a partition time failed the gaming ingest with immature labels on.
    logical = pendulum.datetime(2024, 3, 16, 2, tz="Europe/Madrid")
    out = parse_time(logical) - timedelta(days=3)
    assert type(parse_time(logical)) is datetime
    assert out.tzinfo is not None and out == datetime(2024, 3, 13, 1, tzinfo=timezone.utc)
    assert parse_time("2024-03-01") < out


def test_a_bad_value_names_itself():
    with pytest.raises(SpecError, match="'16/03/2024'"):
        parse_time("16/03/2024")
