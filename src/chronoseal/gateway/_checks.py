"""What the gateway refuses or normalises in its own data before any of it is desensitized.

The gateway reads in the source's stored order where that is reproducible and in time order
(a scan: no sort, nothing spilled), and sorted by the dataset's columns, time first,
otherwise. Either way a repeated ``(time, entity)`` key is found in memory bounded by the
batch: sorted, repeats are adjacent (one remembered row); in stored time order, they lie in
one run of equal times (the trailing run is remembered). Refusals name the dataset, the
column and a count, never a value.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Iterator
from zoneinfo import ZoneInfo

import pyarrow as pa
import pyarrow.compute as pc

from chronoseal.errors import DataError
from chronoseal.model import ZoneTimeError, apply_zone_rule
from chronoseal.sources import ReadOrder, Source
from chronoseal.spec import Dataset, TaskSpec

#: Rows per batch of the time-column survey: one column, so large batches are cheap.
_SURVEY_ROWS = 1 << 20


def _refuse(message: str, id: str, dataset: Dataset, column: str, rows: int) -> DataError:
    return DataError(
        message, id=id, context={"dataset": dataset.name, "column": column, "rows": rows}
    )


def _null_times(dataset: Dataset, nulls: int) -> DataError:
    time = dataset.time_column
    return _refuse(
        f"dataset {dataset.name!r}: {nulls} rows have no value in the time column "
        f"{time!r}; nothing is sent",
        "gateway.data.null_time",
        dataset,
        time,
        nulls,
    )


def zoned(batch: pa.RecordBatch, dataset: Dataset) -> pa.RecordBatch:
    """``batch`` with its times under the task's one zone rule, on the dataset's own grid:
    zone-aware times become their local dates on a grid of dates (only at local midnight)
    and UTC instants on a sub-daily one (:func:`~chronoseal.model.apply_zone_rule`)."""
    time = dataset.time_column
    column = batch.column(time)
    try:
        ruled = apply_zone_rule(column, dataset.frequency)
    except ZoneTimeError as exc:
        raise _refuse(
            f"dataset {dataset.name!r}, column {time!r}: {exc.message}; nothing is sent",
            "gateway.data.not_local_midnight",
            dataset,
            time,
            exc.count,
        ) from None
    if ruled is column:
        return batch
    return batch.set_column(batch.schema.get_field_index(time), time, ruled)


def read_order(source: Source, dataset: Dataset) -> ReadOrder:
    """``stored`` when the source reproduces its stored order and that order is time order,
    else ``sorted``. Surveys the time column alone first, so a row without a time is refused
    before any data moves."""
    if not source.stored_order_reproducible:
        return "sorted"
    nulls = 0
    ordered = True
    last: pa.Scalar | None = None
    for batch in source.batches([dataset.time_column], batch_rows=_SURVEY_ROWS, order="stored"):
        column = batch.column(0)
        nulls += column.null_count
        if nulls or not ordered or not len(column):
            continue
        n = len(column)
        if last is not None and pc.less(column[0], last).as_py():
            ordered = False
        elif n > 1 and pc.any(pc.less(column.slice(1), column.slice(0, n - 1))).as_py():
            ordered = False
        last = column[n - 1]
    if nulls:
        raise _null_times(dataset, nulls)
    return "stored" if ordered else "sorted"


def checked_batches(
    batches: Iterable[pa.RecordBatch], dataset: Dataset, spec: TaskSpec, order: ReadOrder
) -> Iterator[pa.RecordBatch]:
    """Raw source batches (read in ``order``): no row without a time, zone-aware times under
    the zone rule (:func:`zoned`), and (unless the task combines duplicates or the policy
    resamples) no repeated ``(time, entity)`` key."""
    keys = [dataset.time_column, *dataset.entity_columns]
    check_duplicates = spec.join.duplicates == "refuse" and dataset.policy.resample is None
    try:
        yield from _checked(batches, dataset, keys, check_duplicates, order)
    finally:
        close = getattr(batches, "close", None)
        if close is not None:  # a refusal mid-stream: let the source release its files now
            close()


def _checked(
    batches: Iterable[pa.RecordBatch],
    dataset: Dataset,
    keys: list[str],
    check_duplicates: bool,
    order: ReadOrder,
) -> Iterator[pa.RecordBatch]:
    time = dataset.time_column
    previous: tuple[object, ...] | None = None
    run: pa.Table | None = None
    for batch in batches:
        column = batch.column(time)
        nulls = column.null_count
        if nulls:
            raise _null_times(dataset, nulls)
        batch = zoned(batch, dataset)
        if check_duplicates and batch.num_rows:
            if order == "sorted":
                previous = _no_repeated_key(batch, keys, previous, dataset)
            else:
                run = _no_repeated_key_in_time_order(batch, keys, run, dataset)
        yield batch


def _repeats(table: pa.Table | pa.RecordBatch, keys: list[str]) -> int:
    """Rows equal in every key to the row before them (nulls equal to nulls)."""
    n = table.num_rows
    if n < 2:
        return 0
    same: pa.Array | None = None
    for key in keys:
        values = table.column(key)
        later, earlier = values.slice(1), values.slice(0, n - 1)
        equal = pc.fill_null(pc.equal(later, earlier), False)
        both_null = pc.and_(later.is_null(), earlier.is_null())
        match = pc.or_(equal, both_null)
        same = match if same is None else pc.and_(same, match)
    return int(pc.sum(same).as_py() or 0)


def _duplicates_refused(dataset: Dataset, keys: list[str], repeated: int) -> DataError:
    return _refuse(
        f"dataset {dataset.name!r}: {repeated} rows repeat a ({', '.join(keys)}) key; "
        "the task's join.duplicates says refuse, so nothing is sent",
        "gateway.data.duplicate_keys",
        dataset,
        dataset.time_column,
        repeated,
    )


def _no_repeated_key(
    batch: pa.RecordBatch, keys: list[str], previous: tuple[object, ...] | None, dataset: Dataset
) -> tuple[object, ...]:
    n = batch.num_rows
    repeated = _repeats(batch, keys)
    first = tuple(batch.column(k)[0].as_py() for k in keys)
    if previous is not None and first == previous:
        repeated += 1
    if repeated:
        raise _duplicates_refused(dataset, keys, repeated)
    return tuple(batch.column(k)[n - 1].as_py() for k in keys)


def _no_repeated_key_in_time_order(
    batch: pa.RecordBatch, keys: list[str], run: pa.Table | None, dataset: Dataset
) -> pa.Table:
    """Times never decrease (the survey saw to it), so equal keys share one run of equal
    times; only a run with more than one row needs sorting, and only the trailing run is
    carried into the next batch."""
    time = keys[0]
    table = pa.Table.from_batches([batch.select(keys)])
    if run is not None and run.num_rows and run.column(time)[0] == table.column(time)[0]:
        table = pa.concat_tables([run, table])
    table = table.combine_chunks()
    times = table.column(time)
    n = table.num_rows
    if n > 1 and pc.any(pc.equal(times.slice(1), times.slice(0, n - 1))).as_py():
        ordered = table.sort_by([(k, "ascending") for k in keys])
        repeated = _repeats(ordered, keys)
        if repeated:
            raise _duplicates_refused(dataset, keys, repeated)
    trailing: pa.Table = table.filter(pc.equal(times, times[n - 1]))
    return trailing


def in_window(
    batches: Iterable[pa.RecordBatch],
    time: str,
    until: dt.date | dt.datetime | None,
    *,
    feed: bool,
    naive_zone: str | None = None,
) -> Iterator[pa.RecordBatch]:
    """The rows a training stream sends or, for a feature feed, the rows after them: the
    one cut of ``[task] data_until`` that streams, resumes and feeds all use. A date keeps
    the rows up to the end of that day; a time (UTC) keeps the rows up to and at it, naive
    times read in ``naive_zone`` (UTC without one), as the join reads them. With no
    ``until`` training takes every row and a feed none of these (its rows are the ones that
    appear later)."""
    for batch in batches:
        if until is None:
            if not feed:
                yield batch
            continue
        column = batch.column(time)
        keep = (
            _after(column, until, naive_zone)
            if feed
            else pc.invert(_after(column, until, naive_zone))
        )
        chosen = batch.filter(keep)
        if chosen.num_rows:
            yield chosen


def _after(column: pa.Array, until: dt.date | dt.datetime, naive_zone: str | None) -> pa.Array:
    """Which times fall after the training window."""
    kind = column.type
    if pa.types.is_date32(kind) or pa.types.is_date64(kind):
        # a date labels its day from midnight (UTC), as the join reads dates
        day = until.date() if isinstance(until, dt.datetime) else until
        return pc.greater(column, pa.scalar(day, type=kind))
    aware = getattr(kind, "tz", None) is not None
    if isinstance(until, dt.datetime):
        last = until
        if not aware:
            clock = last.astimezone(ZoneInfo(naive_zone)) if naive_zone else last
            last = clock.replace(tzinfo=None)
        return pc.greater(column, pa.scalar(last, type=kind))
    zone = dt.UTC if aware else None
    end = dt.datetime.combine(until + dt.timedelta(days=1), dt.time(), tzinfo=zone)
    return pc.greater_equal(column, pa.scalar(end, type=kind))


def refuse_empty_window(
    source: Source,
    dataset: Dataset,
    until: dt.date | dt.datetime | None,
    naive_zone: str | None = None,
) -> None:
    """Refuse a dataset with no row in the training window, before any channel opens or any
    chain action: reads the time column alone, and only up to the first row in the window."""
    order: ReadOrder = "stored" if source.stored_order_reproducible else "sorted"
    batches = source.batches([dataset.time_column], batch_rows=_SURVEY_ROWS, order=order)
    try:
        ruled = (zoned(b, dataset) for b in batches)
        rows = in_window(ruled, dataset.time_column, until, feed=False, naive_zone=naive_zone)
        if any(b.num_rows for b in rows):
            return
    finally:
        close = getattr(batches, "close", None)
        if close is not None:
            close()
    window = "" if until is None else f" up to data_until {until.isoformat()}"
    raise _refuse(
        f"dataset {dataset.name!r}: the source holds no row in the training window{window}; "
        "nothing is sent",
        "data.source.empty",
        dataset,
        dataset.time_column,
        0,
    )
