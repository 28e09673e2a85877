"""Re-cutting an engine's batches: the bytes depend on the values alone, whatever the layout.

An engine hands over batches with spare capacity, offsets, validity bitmaps without nulls or
in one piece; a batch that already holds exactly its values is passed on without a copy, any
other is laid out afresh. Either way its Arrow IPC bytes must be those of the same rows built
from Python values, or a restarted gateway's commitment would not match.
"""

from __future__ import annotations

import pyarrow as pa
from hypothesis import given, settings
from hypothesis import strategies as st
from sources_support import ipc_bytes

from chronoseal.sources._base import rebatch

TARGET = pa.schema([("n", pa.int64()), ("x", pa.float64()), ("s", pa.string())])

rows = st.lists(
    st.tuples(
        st.none() | st.integers(-(2**40), 2**40),
        st.none() | st.floats(allow_nan=False, allow_infinity=False).map(lambda v: v + 0.0),
        st.none() | st.text(max_size=6),
    ),
    min_size=1,
    max_size=40,
)


def _spare(column: pa.Array, extra: int) -> pa.Array:
    """The same values over buffers that run ``extra`` bytes past them (an engine's
    capacity), with an all-set validity bitmap where there are no nulls."""
    buffers = column.buffers()
    grown = [None if b is None else pa.py_buffer(b.to_pybytes() + b"\xab" * extra) for b in buffers]
    if grown[0] is None:
        grown[0] = pa.py_buffer(b"\xff" * ((len(column) + 7) // 8 + extra))
    return pa.Array.from_buffers(column.type, len(column), grown, null_count=column.null_count)


def _layout(batch: pa.RecordBatch, how: str, extra: int) -> pa.RecordBatch:
    if how == "spare":
        return pa.RecordBatch.from_arrays([_spare(c, extra) for c in batch.columns], schema=TARGET)
    if how == "sliced":
        padded = pa.concat_batches([batch, batch])
        return padded.slice(batch.num_rows, batch.num_rows)
    if how == "all-valid":  # exact buffers, a validity bitmap though nothing is null
        return pa.RecordBatch.from_arrays(
            [_spare(c, 0) if c.null_count == 0 else c for c in batch.columns], schema=TARGET
        )
    return batch


@settings(max_examples=150, deadline=None)
@given(
    rows=rows,
    cuts=st.lists(st.integers(1, 15), min_size=1, max_size=8),
    layouts=st.lists(st.sampled_from(["fresh", "spare", "sliced", "all-valid"]), min_size=1),
    extra=st.integers(1, 9),
    batch_rows=st.integers(1, 25),
)
def test_rebatched_bytes_depend_on_the_values_alone(
    rows: list[tuple[int | None, float | None, str | None]],
    cuts: list[int],
    layouts: list[str],
    extra: int,
    batch_rows: int,
) -> None:
    values = [{"n": n, "x": x, "s": s} for n, x, s in rows]
    pieces, start, i = [], 0, 0
    while start < len(values):
        size = cuts[i % len(cuts)]
        fresh = pa.RecordBatch.from_pylist(values[start : start + size], schema=TARGET)
        pieces.append(_layout(fresh, layouts[i % len(layouts)], extra))
        start, i = start + size, i + 1
    got = list(rebatch(pieces, TARGET, batch_rows, "test", floats_settled=True))
    expected = [
        pa.RecordBatch.from_pylist(values[k : k + batch_rows], schema=TARGET)
        for k in range(0, len(values), batch_rows)
    ]
    assert [ipc_bytes(b) for b in got] == [ipc_bytes(b) for b in expected]


def test_an_exact_engine_batch_is_passed_on_without_a_copy() -> None:
    batch = pa.RecordBatch.from_pylist(
        [{"n": i, "x": i / 2, "s": f"m-{i}"} for i in range(8)], schema=TARGET
    )
    (got,) = rebatch([batch], TARGET, 8, "test", floats_settled=True)
    for before, after in zip(batch.columns, got.columns, strict=True):
        assert after.buffers()[1].address == before.buffers()[1].address
    (copied,) = rebatch([_layout(batch, "spare", 3)], TARGET, 8, "test", floats_settled=True)
    assert copied.column("n").buffers()[1].size == 8 * 8
