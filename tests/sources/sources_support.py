"""Helpers shared by the sources tests: the awkward table, backend names, IPC bytes."""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable
from pathlib import Path

import pyarrow as pa
import pytest

from chronoseal.sources import Source

REPO = Path(__file__).resolve().parents[2]
CHICAGO = REPO / "examples" / "chicago" / "data"
CHICAGO_TABLES = ("transit", "weather", "events")
TABLES = (*CHICAGO_TABLES, "tricky")

OpenTable = Callable[[str, str], Source]


def _value(i: int) -> float | None:
    if i % 17 == 0:
        return None
    if i % 19 == 5:
        return math.nan
    if i % 23 == 4:
        return -0.0
    return (i * 1.25) - 20.0


def tricky_table() -> pa.Table:
    """Ties in time, NULLs, NaN, -0.0, text whose byte order no locale uses, tz-aware times."""
    utc = dt.UTC
    base = dt.datetime(2024, 3, 1, tzinfo=utc)
    entities = ["Zürich", "apple", "Apple", "zebra", "Äpfel", None, 'quote " and, comma']
    rows = []
    for i in range(60):
        rows.append(
            {
                "ts": base + dt.timedelta(hours=i // 7),
                "entity": entities[i % len(entities)],
                "code": (i * 37) % 11 if i % 13 else None,
                "value": _value(i),
                "flag": i % 3 == 0,
            }
        )
    schema = pa.schema(
        [
            ("ts", pa.timestamp("us", tz="UTC")),
            ("entity", pa.string()),
            ("code", pa.int32()),
            ("value", pa.float64()),
            ("flag", pa.bool_()),
        ]
    )
    # Stored in no particular order, so the sources must sort.
    return pa.Table.from_pylist(rows[::-1][::2] + rows[::-1][1::2], schema=schema)


def pg_table_url(pg_url: str, table: str) -> str:
    return f"{pg_url}{'&' if '?' in pg_url else '?'}table={table}"


FILE_BACKENDS = ("duckdb", "parquet", "csv")
ALL_BACKENDS = (
    *FILE_BACKENDS,
    pytest.param("postgresql", marks=pytest.mark.integration),
)


def ipc_bytes(batch: pa.RecordBatch) -> bytes:
    """What a gateway would frame, encrypt and commit to: the batch's Arrow IPC stream."""
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, batch.schema) as writer:
        writer.write_batch(batch)
    return bytes(sink.getvalue().to_pybytes())
