"""The desensitizer: default deny, joinable pseudonyms, task-secret time shift, resampling, k."""

from __future__ import annotations

import datetime as dt
import re
from collections import Counter, defaultdict
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chronoseal.errors import DataError
from chronoseal.privacy import Desensitizer

if TYPE_CHECKING:
    from conftest import Days, MakeDataset

KEY_A = bytes(range(32))
KEY_B = bytes(range(1, 33))
TASK = b"\x07" * 32
DAY0 = dt.date(2024, 1, 1)  # a Monday
lenient = settings(deadline=None, max_examples=50)

ENTITY_RULES = [
    {"action": "keep"},
    {"action": "drop"},
    {"action": "pseudonymize"},
    {"action": "truncate", "length": 2},
]
VALUE_RULES = [
    {"action": "keep"},
    {"action": "drop"},
    {"action": "round", "digits": 1},
    {"action": "clip", "min": -1, "max": 1},
]


def _desensitizer(ds: Any, key: bytes = KEY_A, task: bytes = TASK) -> Desensitizer:
    return Desensitizer(ds, task_key=key, task_id=task, noise_seed=b"\x00" * 32)


def _one(d: Desensitizer, batch: pa.RecordBatch) -> pa.RecordBatch:
    out = d.process(batch)
    assert out is not None
    return out


@st.composite
def policies(draw: st.DrawFn) -> tuple[list[str], dict[str, dict[str, Any]]]:
    entities = draw(st.lists(st.sampled_from(["e1", "e2", "e3"]), unique=True, max_size=3))
    values = draw(st.lists(st.sampled_from(["v1", "v2", "v3", "v4"]), unique=True, min_size=1))
    rules: dict[str, dict[str, Any]] = {e: draw(st.sampled_from(ENTITY_RULES)) for e in entities}
    rules.update({v: draw(st.sampled_from(VALUE_RULES)) for v in values})
    return entities, rules


@lenient
@given(policies(), st.integers(0, 20), st.data())
def test_output_is_exactly_the_undropped_declared_columns(
    dataset: MakeDataset,
    day_column: Days,
    policy: tuple[list[str], dict[str, dict[str, Any]]],
    rows: int,
    data: st.DataObject,
) -> None:
    entities, rules = policy
    ds = dataset(rules, entities=entities)
    columns: dict[str, pa.Array] = {"t": day_column(rows)}
    for name in rules:
        columns[name] = (
            pa.array([f"id{i % 3}" for i in range(rows)], type=pa.string())
            if name in entities
            else pa.array([i / 7 for i in range(rows)], type=pa.float64())
        )
    order = data.draw(st.permutations(list(columns)))
    batch = pa.record_batch({name: columns[name] for name in order})
    d = _desensitizer(ds)
    expected = [c for c in ds.columns() if c == "t" or rules[c]["action"] != "drop"]
    assert list(d.output_columns) == expected
    assert _one(d, batch).schema.names == expected

    extra = batch.append_column("secret", pa.array([1] * rows))
    with pytest.raises(DataError) as info:
        d.process(extra)
    assert info.value.id == "data.policy.uncovered_column"
    assert info.value.context["columns"] == ["secret"]

    removed = data.draw(st.sampled_from(sorted(rules)))
    with pytest.raises(DataError) as info:
        d.process(batch.drop_columns([removed]))
    assert info.value.id == "data.policy.missing_column"
    assert info.value.context["columns"] == [removed]


def test_duplicated_columns_are_refused(dataset: MakeDataset, day_column: Days) -> None:
    d = _desensitizer(dataset({"v": {"action": "keep"}}))
    batch = pa.RecordBatch.from_arrays(
        [day_column(1), pa.array([1.0]), pa.array([2.0])], names=["t", "v", "v"]
    )
    with pytest.raises(DataError) as info:
        d.process(batch)
    assert info.value.id == "data.policy.uncovered_column"


def test_a_policy_that_does_not_cover_the_declared_columns_is_refused(
    dataset: MakeDataset,
) -> None:
    ds = dataset({"v": {"action": "keep"}}, values=["v", "w"])
    with pytest.raises(DataError) as info:
        _desensitizer(ds)
    assert info.value.id == "data.policy.invalid"


@pytest.mark.parametrize(("key", "task"), [(b"short", TASK), (KEY_A, b"")])
def test_bad_task_key_material_is_refused(dataset: MakeDataset, key: bytes, task: bytes) -> None:
    with pytest.raises(DataError) as info:
        Desensitizer(dataset({"v": {"action": "keep"}}), task_key=key, task_id=task)
    assert info.value.id == "data.policy.bad_task_key"


def test_the_key_never_shows_in_repr(dataset: MakeDataset) -> None:
    d = _desensitizer(dataset({"v": {"action": "keep"}}))
    assert KEY_A.hex() not in repr(d) and str(KEY_A) not in repr(d)
    assert not any(KEY_A == v for v in vars(d).values())


def test_time_column_must_be_a_date_or_timestamp(dataset: MakeDataset) -> None:
    d = _desensitizer(dataset({"v": {"action": "keep"}}))
    with pytest.raises(DataError) as info:
        d.process(pa.record_batch({"t": pa.array(["2024-01-01"]), "v": pa.array([1.0])}))
    assert info.value.id == "data.policy.type_mismatch"


PSEUDONYM = re.compile(r"^[a-z2-7]{26}$")


def _pseudonyms(
    dataset: MakeDataset, day_column: Days, name: str, values: list[str], key: bytes, task: bytes
) -> list[str | None]:
    ds = dataset({name: {"action": "pseudonymize"}, "x": {"action": "drop"}}, entities=[name])
    batch = pa.record_batch(
        {"t": day_column(len(values)), name: pa.array(values), "x": pa.array([0] * len(values))}
    )
    return list(_one(_desensitizer(ds, key, task), batch).column(name).to_pylist())


@lenient
@given(st.lists(st.text(max_size=10), min_size=1, max_size=30))
def test_pseudonyms_join_within_a_task_and_unlink_across_tasks(
    dataset: MakeDataset, day_column: Days, values: list[str]
) -> None:
    party_a = _pseudonyms(dataset, day_column, "station", values, KEY_A, TASK)
    party_b = _pseudonyms(dataset, day_column, "stop_name", values, KEY_A, TASK)
    other_key = _pseudonyms(dataset, day_column, "station", values, KEY_B, TASK)
    other_task = _pseudonyms(dataset, day_column, "station", values, KEY_A, b"\x08" * 32)
    assert party_a == party_b
    for raw, mine, theirs, later in zip(values, party_a, other_key, other_task, strict=True):
        assert mine is not None and PSEUDONYM.fullmatch(mine)
        assert mine != raw and mine != theirs and mine != later
    assert len(set(party_a)) == len(set(values))


def test_pseudonyms_of_integers_match_their_decimal_text_and_dictionaries(
    dataset: MakeDataset, day_column: Days
) -> None:
    as_text = _pseudonyms(dataset, day_column, "id", ["42", "7"], KEY_A, TASK)
    ds = dataset({"id": {"action": "pseudonymize"}, "x": {"action": "drop"}}, entities=["id"])
    for ids in (pa.array([42, 7]), pa.array(["42", "7"]).dictionary_encode()):
        batch = pa.record_batch({"t": day_column(2), "id": ids, "x": pa.array([0, 0])})
        assert _one(_desensitizer(ds), batch).column("id").to_pylist() == as_text


def _shifted(
    dataset: MakeDataset, dates: pa.Array, key: bytes, max_days: int, name: str = "v"
) -> list[Any]:
    ds = dataset({name: {"action": "keep"}}, time_shift={"max_days": max_days})
    batch = pa.record_batch({"t": dates, name: pa.array([0.0] * len(dates))})
    return list(_one(_desensitizer(ds, key), batch).column("t").to_pylist())


def test_time_shift_is_whole_days_bounded_shared_and_order_preserving(
    dataset: MakeDataset, day_column: Days
) -> None:
    dates = day_column(30)
    offsets = []
    for i in range(600):
        key = i.to_bytes(32, "big")
        out = _shifted(dataset, dates, key, 3)
        offset = (out[0] - DAY0).days
        assert all((o - d).days == offset for o, d in zip(out, dates.to_pylist(), strict=True))
        offsets.append(offset)
    assert _shifted(dataset, dates, KEY_A, 3, name="other_party_column") == _shifted(
        dataset, dates, KEY_A, 3
    )
    histogram = Counter(offsets)
    assert set(histogram) == set(range(-3, 4))
    assert min(histogram.values()) > 600 / 7 * 0.6


def test_time_shift_moves_timestamps_by_whole_days(dataset: MakeDataset) -> None:
    start = dt.datetime(2024, 3, 1, 13, 45, tzinfo=dt.UTC)
    stamps = pa.array(
        [start + dt.timedelta(hours=h) for h in (0, 5, 30)], pa.timestamp("us", "UTC")
    )
    by_date = _shifted(dataset, pa.array([start.date()], pa.date32()), KEY_A, 50)
    offset = by_date[0] - start.date()
    assert _shifted(dataset, stamps, KEY_A, 50) == [s + offset for s in stamps.to_pylist()]


def _reference(rows: list[tuple[str, int, float | None]], agg: str) -> dict[Any, Any]:
    """Weekly aggregation per entity, written the slow obvious way."""
    cells: dict[tuple[str, dt.date], list[tuple[int, float | None]]] = defaultdict(list)
    for entity, day, value in rows:
        date = DAY0 + dt.timedelta(days=day)
        cells[(entity, date - dt.timedelta(days=date.weekday()))].append((day, value))
    out: dict[Any, Any] = {}
    for cell, items in cells.items():
        present = [v for _, v in items if v is not None]
        if agg == "count":
            out[cell] = len(present)
        elif agg == "last":
            ordered = [v for _, v in sorted(items, key=lambda item: item[0]) if v is not None]
            out[cell] = ordered[-1] if ordered else None
        elif not present:
            out[cell] = None
        elif agg == "sum":
            out[cell] = sum(present)
        elif agg == "min":
            out[cell] = min(present)
        elif agg == "max":
            out[cell] = max(present)
        else:
            out[cell] = sum(present) / len(present)
    return out


rows_strategy = st.lists(
    st.tuples(
        st.sampled_from(["a", "b", "c"]),
        st.integers(0, 40),
        st.one_of(st.none(), st.integers(-100, 100).map(float)),
    ),
    min_size=1,
    max_size=60,
)


def _batches(rows: Sequence[tuple[str, int, float | None]], size: int) -> Iterator[pa.RecordBatch]:
    for start in range(0, len(rows), size):
        chunk = rows[start : start + size]
        yield pa.record_batch(
            {
                "t": pa.array([DAY0 + dt.timedelta(days=d) for _, d, _ in chunk], pa.date32()),
                "who": pa.array([e for e, _, _ in chunk]),
                "v": pa.array([v for _, _, v in chunk], pa.float64()),
            }
        )


@lenient
@given(rows_strategy, st.sampled_from(["sum", "mean", "min", "max", "last", "count"]), st.data())
def test_resample_aggregates_per_entity_and_period_in_order(
    dataset: MakeDataset,
    rows: list[tuple[str, int, float | None]],
    agg: str,
    data: st.DataObject,
) -> None:
    # Distinct (entity, day) pairs make "last" well defined.
    rows = list({(e, d): (e, d, v) for e, d, v in rows}.values())
    rows = data.draw(st.permutations(rows))
    ds = dataset(
        {"who": {"action": "keep"}, "v": {"action": "keep"}},
        entities=["who"],
        resample={"to": "W", "agg": agg},
    )
    size = data.draw(st.integers(1, 10))
    released = list(_desensitizer(ds).run(lambda: _batches(rows, size)))
    assert len(released) == 1
    out = released[0].to_pylist()
    got = {(r["who"], r["t"]): r["v"] for r in out}
    expected = _reference(rows, agg)
    assert got.keys() == expected.keys()
    for cell, value in expected.items():
        assert got[cell] == pytest.approx(value)
    keys = [(r["who"], r["t"]) for r in out]
    assert keys == sorted(keys) and len(set(keys)) == len(keys)


def test_resample_sum_refuses_text_values(dataset: MakeDataset, day_column: Days) -> None:
    ds = dataset({"v": {"action": "keep"}}, resample={"to": "MS", "agg": "sum"})
    d = _desensitizer(ds)
    assert d.process(pa.record_batch({"t": day_column(3), "v": pa.array(["a", "b", "c"])})) is None
    with pytest.raises(DataError) as info:
        d.finish()
    assert info.value.id == "data.policy.type_mismatch"


def test_resample_refuses_batches_whose_types_drift(dataset: MakeDataset, day_column: Days) -> None:
    d = _desensitizer(dataset({"v": {"action": "keep"}}, resample={"to": "W", "agg": "max"}))
    assert d.process(pa.record_batch({"t": day_column(2), "v": pa.array([1.0, 2.0])})) is None
    with pytest.raises(DataError) as info:
        d.process(pa.record_batch({"t": day_column(2), "v": pa.array(["a", "b"])}))
    assert info.value.id == "data.policy.type_mismatch"


def test_shift_then_resample_lands_on_calendar_periods(dataset: MakeDataset) -> None:
    ds = dataset(
        {"v": {"action": "keep"}},
        resample={"to": "MS", "agg": "count"},
        time_shift={"max_days": 40},
    )
    rows = [(DAY0 + dt.timedelta(days=i), 1.0) for i in range(120)]
    batch = pa.record_batch(
        {"t": pa.array([d for d, _ in rows], pa.date32()), "v": pa.array([v for _, v in rows])}
    )
    d = _desensitizer(ds)
    assert d.process(batch) is None
    out = d.finish()
    assert out is not None
    starts = out.column("t").to_pylist()
    assert all(s.day == 1 for s in starts) and starts == sorted(starts)
    assert sum(out.column("v").to_pylist()) == 120


@lenient
@given(
    st.lists(st.sampled_from(["a", "b", "c", "d", "e"]), min_size=1, max_size=80),
    st.integers(2, 12),
    st.integers(1, 20),
)
def test_k_threshold_suppresses_exactly_the_small_entities(
    dataset: MakeDataset, day_column: Days, entities: list[str], k: int, size: int
) -> None:
    ds = dataset(
        {"who": {"action": "keep"}, "v": {"action": "keep"}}, entities=["who"], k_threshold=k
    )
    table = pa.table(
        {
            "t": day_column(len(entities)),
            "who": pa.array(entities),
            "v": pa.array(range(len(entities)), pa.int64()),
        }
    )
    released = list(_desensitizer(ds).run(lambda: table.to_batches(max_chunksize=size)))
    out = pa.Table.from_batches(released, schema=released[0].schema) if released else None
    counts = Counter(entities)
    expected = [i for i, e in enumerate(entities) if counts[e] >= k]
    assert (out.column("v").to_pylist() if out is not None else []) == expected


def test_k_threshold_counts_released_entities_after_generalizing(
    dataset: MakeDataset, day_column: Days
) -> None:
    ds = dataset(
        {
            "shop": {
                "action": "generalize",
                "mapping": {"s1": "north", "s2": "north", "s3": "south"},
            },
            "v": {"action": "keep"},
        },
        entities=["shop"],
        k_threshold=3,
    )
    shops = ["s1", "s2", "s1", "s3", "s3"]
    batch = pa.record_batch(
        {"t": day_column(5), "shop": pa.array(shops), "v": pa.array([1, 2, 3, 4, 5])}
    )
    d = _desensitizer(ds)
    with pytest.raises(DataError) as info:
        d.process(batch)
    assert info.value.id == "data.policy.pass_order"
    assert d.needs_counting_pass
    d.count_pass([batch.slice(0, 2), batch.slice(2)])
    assert _one(d, batch).to_pydict()["v"] == [1, 2, 3]


def test_k_threshold_with_resample_counts_source_rows(dataset: MakeDataset) -> None:
    ds = dataset(
        {"who": {"action": "pseudonymize"}, "v": {"action": "keep"}},
        entities=["who"],
        k_threshold=4,
        resample={"to": "W", "agg": "sum"},
    )
    rows = [("big", d, 1.0) for d in range(10)] + [("small", d, 1.0) for d in (0, 7, 14)]
    d = _desensitizer(ds)
    assert not d.needs_counting_pass
    released = list(d.run(lambda: _batches(rows, 4)))
    out = released[0].to_pydict()
    assert len(set(out["who"])) == 1 and sum(out["v"]) == 10


def test_passes_are_enforced(dataset: MakeDataset, day_column: Days) -> None:
    ds = dataset({"v": {"action": "keep"}})
    d = _desensitizer(ds)
    with pytest.raises(DataError) as info:
        d.count_pass([])
    assert info.value.id == "data.policy.pass_order"
    assert d.finish() is None
    with pytest.raises(DataError) as info:
        d.process(pa.record_batch({"t": day_column(1), "v": pa.array([1.0])}))
    assert info.value.id == "data.policy.pass_order"
