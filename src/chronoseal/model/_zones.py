"""The one rule for zone-aware times, in Arrow alone (a gateway applies it without pandas).

A grid of dates (``D`` and longer) labels calendar days; a sub-daily grid labels instants.
An aware time on the first is the local date it names, only at its local midnight; on the
second it is its instant in UTC.
"""

from __future__ import annotations

import re

import pyarrow as pa
import pyarrow.compute as pc

from chronoseal.errors import DataError


def is_aware(arrow_type: pa.DataType) -> bool:
    return bool(pa.types.is_timestamp(arrow_type) and arrow_type.tz is not None)


class ZoneTimeError(DataError):
    """Zone-aware times on a grid of dates that are not at the local midnight of their day;
    ``count`` says how many (the message names no value). Each caller re-raises it with its
    own id."""

    default_id = "data.time.not_local_midnight"

    def __init__(self, count: int, frequency: str) -> None:
        super().__init__(
            f"{count} zone-aware times are not at a local midnight; on the {frequency!r} grid "
            "an aware time is taken as the local date it names, so it must be that date's "
            "midnight in its own zone (a file or database keeps the UTC instant, not the "
            "zone: store the days as dates or naive local midnights)"
        )
        self.count = count


_SUBDAILY = re.compile(r"^([1-9][0-9]*)?(s|min|h)$")


def is_date_grid(frequency: str) -> bool:
    """Whether a frequency's grid points are calendar dates (a day or longer)."""
    return _SUBDAILY.fullmatch(frequency) is None


def apply_zone_rule(
    column: pa.ChunkedArray | pa.Array, frequency: str
) -> pa.ChunkedArray | pa.Array:
    """The one rule for zone-aware times, wherever rows enter: a gateway's source, the join,
    a feed, a forecast request's observations. On a grid of dates (``D`` or longer) an aware
    time stands for the local calendar date it names, and only at that date's local
    midnight: a Tokyo midnight is its own date, which converting to UTC first would move to
    the day before. Any other time of day is refused (:class:`ZoneTimeError`, with the
    count and no value). On a sub-daily grid an aware time is its instant, in UTC. Naive
    times and dates are returned as they are."""
    kind = column.type
    if not is_aware(kind):
        return column
    if not is_date_grid(frequency):
        return column.cast(pa.timestamp(kind.unit, "UTC"))
    local = pc.local_timestamp(column)
    off = pc.not_equal(local, pc.floor_temporal(local, unit="day"))
    count = int(pc.sum(off.cast(pa.int64())).as_py() or 0)
    if count:
        raise ZoneTimeError(count, frequency)
    return local.cast(pa.date32())
