"""The one zone rule for times: on a grid of dates an aware time is the local date it names
(only at its local midnight), on a sub-daily grid its instant in UTC; a naive time is its
own wall clock on a grid of dates, whatever ``join.naive_timezone`` says."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pandas as pd
import pyarrow as pa
import pytest
from hypothesis import given
from hypothesis import strategies as st

from chronoseal.model import ZoneTimeError, apply_zone_rule, is_date_grid, to_utc

TOKYO = ZoneInfo("Asia/Tokyo")
ZONES = ["Asia/Tokyo", "America/Chicago", "Pacific/Kiritimati", "Pacific/Pago_Pago", "UTC"]


def _aware(times: list[dt.datetime], zone: str, unit: str = "us") -> pa.Array:
    return pa.array(times, pa.timestamp(unit, tz=zone))


def test_a_tokyo_midnight_on_a_daily_grid_is_its_own_date() -> None:
    midnight = _aware([dt.datetime(2024, 3, 8, tzinfo=TOKYO)], "Asia/Tokyo")
    assert apply_zone_rule(midnight, "D").to_pylist() == [dt.date(2024, 3, 8)]
    # converting to UTC first would have made it 2024-03-07 15:00
    assert to_utc(midnight, None, "D").tolist() == [pd.Timestamp("2024-03-08")]
    assert to_utc(midnight, "Europe/Berlin", "W").tolist() == [pd.Timestamp("2024-03-08")]


def test_an_aware_time_of_day_on_a_grid_of_dates_is_refused_with_a_count_only() -> None:
    times = [dt.datetime(2024, 3, 8, tzinfo=TOKYO), dt.datetime(2024, 3, 9, 13, 37, tzinfo=TOKYO)]
    with pytest.raises(ZoneTimeError) as refused:
        to_utc(_aware(times, "Asia/Tokyo"), None, "D")
    assert refused.value.count == 1
    assert "13" not in str(refused.value) and "2024" not in str(refused.value)


def test_on_a_sub_daily_grid_aware_times_are_their_utc_instants() -> None:
    midnight = _aware([dt.datetime(2024, 3, 8, tzinfo=TOKYO)], "Asia/Tokyo", "s")
    ruled = apply_zone_rule(midnight, "h")
    assert ruled.type == pa.timestamp("s", tz="UTC")
    assert to_utc(midnight, None, "30min").tolist() == [pd.Timestamp("2024-03-07 15:00")]


def test_naive_times_on_a_grid_of_dates_are_not_moved_by_the_naive_zone() -> None:
    evening = pa.array([dt.datetime(2024, 3, 8, 22)], pa.timestamp("s"))
    assert to_utc(evening, "America/Chicago", "D").tolist() == [pd.Timestamp("2024-03-08 22:00")]
    # sub-daily: read in the zone, as before (22:00 CST is 04:00 UTC the next day)
    assert to_utc(evening, "America/Chicago", "h").tolist() == [pd.Timestamp("2024-03-09 04:00")]


def test_only_sub_daily_frequencies_have_instants_as_grid_points() -> None:
    assert [is_date_grid(f) for f in ("s", "15min", "h", "6h")] == [False] * 4
    assert all(is_date_grid(f) for f in ("D", "2D", "W", "MS", "M", "QS", "Q", "YS", "Y"))


@given(
    # Arrow's zone database has no daylight-saving rule past 2037: a local midnight there
    # reads as 23:00 and is refused, never moved to another date.
    day=st.dates(min_value=dt.date(1900, 1, 1), max_value=dt.date(2037, 12, 31)),
    zone=st.sampled_from(ZONES),
    unit=st.sampled_from(["s", "ms", "us", "ns"]),
    freq=st.sampled_from(["D", "W", "MS", "Y"]),
)
def test_every_local_midnight_is_its_date_in_any_zone(
    day: dt.date, zone: str, unit: str, freq: str
) -> None:
    midnight = dt.datetime.combine(day, dt.time(), tzinfo=ZoneInfo(zone))
    column = pa.chunked_array([_aware([midnight], zone, unit)])
    assert apply_zone_rule(column, freq).to_pylist() == [day]
    assert to_utc(column, None, freq).tolist() == [pd.Timestamp(day)]
