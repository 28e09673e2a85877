"""What the time-series stores share: a time column named by the task, time-first order.

A store (InfluxDB, Prometheus, VictoriaMetrics) calls its time column ``time``, or has no
name for it at all; the dataset names it as it likes, so :meth:`SeriesSource.check` binds
the dataset's ``time_column`` to the store's time. Such a store pages through its data in
time order but promises nothing about the order of points at the same instant, so the rows
of each instant are sorted here by the requested columns: the stream is in time order, ties
broken by the requested columns in the order given (with the time column first, as
``Dataset.columns()`` has it, that *is* the sorted order of every other backend). Memory:
one page of the store's answer plus the rows of one instant.
"""

from __future__ import annotations

import datetime as dt
import re
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

from chronoseal.errors import DataError
from chronoseal.spec import Dataset

from ._base import DEFAULT_BATCH_ROWS, ReadOrder, _validate_request, rebatch
from ._http import HttpServer
from ._types import canonical_type, check_dataset
from ._url import SourceUrl

#: The store's own name for its time column, until a dataset names it.
STORE_TIME = "time"
#: The Arrow type of every time-series store's time column in batches.
TIME_TYPE = pa.timestamp("us", tz="UTC")
#: Internal name of the time column in pages (a dataset column could be called anything).
PAGE_TIME = "\x00time"


class SeriesSource(ABC):
    """A measurement or query in a time-series store, read page by page over HTTP."""

    #: Each page covers a time range of its own, after the previous page's, and comes
    #: sorted by time and the requested columns; otherwise pages are only in time order,
    #: an instant possibly split between two.
    _pages_sorted = False

    def __init__(self, location: SourceUrl, base_dir: Path | None) -> None:
        self._location = location
        self._http = HttpServer(location, base_dir, str(location))
        self._time_name = STORE_TIME
        self._native: pa.Schema | None = None

    @property
    def url(self) -> str:
        return str(self._location)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.url!r})"

    @property
    def stored_order_reproducible(self) -> bool:
        # The order of points at one instant is the store's business: always sort them.
        return False

    def row_count(self) -> int | None:
        return None

    @abstractmethod
    def _columns(self) -> pa.Schema:
        """Every column but the time, in canonical types, from the store's metadata."""

    @abstractmethod
    def _probe(self) -> None:
        """Refuse (``data.source.missing`` / ``data.source.empty``) a read that finds nothing."""

    @abstractmethod
    def _pages(self, names: list[str]) -> Iterator[pa.Table]:
        """Columns ``PAGE_TIME`` (a timestamp type) and ``names``: with ``_pages_sorted``,
        pages of successive time ranges, each sorted; else rows in non-decreasing time
        order within and across pages."""

    def _check_column(self, name: str) -> None:  # noqa: B027 - most stores have nothing to add
        """Raise a specific refusal for a column the store cannot deliver as one type."""

    def _store_columns(self) -> pa.Schema:
        if self._native is None:
            self._native = self._columns()
        return self._native

    def schema(self) -> pa.Schema:
        columns = self._store_columns()
        return pa.schema([pa.field(self._time_name, TIME_TYPE), *columns])

    def check(self, dataset: Dataset) -> None:
        """Binds the dataset's time column to the store's time, then checks as every source
        does, then asks the store whether the read would find anything at all."""
        if dataset.time_column not in self._store_columns().names:
            self._time_name = dataset.time_column
        for column in dict.fromkeys(dataset.columns()):
            if column != self._time_name:
                self._check_column(column)
        # Nothing there at all says more than every column it lacks.
        self._probe()
        check_dataset(self.schema(), dataset, self.url)

    def batches(
        self,
        columns: Sequence[str],
        *,
        batch_rows: int = DEFAULT_BATCH_ROWS,
        start_row: int = 0,
        order: ReadOrder = "sorted",
    ) -> Iterator[pa.RecordBatch]:
        names = _validate_request(columns, batch_rows, start_row, order, stored_ok=False)
        schema = self.schema()
        missing = [n for n in names if n not in schema.names]
        if missing:
            raise DataError(
                f"{self.url} has no column {', '.join(repr(n) for n in missing)}",
                id="data.column.missing",
                context={"source": self.url, "columns": missing},
            )
        for name in names:
            if name != self._time_name:
                self._check_column(name)
        unsupported = [n for n in names if canonical_type(schema.field(n).type) is None]
        if unsupported:
            raise DataError(
                f"{self.url}: chronoseal cannot read column {', '.join(unsupported)}",
                id="data.column.type",
                context={"source": self.url, "columns": unsupported},
            )
        target = pa.schema([schema.field(n) for n in names])
        store_names = [n for n in names if n != self._time_name]
        return self._stream(names, store_names, target, batch_rows, start_row)

    def _stream(
        self,
        names: list[str],
        store_names: list[str],
        target: pa.Schema,
        batch_rows: int,
        start_row: int,
    ) -> Iterator[pa.RecordBatch]:
        keys = [PAGE_TIME, *store_names]
        rename = [PAGE_TIME if n == self._time_name else n for n in names]
        pages = self._pages(store_names)
        if self._pages_sorted:
            ordered: Iterable[pa.Table] = pages
        else:
            ordered = time_ordered(pages, keys, self.url)
        projected = (table.select(rename) for table in ordered)
        yield from rebatch(_skip(projected, start_row), target, batch_rows, self.url)


def _skip(tables: Iterable[pa.Table], rows: int) -> Iterator[pa.RecordBatch]:
    for table in tables:
        if rows >= table.num_rows:
            rows -= table.num_rows
            continue
        yield from table.slice(rows).to_batches()
        rows = 0


def _out_of_order(where: str) -> DataError:
    return DataError(
        f"{where}: the store answered with points out of time order; nothing is sent",
        id="data.source.unavailable",
        context={"source": where},
    )


def time_ordered(pages: Iterable[pa.Table], keys: list[str], where: str) -> Iterator[pa.Table]:
    """``pages`` (each in time order, time in ``keys[0]``) as tables sorted by ``keys``.

    The rows of the latest instant seen are held back until a later instant arrives (the
    next page may hold more of them); everything before it is sorted and handed on.
    """
    held: pa.Table | None = None
    sort = [(k, "ascending") for k in keys]
    time = keys[0]
    for page in pages:
        if not page.num_rows:
            continue
        times = page.column(time)
        n = page.num_rows
        if n > 1 and pc.any(pc.less(times.slice(1), times.slice(0, n - 1))).as_py():
            raise _out_of_order(where)
        if held is not None:
            if pc.less(times[0], held.column(time)[0]).as_py():
                raise _out_of_order(where)
            page = pa.concat_tables([held, page])
            times = page.column(time)
        last = times[-1]
        settled = int(pc.sum(pc.less(times, last)).as_py() or 0)
        if settled:
            yield page.slice(0, settled).sort_by(sort, null_placement="at_end")
        held = page.slice(settled).combine_chunks()
    if held is not None and held.num_rows:
        yield held.sort_by(sort, null_placement="at_end")


_DURATION = re.compile(r"(\d+)(ms|s|m|h|d|w|y)")
_UNIT_MS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}
_UNIT_MS |= {"w": 7 * 86_400_000, "y": 365 * 86_400_000}


def bad_param(location: SourceUrl, why: str) -> DataError:
    return DataError(
        f"bad source URL {str(location)!r}: {why}",
        id="data.source.bad_url",
        context={"url": str(location)},
    )


def parse_instant(location: SourceUrl, key: str) -> int | None:
    """Parameter ``key`` as integer nanoseconds since the epoch: RFC 3339 or Unix seconds."""
    text = location.param(key)
    if text is None:
        return None
    try:
        if re.fullmatch(r"-?\d+(\.\d{1,9})?", text):
            whole, _, frac = text.partition(".")
            sign = -1 if whole.startswith("-") else 1
            return int(whole) * 10**9 + sign * int(frac.ljust(9, "0") or 0)
        stamp = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        stamp = None
    if stamp is None or stamp.tzinfo is None:
        raise bad_param(
            location, f"{key}={text!r} is neither RFC 3339 with a zone nor Unix seconds"
        )
    delta = stamp - dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
    return (delta.days * 86_400 + delta.seconds) * 10**9 + delta.microseconds * 1000


def parse_duration_ms(location: SourceUrl, key: str) -> int:
    """Parameter ``key`` as milliseconds: a Prometheus duration (``1d``, ``1h30m``) or seconds."""
    text = location.param(key) or ""
    ms = 0
    if re.fullmatch(r"\d+(\.\d{1,3})?", text):
        ms = round(float(text) * 1000)
    elif re.fullmatch(rf"(?:{_DURATION.pattern})+", text):
        ms = sum(int(n) * _UNIT_MS[u] for n, u in _DURATION.findall(text))
    if ms <= 0:
        raise bad_param(location, f"{key}={text!r} is not a positive duration such as 1d or 15s")
    return ms
