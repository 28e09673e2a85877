"""The gateway's raw-data checks hold in the order it reads: stored (time order) or sorted."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chronoseal.errors import DataError
from chronoseal.gateway._checks import checked_batches, in_window, read_order, refuse_empty_window
from chronoseal.sources import open_source
from chronoseal.spec import Dataset, TaskSpec, load_spec

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "chicago" / "task.toml"
START = datetime(2024, 1, 1)


def _dataset() -> Dataset:
    return Dataset.model_validate(
        {
            "party": "p",
            "name": "meters",
            "source": "meters",
            "time_column": "ts",
            "entity_columns": ["meter"],
            "value_columns": ["kwh"],
            "frequency": "h",
            "policy": {"columns": {"ts": {"action": "keep"}, "meter": {"action": "keep"}}},
        }
    )


def _spec() -> TaskSpec:
    return load_spec(EXAMPLE)


def _write(path: Path, rows: list[tuple[int | None, str]]) -> Path:
    table = pa.table(
        {
            "ts": pa.array(
                [None if h is None else START + timedelta(hours=h) for h, _ in rows],
                pa.timestamp("us"),
            ),
            "meter": [m for _, m in rows],
            "kwh": [float(i) for i in range(len(rows))],
        }
    )
    pq.write_table(table, path)
    return path


def _check(path: Path, batch_rows: int) -> tuple[str, int]:
    """(order read in, rows passed) for the file, or raise the refusal."""
    dataset = _dataset()
    source = open_source(f"parquet://{path}")
    order = read_order(source, dataset)
    raw = source.batches(dataset.columns(), batch_rows=batch_rows, order=order)
    passed = sum(b.num_rows for b in checked_batches(raw, dataset, _spec(), order))
    return order, passed


def test_time_ordered_files_are_read_as_stored(tmp_path: Path) -> None:
    rows = [(h, m) for h in range(50) for m in ("c", "a", "b")]
    assert _check(_write(tmp_path / "m.parquet", rows), batch_rows=7) == ("stored", 150)


def test_files_out_of_time_order_are_read_sorted(tmp_path: Path) -> None:
    rows = [(h, m) for m in ("a", "b") for h in range(20)]  # grouped by meter
    assert _check(_write(tmp_path / "m.parquet", rows), batch_rows=7) == ("sorted", 40)


def test_a_repeat_in_a_run_that_spans_batches_is_refused(tmp_path: Path) -> None:
    rows = [(h, m) for h in range(10) for m in ("a", "b", "c", "d", "e")]
    rows.insert(23, (4, "a"))  # hour 4 runs over rows 20-25; batches of 7 cut it at 21
    with pytest.raises(DataError) as info:
        _check(_write(tmp_path / "m.parquet", rows), batch_rows=7)
    assert info.value.id == "gateway.data.duplicate_keys"
    assert info.value.context == {"dataset": "meters", "column": "ts", "rows": 1}


def test_rows_without_a_time_are_refused_before_any_batch_is_read(tmp_path: Path) -> None:
    rows: list[tuple[int | None, str]] = [(h, "a") for h in range(30)]
    rows[3] = rows[17] = rows[29] = (None, "a")
    with pytest.raises(DataError) as info:
        read_order(open_source(f"parquet://{_write(tmp_path / 'm.parquet', rows)}"), _dataset())
    assert info.value.id == "gateway.data.null_time"
    assert info.value.context["rows"] == 3


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    keys=st.lists(
        st.tuples(st.integers(0, 6), st.sampled_from(["a", "b", "c"])), min_size=1, max_size=40
    ),
    batch_rows=st.integers(1, 9),
    time_ordered=st.booleans(),
)
def test_a_repeated_key_is_refused_in_either_order(
    tmp_path_factory: pytest.TempPathFactory,
    keys: list[tuple[int, str]],
    batch_rows: int,
    time_ordered: bool,
) -> None:
    rows = sorted(keys, key=lambda k: k[0]) if time_ordered else keys
    path = _write(tmp_path_factory.mktemp("h") / "m.parquet", list(rows))
    repeated = len(rows) != len(set(rows))
    try:
        order, passed = _check(path, batch_rows)
    except DataError as exc:
        assert exc.id == "gateway.data.duplicate_keys"
        assert repeated
    else:
        assert not repeated and passed == len(rows)
        if time_ordered:
            assert order == "stored"


def _times(batches: Iterable[pa.RecordBatch]) -> list[datetime]:
    return [t for b in batches for t in b.column("ts").to_pylist()]


@pytest.mark.parametrize(
    ("kind", "zone", "last_trained"),
    [
        (pa.timestamp("ms", "UTC"), None, datetime(2024, 1, 2, 12, tzinfo=UTC)),
        (pa.timestamp("s"), None, datetime(2024, 1, 2, 12)),  # naive read as UTC
        (pa.timestamp("us"), "Europe/Berlin", datetime(2024, 1, 2, 13)),  # UTC+1 in January
    ],
)
def test_a_time_cut_trains_up_to_and_at_it_and_feeds_what_follows(
    kind: pa.DataType, zone: str | None, last_trained: datetime
) -> None:
    cut = datetime(2024, 1, 2, 12, tzinfo=UTC)
    first = datetime(2024, 1, 1, tzinfo=UTC if kind.tz else None)
    times = [first + timedelta(hours=h) for h in range(72)]
    batches = [pa.record_batch({"ts": pa.array(times[i : i + 10], kind)}) for i in range(0, 72, 10)]
    trained = _times(in_window(batches, "ts", cut, feed=False, naive_zone=zone))
    fed = _times(in_window(batches, "ts", cut, feed=True, naive_zone=zone))
    assert trained == times[: times.index(last_trained) + 1]
    assert fed == times[times.index(last_trained) + 1 :]
    # a date cut keeps the whole day, as before
    day = _times(in_window(batches, "ts", date(2024, 1, 2), feed=False, naive_zone=zone))
    assert day[-1] == first + timedelta(hours=47)


# --- the zone rule on a daily dataset --------------------------------------------------------

TOKYO = ZoneInfo("Asia/Tokyo")


def _weather() -> tuple[TaskSpec, Dataset]:
    spec = _spec()
    dataset = spec.dataset("weather")
    assert dataset is not None
    return spec, dataset


def _weather_table(times: list[datetime]) -> pa.Table:
    """The Chicago task's daily weather, its times zone-aware (Tokyo)."""
    _, dataset = _weather()
    values = {c: [1.0] * len(times) for c in dataset.value_columns}
    return pa.table({"date": pa.array(times, pa.timestamp("us", tz="Asia/Tokyo")), **values})


def _window(batches: list[pa.RecordBatch], *, feed: bool) -> list[object]:
    spec, dataset = _weather()
    checked = checked_batches(batches, dataset, spec, "stored")
    cut = in_window(checked, "date", spec.task.data_until, feed=feed)
    return [t for b in cut for t in b.column("date").to_pylist()]


def test_aware_local_midnights_of_a_daily_dataset_are_their_own_dates() -> None:
    """data_until is 2016-08-14: a Tokyo midnight of the 15th (the 14th, 15:00 UTC) is the
    15th, so it is fed after the window, not trained on."""
    days = [datetime(2016, 8, d, tzinfo=TOKYO) for d in (13, 14, 15, 16)]
    batches = _weather_table(days).to_batches(max_chunksize=3)
    assert _window(batches, feed=False) == [date(2016, 8, 13), date(2016, 8, 14)]
    assert _window(batches, feed=True) == [date(2016, 8, 15), date(2016, 8, 16)]


def test_an_aware_time_of_day_in_a_daily_dataset_is_refused_with_its_count() -> None:
    days = [datetime(2016, 8, 1, tzinfo=TOKYO), datetime(2016, 8, 2, 9, 30, tzinfo=TOKYO)]
    days += [datetime(2016, 8, 3, 23, tzinfo=TOKYO)]
    with pytest.raises(DataError) as info:
        _window(_weather_table(days).to_batches(), feed=False)
    assert info.value.id == "gateway.data.not_local_midnight"
    assert info.value.context == {"dataset": "weather", "column": "date", "rows": 2}
    assert "2016" not in str(info.value) and "09:30" not in str(info.value)


def test_a_file_keeps_instants_so_its_tokyo_midnights_are_refused_not_moved_a_day(
    tmp_path: Path,
) -> None:
    """Parquet (like PostgreSQL) stores an aware time as its UTC instant: a Tokyo midnight
    reads back as 15:00 UTC the day before. Refused before any channel opens, not trained on
    as the 14th (its UTC day) nor floored there."""
    spec, dataset = _weather()
    path = tmp_path / "w.parquet"
    pq.write_table(_weather_table([datetime(2016, 8, 15, tzinfo=TOKYO)]), path)
    with pytest.raises(DataError) as info:
        refuse_empty_window(open_source(f"parquet://{path}"), dataset, spec.task.data_until)
    assert info.value.id == "gateway.data.not_local_midnight"
    assert info.value.context["rows"] == 1
