"""Time shifting and bucketing of the time column (date32, date64 or timestamp)."""

from __future__ import annotations

import re

import pyarrow as pa
import pyarrow.compute as pc

from chronoseal.errors import DataError

_FREQUENCY = re.compile(r"^([1-9][0-9]*)?(s|min|h|D|W|MS|M|QS|Q|YS|Y)$")
_UNITS = {
    "s": "second",
    "min": "minute",
    "h": "hour",
    "D": "day",
    "W": "week",
    "MS": "month",
    "M": "month",
    "QS": "quarter",
    "Q": "quarter",
    "YS": "year",
    "Y": "year",
}
_PER_DAY = {"s": 86_400, "ms": 86_400_000, "us": 86_400_000_000, "ns": 86_400_000_000_000}


def parse_frequency(frequency: str) -> tuple[int, str]:
    """A pandas alias as (multiple, Arrow temporal unit); every period is labelled by its start."""
    match = _FREQUENCY.fullmatch(frequency)
    if match is None:
        raise DataError(f"{frequency!r} is not a resampling frequency", id="data.policy.invalid")
    return int(match.group(1) or 1), _UNITS[match.group(2)]


def check_time_type(values: pa.Array, column: str) -> None:
    t = values.type
    if not (pa.types.is_date32(t) or pa.types.is_date64(t) or pa.types.is_timestamp(t)):
        raise DataError(
            f"time column {column!r} has type {t}; it must be a date or a timestamp",
            id="data.policy.type_mismatch",
            context={"column": column, "type": str(t)},
        )


def shift_days(values: pa.Array, days: int) -> pa.Array:
    """Add a whole number of days; a constant shift keeps every series in order."""
    t = values.type
    if days == 0:
        return values
    if pa.types.is_date32(t):
        return pc.add_checked(values.view(pa.int32()), pa.scalar(days, pa.int32())).view(t)
    per_day = 86_400_000 if pa.types.is_date64(t) else _PER_DAY[t.unit]
    return pc.add_checked(values.view(pa.int64()), pa.scalar(days * per_day, pa.int64())).view(t)


def bucket(values: pa.Array, multiple: int, unit: str) -> pa.Array:
    """The start of each value's period (weeks start on Monday); monotone, so order is kept."""
    return pc.floor_temporal(values, multiple=multiple, unit=unit, week_starts_monday=True)
