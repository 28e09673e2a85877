"""What the gateway refuses or normalises in its own data before any of it is desensitized.

Sources yield rows sorted by the dataset's declared columns, time first, so a repeated
``(time, entity)`` key is always on adjacent rows: the check needs one remembered row, not a
set of every key. Refusals name the dataset, the column and a count, never a value.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import pyarrow as pa
import pyarrow.compute as pc

from chronoseal.errors import DataError
from chronoseal.spec import Dataset, TaskSpec


def _refuse(message: str, id: str, dataset: Dataset, column: str, rows: int) -> DataError:
    return DataError(
        message, id=id, context={"dataset": dataset.name, "column": column, "rows": rows}
    )


def checked_batches(
    batches: Iterable[pa.RecordBatch], dataset: Dataset, spec: TaskSpec
) -> Iterator[pa.RecordBatch]:
    """Raw source batches: no row without a time, zone-aware times in UTC, and (unless the
    task combines duplicates or the policy resamples) no repeated ``(time, entity)`` key."""
    keys = [dataset.time_column, *dataset.entity_columns]
    check_duplicates = spec.join.duplicates == "refuse" and dataset.policy.resample is None
    try:
        yield from _checked(batches, dataset, keys, check_duplicates)
    finally:
        close = getattr(batches, "close", None)
        if close is not None:  # a refusal mid-stream: let the source release its files now
            close()


def _checked(
    batches: Iterable[pa.RecordBatch], dataset: Dataset, keys: list[str], check_duplicates: bool
) -> Iterator[pa.RecordBatch]:
    time = dataset.time_column
    previous: tuple[object, ...] | None = None
    for batch in batches:
        column = batch.column(time)
        nulls = column.null_count
        if nulls:
            raise _refuse(
                f"dataset {dataset.name!r}: {nulls} rows have no value in the time column "
                f"{time!r}; nothing is sent",
                "gateway.data.null_time",
                dataset,
                time,
                nulls,
            )
        kind = column.type
        if pa.types.is_timestamp(kind) and kind.tz is not None and kind.tz != "UTC":
            batch = batch.set_column(
                batch.schema.get_field_index(time),
                time,
                column.cast(pa.timestamp(kind.unit, "UTC")),
            )
        if check_duplicates and batch.num_rows:
            previous = _no_repeated_key(batch, keys, previous, dataset)
        yield batch


def _no_repeated_key(
    batch: pa.RecordBatch, keys: list[str], previous: tuple[object, ...] | None, dataset: Dataset
) -> tuple[object, ...]:
    n = batch.num_rows
    same = pa.array([True] * (n - 1), type=pa.bool_()) if n > 1 else None
    for key in keys:
        values = batch.column(key)
        if same is not None:
            equal = pc.fill_null(pc.equal(values.slice(1), values.slice(0, n - 1)), False)
            both_null = pc.and_(values.slice(1).is_null(), values.slice(0, n - 1).is_null())
            same = pc.and_(same, pc.or_(equal, both_null))
    repeated = int(pc.sum(same).as_py() or 0) if same is not None else 0
    first = tuple(batch.column(k)[0].as_py() for k in keys)
    if previous is not None and first == previous:
        repeated += 1
    if repeated:
        raise _refuse(
            f"dataset {dataset.name!r}: {repeated} rows repeat a ({', '.join(keys)}) key; "
            "the task's join.duplicates says refuse, so nothing is sent",
            "gateway.data.duplicate_keys",
            dataset,
            dataset.time_column,
            repeated,
        )
    return tuple(batch.column(k)[n - 1].as_py() for k in keys)
