"""Memory stays bounded by the batch size, not the table size; batch boundaries are fixed."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import adbc_driver_postgresql.dbapi as pg_dbapi
import duckdb
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sources_support import ipc_bytes, pg_table_url

from chronoseal.errors import DataError
from chronoseal.sources import open_source
from chronoseal.sources._base import rebatch

BATCH_ROWS = 65536
#: Arrow bytes a row of the generated table takes (three 8-byte columns, text, a timestamp).
ROW_BYTES = 8 + 8 + 8 + 8 + 4 + 8


def _generate(path: Path, rows: int) -> None:
    """Five columns, stored newest first, so that reading them in time order needs a sort."""
    con = duckdb.connect(str(path))
    try:
        con.execute(
            f"""
            CREATE TABLE big AS
            SELECT TIMESTAMP '2020-01-01' + to_seconds(i) AS ts,
                   'entity-' || (i % 97) AS entity,
                   i * 0.5 AS v1,
                   (i * 7919) % 100003 AS v2,
                   hash(i) % 1000 AS v3
            FROM range({rows} - 1, -1, -1) t(i)
            """
        )
    finally:
        con.close()


def _peak_arrow_bytes(path: Path, rows: int) -> int:
    """The most Arrow memory held while streaming ``rows`` rows, sampled at every batch."""
    # 64 MiB of DuckDB working memory: less than half the table. A stored-order read is a
    # scan, so it streams in that bound (newest first, as stored).
    source = open_source(f"duckdb://{path}?table=big", memory_limit_mb=64)
    baseline = pa.total_allocated_bytes()
    peak = 0
    seen = 0
    previous = None
    for batch in source.batches(
        ["ts", "entity", "v1", "v2", "v3"], batch_rows=BATCH_ROWS, order="stored"
    ):
        peak = max(peak, pa.total_allocated_bytes() - baseline)
        if previous is not None:
            assert previous > batch.column("ts")[0].value
        previous = batch.column("ts")[batch.num_rows - 1].value
        seen += batch.num_rows
        del batch
    assert seen == rows
    return peak


def test_memory_does_not_grow_with_the_table(tmp_path: Path) -> None:
    small, large = tmp_path / "small.duckdb", tmp_path / "large.duckdb"
    _generate(small, 1_000_000)
    _generate(large, 4_000_000)
    peak_small = _peak_arrow_bytes(small, 1_000_000)
    peak_large = _peak_arrow_bytes(large, 4_000_000)
    one_batch = BATCH_ROWS * ROW_BYTES
    # The large table alone would be ~150 MiB of Arrow; streaming holds a few batches at most.
    bound = 6 * one_batch
    assert peak_small < bound, (peak_small, bound)
    assert peak_large < bound, (peak_large, bound)
    assert peak_large < peak_small + one_batch


def test_a_sort_that_does_not_fit_is_refused_and_spills_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "large.duckdb"
    _generate(path, 4_000_000)
    scratch = tmp_path / "cwd"
    scratch.mkdir()
    monkeypatch.chdir(scratch)  # DuckDB's default spill directory is relative to it
    monkeypatch.setenv("TMPDIR", str(scratch))
    source = open_source(f"duckdb://{path}?table=big", memory_limit_mb=64)
    with pytest.raises(DataError) as info:
        for _ in source.batches(["ts", "entity", "v1", "v2", "v3"], batch_rows=BATCH_ROWS):
            pass
    assert info.value.id == "data.source.memory"
    assert "time order" in info.value.message
    assert list(scratch.rglob("*")) == []


def test_rebatch_pulls_only_what_it_needs() -> None:
    pulled: list[int] = []

    def upstream() -> Iterator[pa.RecordBatch]:
        for i in range(1000):
            pulled.append(i)
            yield pa.record_batch({"x": pa.array(range(i * 10, i * 10 + 10), pa.int64())})

    target = pa.schema([("x", pa.int64())])
    batches = rebatch(upstream(), target, 25, "test")
    first = next(batches)
    assert first.column(0).to_pylist() == list(range(25))
    assert len(pulled) == 3


@settings(max_examples=60, deadline=None)
@given(
    chunks=st.lists(st.integers(min_value=0, max_value=40), min_size=1, max_size=12),
    batch_rows=st.integers(min_value=1, max_value=50),
)
def test_batch_boundaries_do_not_depend_on_how_the_engine_chunks(
    chunks: list[int], batch_rows: int
) -> None:
    total = sum(chunks)
    values = pa.array([None if i % 5 == 0 else f"v{i}" for i in range(total)], pa.string())
    numbers = pa.array([i / 3 if i % 7 else None for i in range(total)], pa.float64())
    table = pa.table({"s": values, "n": numbers})
    pieces = []
    offset = 0
    for size in chunks:
        pieces.append(table.slice(offset, size).to_batches()[0] if size else None)
        offset += size
    upstream = [p for p in pieces if p is not None]
    got = list(rebatch(upstream, table.schema, batch_rows, "test"))
    expected = [
        pa.RecordBatch.from_pylist(b.to_pylist(), schema=table.schema)
        for b in table.combine_chunks().to_batches(max_chunksize=batch_rows)
    ]
    if total == 0:
        assert got == []
    else:
        assert [ipc_bytes(b) for b in got] == [ipc_bytes(b) for b in expected]


@pytest.mark.parametrize("limit", [0, 63])
def test_a_tiny_memory_limit_is_a_programming_error(limit: int) -> None:
    with pytest.raises(ValueError, match="memory_limit_mb"):
        open_source("parquet:///x.parquet", memory_limit_mb=limit)


@pytest.mark.integration
def test_postgres_memory_does_not_grow_with_the_table(pg_url: str, pg_schema: str) -> None:
    peaks = []
    for rows in (250_000, 1_000_000):
        name = f"big_{rows}"
        with pg_dbapi.connect(pg_url, autocommit=True) as conn, conn.cursor() as cur:
            cur.execute(
                f'CREATE TABLE "{pg_schema}".{name} AS '
                "SELECT TIMESTAMP '2020-01-01' + make_interval(secs => i) AS ts, "
                "'entity-' || (i % 97) AS entity, i * 0.5 AS v1, (i * 7919) % 100003 AS v2, "
                f"i % 1000 AS v3 FROM generate_series(CAST({rows} - 1 AS bigint), 0, -1) AS i"
            )
        source = open_source(pg_table_url(pg_url, f"{pg_schema}.{name}"))
        baseline = pa.total_allocated_bytes()
        peak = seen = 0
        for batch in source.batches(["ts", "entity", "v1", "v2", "v3"], batch_rows=BATCH_ROWS):
            peak = max(peak, pa.total_allocated_bytes() - baseline)
            seen += batch.num_rows
            del batch
        assert seen == rows
        peaks.append(peak)
    one_batch = BATCH_ROWS * ROW_BYTES
    # The driver holds up to one ~4 MiB COPY batch besides ours.
    assert peaks[1] < 6 * one_batch + 8 * 2**20, peaks
    assert peaks[1] < peaks[0] + one_batch, peaks
