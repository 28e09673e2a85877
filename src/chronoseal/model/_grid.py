"""The task's time grid: spec frequency aliases as pandas offsets, UTC normalisation, snapping.

Spec frequencies are the aliases statsforecast/mlforecast users write (``D``, ``h``,
``30min``, ``W``, ``MS``, ``M``, ``QS``, ``Y`` …). pandas 2.2 renamed the month/quarter/year
*end* aliases (``ME``, ``QE``, ``YE``); the runtime maps them once here so that no deprecated
alias reaches a library.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from chronoseal.errors import AnalysisError, DataError

from ._zones import apply_zone_rule, is_date_grid

_ALIAS = re.compile(r"^([1-9][0-9]*)?(s|min|h|D|W|MS|M|QS|Q|YS|Y)$")
_PANDAS = {"M": "ME", "Q": "QE", "Y": "YE", "W": "W-SUN"}
_PERIOD = {"W": "W-SUN", "MS": "M", "M": "M", "QS": "Q", "Q": "Q", "YS": "Y", "Y": "Y"}
_TICKS = {"s", "min", "h", "D"}
#: Calendar features per base unit: what varies within a season of that frequency.
_CALENDAR = {
    "s": ["minute", "hour", "dayofweek"],
    "min": ["minute", "hour", "dayofweek"],
    "h": ["hour", "dayofweek"],
    "D": ["dayofweek", "month", "dayofyear"],
    "W": ["month", "week"],
    "MS": ["month"],
    "M": ["month"],
    "QS": ["quarter"],
    "Q": ["quarter"],
    "YS": [],
    "Y": [],
}


@dataclass(frozen=True)
class Grid:
    """A task frequency: its pandas alias, and how timestamps snap to it."""

    alias: str
    pandas: str
    unit: str
    multiple: int

    @classmethod
    def parse(cls, alias: str) -> Grid:
        match = _ALIAS.fullmatch(alias)
        if match is None:
            raise AnalysisError(
                f"{alias!r} is not a frequency alias the runtime understands",
                id="analysis.frequency.unknown",
            )
        multiple = int(match.group(1) or 1)
        unit = match.group(2)
        if unit not in _TICKS and multiple != 1:
            raise AnalysisError(
                f"{alias!r}: multiples are supported for fixed periods (s, min, h, D) only",
                id="analysis.frequency.unsupported",
            )
        base = _PANDAS.get(unit, unit)
        return cls(alias, f"{multiple}{base}" if multiple > 1 else base, unit, multiple)

    @property
    def fixed(self) -> bool:
        return self.unit in _TICKS

    @property
    def subdaily(self) -> bool:
        return self.unit in {"s", "min", "h"}

    def calendar_features(self) -> list[str]:
        return list(_CALENDAR[self.unit])

    def snap(self, ds: pd.Series) -> pd.Series:
        """Each timestamp's grid point: the period it falls in, labelled as pandas does."""
        if self.fixed:
            return ds.dt.floor(self.pandas)
        periods = ds.dt.to_period(_PERIOD[self.unit])
        if self.unit in {"M", "Q", "Y", "W"}:
            snapped = periods.dt.to_timestamp(how="end").dt.normalize()
        else:
            snapped = periods.dt.to_timestamp(how="start")
        return snapped.astype("datetime64[ns]")

    def period_days(self, dates: pd.DatetimeIndex) -> tuple[np.ndarray, np.ndarray]:
        """First day and the day after the last of each coarse (weekly or longer) period."""
        periods = dates.to_period(_PERIOD[self.unit])
        starts = periods.start_time.values.astype("datetime64[D]")
        ends = periods.end_time.values.astype("datetime64[D]") + np.timedelta64(1, "D")
        return starts, ends

    def range(self, start: pd.Timestamp, end: pd.Timestamp) -> pd.DatetimeIndex:
        return pd.date_range(start, end, freq=self.pandas)

    def periods_between(self, start: pd.Timestamp, end: pd.Timestamp) -> int:
        return len(self.range(start, end))


def is_time(arrow_type: pa.DataType) -> bool:
    return bool(pa.types.is_timestamp(arrow_type) or pa.types.is_date(arrow_type))


class LocalTimeError(DataError):
    """Naive local times that do not exist or are ambiguous in the zone they are read in
    (each caller re-raises it with its own id)."""

    default_id = "data.time.ambiguous"


class TimeRangeError(DataError):
    """Times outside what ``datetime64[ns]`` holds, the years 1678 to 2261 (each caller
    re-raises it with its own id)."""

    default_id = "data.time.out_of_range"


_UNIT_NS = {"s": 10**9, "ms": 10**6, "us": 10**3, "ns": 1}
# A day inside the datetime64[ns] bounds, so that converting between zones cannot overflow.
_NS_LO = pd.Timestamp.min.value + 86_400 * 10**9
_NS_HI = pd.Timestamp.max.value - 86_400 * 10**9


def _outside_ns(column: pa.ChunkedArray | pa.Array) -> int:
    arrow_type = column.type
    if pa.types.is_date32(arrow_type):
        ints, per = column.cast(pa.int32()).cast(pa.int64()), 86_400 * 10**9
    elif pa.types.is_date64(arrow_type):
        ints, per = column.cast(pa.int64()), 10**6
    else:
        ints, per = column.cast(pa.int64()), _UNIT_NS[arrow_type.unit]
    lo, hi = -(-_NS_LO // per), _NS_HI // per
    outside = pc.or_(pc.less(ints, lo), pc.greater(ints, hi))
    return int(pc.sum(outside.cast(pa.int64())).as_py() or 0)


def to_utc(column: pa.ChunkedArray | pa.Array, naive_zone: str | None, frequency: str) -> pd.Series:
    """Naive UTC ``datetime64[ns]`` on a ``frequency`` grid. Aware times follow
    :func:`apply_zone_rule` (local dates on a grid of dates, else converted to UTC); naive
    times are read in ``naive_zone`` on a sub-daily grid (left as they are when it is None,
    which the caller allows only if nothing is aware) and are their own wall-clock dates on
    a grid of dates. Dates are calendar days, the labels of their periods: they are never
    moved by a zone.

    Raises :class:`TimeRangeError` (the count of times ``datetime64[ns]`` cannot hold),
    :class:`ZoneTimeError` (the count of aware times that are not at a local midnight on a
    grid of dates) or :class:`LocalTimeError` (the count of local times that do not exist
    or are ambiguous in ``naive_zone``, at a daylight-saving change); no message carries a
    value, and the caller turns them into refusals.
    """
    outside = _outside_ns(column)
    if outside:
        raise TimeRangeError(f"{outside} times are outside the years 1678 to 2261")
    column = apply_zone_rule(column, frequency)
    arrow_type = column.type
    if is_date_grid(frequency):
        naive_zone = None  # a wall-clock midnight is its date; no zone moves it
    if pa.types.is_date(arrow_type):
        return pd.Series(column.cast(pa.timestamp("s")).to_pandas(), dtype="datetime64[ns]")
    values = pd.Series(column.to_pandas())
    if arrow_type.tz is not None:
        return values.dt.tz_convert("UTC").dt.tz_localize(None).astype("datetime64[ns]")
    values = values.astype("datetime64[ns]")
    if naive_zone is None or naive_zone == "UTC":
        return values
    localized = values.dt.tz_localize(naive_zone, ambiguous="NaT", nonexistent="NaT")
    bad = int(localized.isna().sum() - values.isna().sum())
    if bad:
        raise LocalTimeError(f"{bad} local times do not exist or are ambiguous in {naive_zone}")
    return localized.dt.tz_convert("UTC").dt.tz_localize(None).astype("datetime64[ns]")


def as_float(values: pd.Series) -> pd.Series:
    """A value column as float64: booleans and integers widened, labels as ordinal codes."""
    if pd.api.types.is_bool_dtype(values) or pd.api.types.is_numeric_dtype(values):
        return values.astype("float64")
    labels = values.astype("string")
    codes = pd.Categorical(labels, categories=sorted(labels.dropna().unique())).codes
    return pd.Series(np.where(codes < 0, np.nan, codes), index=values.index, dtype="float64")
