"""The source contract and the part every backend shares: projection, order, batch boundaries.

Every backend is asked for the same SQL shape, ``SELECT <requested> FROM <table> ORDER BY
<requested> OFFSET <start_row>``, and its Arrow output is cut here into batches of exactly
``batch_rows`` rows, freshly laid out in canonical types. Batch ``i`` therefore holds rows
``[start_row + i * batch_rows, start_row + (i + 1) * batch_rows)`` of one total order, on any
backend, which is what lets a gateway's commitment match the runtime's byte for byte and
lets a restarted gateway resume where the last acknowledged batch ended.

``order="stored"`` drops the ORDER BY where the engine guarantees the stored order of an
unchanged file (DuckDB reading its own file, Parquet or CSV with insertion order preserved):
as reproducible for that file, without a sort (a sort costs about three quarters of the read
and is what makes an engine spill).
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator, Sequence
from contextlib import AbstractContextManager
from typing import Literal, Protocol

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from chronoseal.errors import DataError
from chronoseal.spec import Dataset

from ._types import canonical_type, check_dataset
from ._url import SourceUrl

#: Rows per batch when the caller does not say: ~0.5-4 MiB for typical time-series rows.
DEFAULT_BATCH_ROWS = 65536


#: ``sorted``: by the requested columns, the same on every backend; ``stored``: the order the
#: file holds, reproducible for an unchanged file, only where ``stored_order_reproducible``.
ReadOrder = Literal["sorted", "stored"]


class Source(Protocol):
    """A party's table, read column by column in one deterministic order, memory bounded."""

    @property
    def stored_order_reproducible(self) -> bool:
        """Whether ``batches(..., order="stored")`` is deterministic for unchanged data."""
        ...

    @property
    def url(self) -> str:
        """Where the data is, with any password redacted: safe to log."""
        ...

    def schema(self) -> pa.Schema:
        """Every column with the Arrow type :meth:`batches` yields for it, without a scan."""
        ...

    def row_count(self) -> int | None:
        """The exact number of rows when the backend knows it cheaply, else ``None``."""
        ...

    def check(self, dataset: Dataset) -> None:
        """Raise :class:`DataError` unless every declared column exists with a usable type."""
        ...

    def batches(
        self,
        columns: Sequence[str],
        *,
        batch_rows: int = DEFAULT_BATCH_ROWS,
        start_row: int = 0,
        order: ReadOrder = "sorted",
    ) -> Iterator[pa.RecordBatch]:
        """Only ``columns``, sorted by them in the order given (or in stored order),
        ``batch_rows`` rows a batch."""
        ...


def quote_ident(name: str) -> str:
    """An SQL identifier in double quotes, embedded quotes doubled (DuckDB and PostgreSQL)."""
    return '"' + name.replace('"', '""') + '"'


def _validate_request(
    columns: Sequence[str], batch_rows: int, start_row: int, order: str, stored_ok: bool
) -> list[str]:
    """Programming errors in the call itself, as ``ValueError`` (not a refusal of the data)."""
    if isinstance(columns, str):
        raise ValueError("columns must be a sequence of column names, not one string")
    names = list(columns)
    if not names:
        raise ValueError("request at least one column")
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ValueError(f"columns requested twice: {duplicates}")
    if batch_rows < 1:
        raise ValueError(f"batch_rows must be at least 1, got {batch_rows}")
    if start_row < 0:
        raise ValueError(f"start_row must be at least 0, got {start_row}")
    if order not in ("sorted", "stored"):
        raise ValueError(f"order must be 'sorted' or 'stored', got {order!r}")
    if order == "stored" and not stored_ok:
        raise ValueError("this backend guarantees no stored order: read it sorted")
    return names


def rebatch(
    upstream: Iterable[pa.RecordBatch],
    target: pa.Schema,
    batch_rows: int,
    where: str,
    *,
    floats_settled: bool = False,
) -> Iterator[pa.RecordBatch]:
    """Cut ``upstream`` into fresh ``batch_rows``-row batches of ``target``'s types, lazily.

    It holds no more upstream rows than one output batch needs (plus the rest of the upstream
    batch it is cutting), so memory follows ``batch_rows``, never the table. Output batches
    are laid out afresh (:func:`_settle`): their Arrow IPC bytes depend on the values alone,
    not on how the backend happened to chunk or lay them out. ``floats_settled``: the engine
    already reads -0.0 as 0.0 and every NaN as one NaN.
    """
    pending: list[pa.RecordBatch] = []
    held = 0
    for incoming in upstream:
        batch = _conform(incoming, target, where)
        while batch.num_rows:
            take = min(batch_rows - held, batch.num_rows)
            pending.append(batch.slice(0, take))
            held += take
            batch = batch.slice(take)
            if held == batch_rows:
                yield _settle(pending, floats_settled)
                pending, held = [], 0
    if held:
        yield _settle(pending, floats_settled)


def _settle(pieces: list[pa.RecordBatch], floats_settled: bool = False) -> pa.RecordBatch:
    """One batch whose bytes depend only on its values.

    Concatenation lays the pieces out afresh (no offsets, no validity bitmap without nulls).
    Where there are nulls, the slots under them are zeroed and the bitmap's spare bits
    cleared: backends leave arbitrary bytes there, and IPC would carry them into the hash.
    Floats read -0.0 as 0.0 and every NaN as one quiet NaN, because DuckDB already does
    and PostgreSQL does not.
    """
    if len(pieces) == 1 and all(_laid_out_exactly(c) for c in pieces[0].columns):
        # The engine's batch as it came: concatenating it would copy every byte into the
        # same layout (its validity bitmaps aside, dropped here).
        batch = pa.RecordBatch.from_arrays(
            [_without_validity(c) for c in pieces[0].columns], schema=pieces[0].schema
        )
    else:
        batch = pa.concat_batches(pieces)
    columns = batch.columns if floats_settled else [_settle_floats(c) for c in batch.columns]
    return pa.RecordBatch.from_arrays(
        [_settle_nulls(column) for column in columns], schema=batch.schema
    )


def _laid_out_exactly(column: pa.Array) -> bool:
    """Whether ``column``'s Arrow IPC bytes already depend on its values alone: unsliced,
    of a fixed-width or string type, and no buffer longer than its values (IPC writes a
    buffer whole, so an engine's spare capacity would reach the hash). A bitmap's spare bits
    (booleans) are not checked here, so those columns are always laid out afresh."""
    kind, length = column.type, len(column)
    if column.offset != 0 or pa.types.is_dictionary(kind):
        return False
    buffers = column.buffers()
    if pa.types.is_string(kind) or pa.types.is_large_string(kind):
        offsets, data = buffers[1], buffers[2]
        width = 8 if pa.types.is_large_string(kind) else 4
        if offsets is None or data is None or offsets.size != (length + 1) * width:
            return False
        bounds = np.frombuffer(offsets, dtype=np.int64 if width == 8 else np.int32)
        return int(bounds[0]) == 0 and int(bounds[length]) == data.size
    fixed = (
        pa.types.is_integer(kind)
        or pa.types.is_floating(kind)
        or pa.types.is_temporal(kind)
        or pa.types.is_decimal(kind)
    )
    if not fixed or len(buffers) != 2 or buffers[1] is None:
        return False
    return bool(buffers[1].size == length * (kind.bit_width // 8))


def _without_validity(column: pa.Array) -> pa.Array:
    """The column without a validity bitmap when it has no nulls (as concatenation leaves
    it; zero-copy)."""
    buffers = column.buffers()
    if buffers[0] is None or column.null_count:
        return column
    return pa.Array.from_buffers(column.type, len(column), [None, *buffers[1:]], null_count=0)


def _settle_floats(column: pa.Array) -> pa.Array:
    if not pa.types.is_floating(column.type):
        return column
    # IEEE 754: -0.0 + 0.0 == +0.0; NaN compares unequal to itself, so is_nan finds them all.
    positive_zero = pc.add(column, pa.scalar(0.0, type=column.type))
    settled: pa.Array = pc.if_else(
        pc.is_nan(column), pa.scalar(math.nan, type=column.type), positive_zero
    )
    return settled


def _zero(kind: pa.DataType) -> pa.Scalar:
    if pa.types.is_string(kind):
        return pa.scalar("", type=kind)
    if pa.types.is_boolean(kind):
        return pa.scalar(False)
    if pa.types.is_date32(kind):
        return pa.scalar(0, type=pa.int32()).cast(kind)
    return pa.scalar(0, type=pa.int64()).cast(kind)


def _settle_nulls(column: pa.Array) -> pa.Array:
    if column.null_count == 0:
        return column
    length = len(column)
    filled = column.fill_null(_zero(column.type))
    bits = bytearray(column.is_valid().buffers()[1].to_pybytes()[: (length + 7) // 8])
    if length % 8:
        bits[-1] &= (1 << (length % 8)) - 1
    return pa.Array.from_buffers(
        column.type,
        length,
        [pa.py_buffer(bytes(bits)), *filled.buffers()[1:]],
        null_count=column.null_count,
    )


def _conform(batch: pa.RecordBatch, target: pa.Schema, where: str) -> pa.RecordBatch:
    arrays = []
    for field, column in zip(target, batch.columns, strict=True):
        if column.type == field.type:  # a cast to its own type costs ~50 us a column
            arrays.append(column)
            continue
        try:
            arrays.append(column.cast(field.type, safe=True))
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
            raise DataError(
                f"{where}: column {field.name!r} holds a value that is not exactly "
                f"representable as {field.type}: {exc}",
                id="data.column.type",
                context={"source": where, "column": field.name, "type": str(field.type)},
            ) from None
    return pa.RecordBatch.from_arrays(arrays, schema=target)


class SqlSource(ABC):
    """A table behind an SQL engine that streams Arrow: what DuckDB and PostgreSQL share."""

    #: The engine itself reads -0.0 as 0.0 and every NaN as one quiet NaN.
    _engine_settles_floats = False

    def __init__(self, location: SourceUrl) -> None:
        self._location = location
        self._native: pa.Schema | None = None

    def _table_schema(self) -> pa.Schema:
        """The native schema, read once per source object: every later read checks its own
        batches against it (a table changed meanwhile fails ``data.column.type``)."""
        if self._native is None:
            self._native = self._native_schema()
        return self._native

    @property
    def url(self) -> str:
        return str(self._location)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.url!r})"

    @abstractmethod
    def _native_schema(self) -> pa.Schema:
        """The table's columns as the engine's Arrow export types them (no rows read)."""

    @abstractmethod
    def _relation(self) -> str:
        """The FROM clause naming the table, every identifier quoted."""

    @abstractmethod
    def _execute(
        self, sql: str, batch_rows: int, *, scan: bool
    ) -> AbstractContextManager[Iterable[pa.RecordBatch]]:
        """Run ``sql`` on a fresh connection, streaming its result (in batches of about
        ``batch_rows`` where the engine takes a row count); close it on exit. ``scan``: the
        query reads in stored order, with no sort."""

    def _canonical(self, field: pa.Field) -> pa.DataType | None:
        return canonical_type(field.type)

    def _select(self, field: pa.Field) -> str:
        return quote_ident(field.name)

    def _order(self, field: pa.Field, canonical: pa.DataType) -> str:
        return f"{quote_ident(field.name)} ASC NULLS LAST"

    @property
    def stored_order_reproducible(self) -> bool:
        return False

    def schema(self) -> pa.Schema:
        return pa.schema(
            [pa.field(f.name, self._canonical(f) or f.type) for f in self._table_schema()]
        )

    def check(self, dataset: Dataset) -> None:
        check_dataset(self.schema(), dataset, self.url)

    def batches(
        self,
        columns: Sequence[str],
        *,
        batch_rows: int = DEFAULT_BATCH_ROWS,
        start_row: int = 0,
        order: ReadOrder = "sorted",
    ) -> Iterator[pa.RecordBatch]:
        # Validated eagerly, so a bad request fails at the call, not at the first next().
        names = _validate_request(
            columns, batch_rows, start_row, order, self.stored_order_reproducible
        )
        native = self._table_schema()
        missing = [n for n in names if n not in native.names]
        if missing:
            raise DataError(
                f"{self.url} has no column {', '.join(repr(n) for n in missing)}",
                id="data.column.missing",
                context={"source": self.url, "columns": missing},
            )
        fields = [native.field(n) for n in names]
        typed = [(f, self._canonical(f)) for f in fields]
        unsupported = [f"{f.name!r} ({f.type})" for f, t in typed if t is None]
        if unsupported:
            raise DataError(
                f"{self.url}: chronoseal cannot read column {', '.join(unsupported)}: "
                "supported are integers, floats, decimals, booleans, text, dates and timestamps",
                id="data.column.type",
                context={"source": self.url, "columns": unsupported},
            )
        target = pa.schema([pa.field(f.name, t) for f, t in typed if t is not None])
        select = ", ".join(self._select(f) for f in fields)
        sql = f"SELECT {select} FROM {self._relation()}"
        if order == "sorted":
            keys = zip(fields, target.types, strict=True)
            sql += " ORDER BY " + ", ".join(self._order(f, t) for f, t in keys)
        if start_row:
            sql += f" OFFSET {int(start_row)}"
        return self._stream(sql, target, batch_rows, scan=order == "stored")

    def _stream(
        self, sql: str, target: pa.Schema, batch_rows: int, *, scan: bool
    ) -> Iterator[pa.RecordBatch]:
        with self._execute(sql, batch_rows, scan=scan) as upstream:
            yield from rebatch(
                upstream, target, batch_rows, self.url, floats_settled=self._engine_settles_floats
            )
