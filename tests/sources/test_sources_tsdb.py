"""InfluxDB, Prometheus and VictoriaMetrics as sources: the bundled Chicago data loaded into
each real store (``scripts/influxdb``, ``scripts/prometheus``, ``scripts/victoria-metrics``)
reads back row for row, in one order, byte-identical on a re-read and after a resume, in
bounded memory; every way a read can fail has its own refusal id."""

from __future__ import annotations

import datetime as dt
import math
import os
import time
import tracemalloc
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given
from hypothesis import strategies as st
from sources_support import CHICAGO, ipc_bytes
from tsdb_support import (
    Influx,
    as_timestamps,
    exposition,
    influx_from_env,
    line_protocol,
    prometheus_backfill,
    require,
    vm_import,
)

from chronoseal.errors import DataError
from chronoseal.sources import _influxdb, _prometheus, open_source, parse_source_url
from chronoseal.spec import Dataset

RUN = uuid.uuid4().hex[:10]
DAY = dt.timedelta(days=1)
START = dt.datetime(2001, 1, 22, tzinfo=dt.UTC)
END = dt.datetime(2016, 8, 28, tzinfo=dt.UTC)
WINDOW = f"start={START:%Y-%m-%dT%H:%M:%SZ}&end={END:%Y-%m-%dT%H:%M:%SZ}"
#: Three series ending at different times, one NaN sample, points at one instant stored out
#: of label order: what a store hands over in its own order must come out in one order.
TIES = pa.table(
    {
        "ts": [START + DAY * (i // 3) for i in range(30)],
        "zone": [["zulu", "alpha", "mike"][i % 3] for i in range(30)],
        "load": [math.nan if i == 7 else float(i) for i in range(30)],
    }
).filter(
    pa.array([not (z == "zulu" and i > 20) for i, z in enumerate(["zulu", "alpha", "mike"] * 10)])
)


def _dataset(name: str, time: str, entities: list[str], values: list[str]) -> Dataset:
    return Dataset.model_validate(
        {
            "party": "p",
            "name": name,
            "source": name,
            "time_column": time,
            "entity_columns": entities,
            "value_columns": values,
            "frequency": "D",
            "policy": {"columns": {c: {"action": "keep"} for c in [time, *values]}},
        }
    )


def _expect_refusal(id: str, action: Callable[[], object]) -> DataError:
    with pytest.raises(DataError) as caught:
        action()
    assert caught.value.id == id, caught.value
    return caught.value


def _rows(source_batches: Iterator[pa.RecordBatch]) -> pa.Table:
    return pa.Table.from_batches(list(source_batches))


@pytest.fixture(scope="module")
def transit() -> pa.Table:
    return as_timestamps(pq.read_table(CHICAGO / "transit.parquet"), "date")


@pytest.fixture(scope="module")
def events() -> pa.Table:
    return as_timestamps(pq.read_table(CHICAGO / "events.parquet"), "date")


# --- InfluxDB -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def influx(transit: pa.Table, events: pa.Table) -> Iterator[tuple[Influx, str]]:
    server = influx_from_env()
    db = f"chronoseal_{RUN}"
    server.query(f'CREATE DATABASE "{db}"')
    server.write(db, line_protocol(transit, "transit", "date", ["station"], ["rides"]))
    names = [c for c in events.column_names if c != "date"]
    server.write(db, line_protocol(events, "events", "date", [], names))
    server.write(db, line_protocol(TIES, "ties", "ts", ["zone"], ["load"]))
    # One field, two types: InfluxDB allows it in different shards (weeks apart).
    server.write(db, ["mixed,site=a level=1.5 1000000000000000000"])
    server.write(db, ["mixed,site=a level=2i 1100000000000000000"])
    try:
        yield server, db
    finally:
        server.query(f'DROP DATABASE "{db}"')


@pytest.mark.integration
def test_influx_reads_the_measurement_row_for_row_under_the_tasks_time_name(
    influx: tuple[Influx, str], transit: pa.Table
) -> None:
    server, db = influx
    source = open_source(server.source_url(db, "transit"))
    dataset = _dataset("ridership", "date", ["station"], ["rides"])
    source.check(dataset)
    assert source.schema().field("date").type == pa.timestamp("us", tz="UTC")
    got = _rows(source.batches(dataset.columns(), batch_rows=1000))
    assert got.num_rows == transit.num_rows == 5698
    assert got.to_pylist() == transit.select(dataset.columns()).sort_by("date").to_pylist()


@pytest.mark.integration
def test_influx_integer_fields_arrive_as_integers(
    influx: tuple[Influx, str], events: pa.Table
) -> None:
    server, db = influx
    source = open_source(server.source_url(db, "events"))
    names = [c for c in events.column_names if c != "date"]
    dataset = _dataset("games", "date", [], names)
    source.check(dataset)
    got = _rows(source.batches(dataset.columns()))
    assert all(got.schema.field(n).type == pa.int64() for n in names)
    assert got.to_pylist() == events.cast(got.schema).to_pylist()


@pytest.mark.integration
def test_influx_rereads_and_resumes_byte_for_byte_with_ties_in_one_order(
    influx: tuple[Influx, str],
) -> None:
    server, db = influx
    source = open_source(server.source_url(db, "ties"))
    dataset = _dataset("ties", "ts", ["zone"], ["load"])
    source.check(dataset)
    first = [ipc_bytes(b) for b in source.batches(dataset.columns(), batch_rows=4)]
    again = [ipc_bytes(b) for b in source.batches(dataset.columns(), batch_rows=4)]
    resumed = [ipc_bytes(b) for b in source.batches(dataset.columns(), batch_rows=4, start_row=8)]
    assert first == again and resumed == first[2:]
    rows = _rows(source.batches(dataset.columns())).to_pylist()
    keys = [(r["ts"], r["zone"]) for r in rows]
    # InfluxDB stores no NaN: that point was never written.
    assert keys == sorted(keys) and len(rows) == TIES.num_rows - 1


@pytest.mark.integration
def test_influx_small_chunks_page_the_same_rows(
    influx: tuple[Influx, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    server, db = influx
    dataset = _dataset("ties", "ts", ["zone"], ["load"])
    source = open_source(server.source_url(db, "ties"))
    source.check(dataset)
    whole = [ipc_bytes(b) for b in source.batches(dataset.columns(), batch_rows=5)]
    monkeypatch.setattr(_influxdb, "CHUNK_POINTS", 2)  # instants split across chunks
    paged = [ipc_bytes(b) for b in source.batches(dataset.columns(), batch_rows=5)]
    assert paged == whole


@pytest.mark.integration
def test_influx_refusals_have_stable_ids(influx: tuple[Influx, str], tmp_path: Path) -> None:
    server, db = influx
    dataset = _dataset("ridership", "date", ["station"], ["rides"])
    wrong = tmp_path / "wrong"
    wrong.write_text("chronoseal:not-the-password\n")
    bad_auth = server.source_url(db, "transit").replace(str(server.auth_file), str(wrong))
    _expect_refusal("data.source.credentials", lambda: open_source(bad_auth).check(dataset))
    unset = f"influxdb://{server.hostport}/{db}?measurement=transit&auth=env:CHRONOSEAL_NO_SUCH"
    _expect_refusal("data.source.credentials", lambda: open_source(unset).check(dataset))
    closed = f"influxdb://127.0.0.1:9/{db}?measurement=transit"
    _expect_refusal("data.source.unavailable", lambda: open_source(closed).check(dataset))
    for missing in (server.source_url(db, "nosuch"), server.source_url("nodb", "transit")):
        _expect_refusal("data.source.missing", lambda m=missing: open_source(m).check(dataset))
    mixed = open_source(server.source_url(db, "mixed"))
    refusal = _expect_refusal(
        "data.column.mixed_types",
        lambda: mixed.check(_dataset("mixed", "time", ["site"], ["level"])),
    )
    assert refusal.context["types"] == ["float", "integer"]
    empty = server.source_url(db, "transit", start="2020-01-01T00:00:00Z")
    _expect_refusal("data.source.empty", lambda: open_source(empty).check(dataset))


@pytest.mark.integration
def test_influx_window_bounds_the_rows(influx: tuple[Influx, str], transit: pa.Table) -> None:
    server, db = influx
    url = server.source_url(db, "transit", start="2016-08-01T00:00:00Z", end="2016-08-28T00:00:00Z")
    source = open_source(url)
    dataset = _dataset("ridership", "date", ["station"], ["rides"])
    source.check(dataset)
    assert _rows(source.batches(dataset.columns())).num_rows == 28


# --- Prometheus and VictoriaMetrics -------------------------------------------------------


def _prom_series(transit: pa.Table, unit: str) -> dict[str, list[str]]:
    return {
        f"ridership_{RUN}": exposition(
            transit, f"ridership_{RUN}", "date", ["station"], "rides", unit=unit
        ),
        f"ties_{RUN}": exposition(TIES, f"ties_{RUN}", "ts", ["zone"], "load", unit=unit),
    }


@pytest.fixture(scope="module")
def prometheus(transit: pa.Table) -> str:
    url = require("CHRONOSEAL_PROM_URL", "CHRONOSEAL_REQUIRE_PROM", "scripts/prometheus")
    prometheus_backfill(_prom_series(transit, "s"))
    return url


@pytest.fixture(scope="module")
def victoria(transit: pa.Table) -> str:
    url = require("CHRONOSEAL_VM_URL", "CHRONOSEAL_REQUIRE_VM", "scripts/victoria-metrics")
    vm_import(url, [line for lines in _prom_series(transit, "ms").values() for line in lines])
    return url


@pytest.fixture(params=["prometheus", "victoria"])
def prom_url(request: pytest.FixtureRequest) -> str:
    return prom_base(request.getfixturevalue(request.param))


def prom_base(http_url: str) -> str:
    return http_url.replace("http://", "prometheus://").rstrip("/")


def _is_vm(url: str) -> bool:
    vm = os.environ.get("CHRONOSEAL_VM_URL", "").rstrip("/")
    return bool(vm) and url.split("//")[1] == vm.split("//")[-1]


def _prom(base: str, query: str, *, step: str = "1d", window: str = WINDOW, value: str = "") -> str:
    from urllib.parse import quote

    extra = f"&value={value}" if value else ""
    return f"{base}?query={quote(query)}&step={step}&{window}{extra}"


@pytest.mark.integration
def test_prometheus_query_range_reads_the_series_row_for_row(
    prom_url: str, transit: pa.Table
) -> None:
    source = open_source(_prom(prom_url, f"ridership_{RUN}", value="rides"))
    dataset = _dataset("ridership", "date", ["station"], ["rides"])
    source.check(dataset)
    got = _rows(source.batches(dataset.columns(), batch_rows=2048))
    # 5698 daily steps: pages of 100 and then up to 10,000 steps.
    assert got.to_pylist() == transit.select(dataset.columns()).sort_by("date").to_pylist()


@pytest.mark.integration
def test_prometheus_pages_past_the_servers_point_cap(prom_url: str, transit: pa.Table) -> None:
    # Every 12 hours over 15 years: 11,395 steps, more than one query_range may answer.
    source = open_source(_prom(prom_url, f"ridership_{RUN}", step="12h", value="rides"))
    dataset = _dataset("ridership", "date", ["station"], ["rides"])
    source.check(dataset)
    got = _rows(source.batches(dataset.columns()))
    assert got.num_rows > 11_000 // 2
    days = got.filter(pa.compute.equal(pa.compute.hour(got.column("date")), 0))
    assert days.to_pylist() == transit.select(dataset.columns()).sort_by("date").to_pylist()


@pytest.mark.integration
def test_prometheus_ties_nan_and_ended_series(
    prom_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = open_source(_prom(prom_url, f"ties_{RUN}", value="load"))
    dataset = _dataset("ties", "ts", ["zone"], ["load"])
    source.check(dataset)
    rows = _rows(source.batches(dataset.columns())).to_pylist()
    keys = [(r["ts"], r["zone"]) for r in rows]
    assert keys == sorted(keys)
    # The NaN sample is a missing value (null) in Prometheus; VictoriaMetrics keeps NaN as a
    # staleness marker and answers that step from the sample before it, as it fills any gap
    # shorter than the step. A series that ended is no row after its end (plus, for
    # VictoriaMetrics, one step).
    nan_key = (START + 2 * DAY, "alpha")
    nulls = [(r["ts"], r["zone"]) for r in rows if r["load"] is None]
    vm = _is_vm(prom_url)
    assert nulls == ([] if vm else [nan_key])
    last = START + (7 if vm else 6) * DAY
    assert max(r["ts"] for r in rows if r["zone"] == "zulu") == last
    # VictoriaMetrics 1.79 on a new data directory now and then answers one-step ranges
    # without the sample at that step's own time, for a while after the import (1 run in 6
    # here, with every sample already exported back; three reads in a row gave the same
    # wrong answer): the reads are compared again, once a second for up to 30 s, before the
    # test fails. Prometheus must agree at once.
    tries = 0
    while tries < (30 if vm else 1):
        tries += 1
        if tries > 1:
            time.sleep(1.0)
        first = [ipc_bytes(b) for b in source.batches(dataset.columns(), batch_rows=4)]
        with monkeypatch.context() as paging:
            paging.setattr(_prometheus, "FIRST_STEPS", 1)
            paging.setattr(_prometheus, "PAGE_POINTS", 2)
            paged = [ipc_bytes(b) for b in source.batches(dataset.columns(), batch_rows=4)]
            resumed = [
                ipc_bytes(b) for b in source.batches(dataset.columns(), batch_rows=4, start_row=4)
            ]
        if paged == first and resumed == first[1:]:
            break
    assert paged == first and resumed == first[1:], f"paged reads differ in {tries} tries"


@pytest.mark.integration
def test_prometheus_named_queries_are_value_columns_side_by_side(prom_url: str) -> None:
    from urllib.parse import quote

    queries = {
        "load": f"ties_{RUN}",
        "twice": f"ties_{RUN} * 2",
        "alpha": f'ties_{RUN}{{zone="alpha"}}',
    }
    named = "&".join(f"query.{name}={quote(q)}" for name, q in queries.items())
    source = open_source(f"{prom_url}?{named}&step=1d&{WINDOW}")
    dataset = _dataset("ties", "ts", ["zone"], ["load", "twice", "alpha"])
    source.check(dataset)
    rows = _rows(source.batches(dataset.columns())).to_pylist()
    single = open_source(_prom(prom_url, f"ties_{RUN}", value="load"))
    single.check(_dataset("ties", "ts", ["zone"], ["load"]))
    alone = _rows(single.batches(["ts", "zone", "load"])).to_pylist()
    # Joined on (time, zone): the same rows as the query alone, each value beside the others.
    assert [(r["ts"], r["zone"], r["load"]) for r in rows] == [
        (r["ts"], r["zone"], r["load"]) for r in alone
    ]
    assert all(r["twice"] == (None if r["load"] is None else 2 * r["load"]) for r in rows)
    assert all(
        (r["alpha"] == r["load"]) if r["zone"] == "alpha" else r["alpha"] is None for r in rows
    )
    again = [ipc_bytes(b) for b in source.batches(dataset.columns(), batch_rows=4)]
    assert again == [ipc_bytes(b) for b in source.batches(dataset.columns(), batch_rows=4)]


@pytest.mark.integration
def test_prometheus_refusals_have_stable_ids(prom_url: str) -> None:
    dataset = _dataset("ridership", "date", ["station"], ["rides"])
    unknown = _prom(prom_url, "no_such_metric_anywhere", value="rides")
    _expect_refusal("data.source.missing", lambda: open_source(unknown).check(dataset))
    later = "start=2030-01-01T00:00:00Z&end=2030-02-01T00:00:00Z"
    empty = _prom(prom_url, f"ridership_{RUN} * 0 > 1", value="rides", window=later)
    _expect_refusal("data.source.empty", lambda: open_source(empty).check(dataset))
    broken = _prom(prom_url, f"rate(ridership_{RUN}", value="rides")
    _expect_refusal("data.source.bad_url", lambda: open_source(broken).check(dataset))
    closed = _prom("prometheus://127.0.0.1:9", "up", value="rides")
    _expect_refusal("data.source.unavailable", lambda: open_source(closed).check(dataset))
    typo = _dataset("ridership", "date", ["statoin"], ["rides"])
    _expect_refusal(
        "data.column.missing",
        lambda: open_source(_prom(prom_url, f"ridership_{RUN}", value="rides")).check(typo),
    )


# --- URLs ---------------------------------------------------------------------------------


def test_credentials_in_a_time_series_url_are_refused() -> None:
    for url in (
        "influxdb://admin:secret@db:8086/metrics?measurement=m",
        "prometheus://u:p@prom:9090?query=up&step=1m&start=0&end=60",
    ):
        refusal = _expect_refusal("data.source.bad_url", lambda u=url: parse_source_url(u))
        assert "secret" not in refusal.message and "auth=env:NAME" in refusal.message


@pytest.mark.parametrize(
    "url",
    [
        "influxdb://db:8086/metrics",  # no measurement
        "influxdb://db:8086/?measurement=m",  # no database
        "influxdb://db:8086/metrics?measurement=m&table=x",
        "influxdb://db:8086/metrics?measurement=m&auth=plain",
        "prometheus://prom:9090?query=up&step=1m",  # no window
        "prometheus://prom:9090/api?query=up&step=1m&start=0&end=60",
        "prometheus://prom:9090?query=up&query.a=up&step=1m&start=0&end=60",  # both forms
        "prometheus://prom:9090?query.a=&step=1m&start=0&end=60",
        "prometheus://prom:9090?query.1a=up&step=1m&start=0&end=60",
    ],
)
def test_malformed_time_series_urls_are_refused(url: str) -> None:
    _expect_refusal("data.source.bad_url", lambda: parse_source_url(url))


@pytest.mark.parametrize(
    ("params", "why"),
    [
        ("step=0s&start=0&end=60", "positive duration"),
        ("step=1m&start=yesterday&end=60", "RFC 3339"),
        ("step=1m&start=2024-01-01T00:00:00&end=60", "RFC 3339"),  # no zone
        ("step=1m&start=120&end=60", "start <= end"),
    ],
)
def test_a_bad_prometheus_window_is_refused_before_any_request(params: str, why: str) -> None:
    refusal = _expect_refusal(
        "data.source.bad_url", lambda: open_source(f"prometheus://127.0.0.1:9?query=up&{params}")
    )
    assert why in refusal.message


_names = st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,12}", fullmatch=True)


@given(db=_names, measurement=_names, rp=st.none() | _names, port=st.integers(1, 65535))
def test_influx_urls_survive_a_round_trip(
    db: str, measurement: str, rp: str | None, port: int
) -> None:
    extra = f"&retention={rp}" if rp else ""
    parsed = parse_source_url(
        f"influxdb://store.example:{port}/{db}?measurement={measurement}{extra}&auth=env:INFLUX_AUTH"
    )
    assert parsed.param("measurement") == measurement and parsed.database == db
    assert parse_source_url(parsed.to_url()) == parsed


# --- memory -------------------------------------------------------------------------------

SERIES = 40


def _points(steps: int, name: str) -> tuple[list[str], list[str]]:
    """``SERIES`` series of ``steps`` minutely points: InfluxDB lines and VictoriaMetrics ones."""
    base = int(START.timestamp())
    influx, vm = [], []
    for step in range(steps):
        t = base + 60 * step
        for s in range(SERIES):
            value = (step * 31 + s) % 1000 / 8
            influx.append(f"{name},sensor=s{s:02d} reading={value} {t * 10**9}")
            vm.append(f'{name}{{sensor="s{s:02d}"}} {value} {t * 1000}')
    return influx, vm


def _peak_bytes(source_batches: Iterator[pa.RecordBatch]) -> tuple[int, int]:
    """Rows read, and the most Python heap plus Arrow memory held at any batch."""
    tracemalloc.start()
    arrow_base = pa.total_allocated_bytes()
    peak_arrow, rows = 0, 0
    try:
        for batch in source_batches:
            peak_arrow = max(peak_arrow, pa.total_allocated_bytes() - arrow_base)
            rows += batch.num_rows
            del batch
        _, peak_python = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return rows, peak_python + peak_arrow


@pytest.mark.integration
def test_memory_does_not_grow_with_the_series(
    influx: tuple[Influx, str], victoria: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    server, db = influx
    # Pages a twentieth of the larger read (240,000 points), so that holding it all would show.
    monkeypatch.setattr(_influxdb, "CHUNK_POINTS", 5_000)
    monkeypatch.setattr(_prometheus, "PAGE_POINTS", 10_000)
    peaks: dict[str, list[int]] = {"influx": [], "vm": []}
    for steps in (1_500, 6_000):
        name = f"big{steps}_{RUN}"
        influx_lines, vm_lines = _points(steps, name)
        server.write(db, influx_lines)
        vm_import(victoria, vm_lines)
        end = START + dt.timedelta(minutes=steps - 1)
        window = f"start={START:%Y-%m-%dT%H:%M:%SZ}&end={end:%Y-%m-%dT%H:%M:%SZ}"
        sources = {
            "influx": open_source(server.source_url(db, name)),
            "vm": open_source(
                _prom(prom_base(victoria), name, step="1m", window=window, value="reading")
            ),
        }
        dataset = _dataset(name, "ts", ["sensor"], ["reading"])
        for kind, source in sources.items():
            source.check(dataset)
            rows, peak = _peak_bytes(source.batches(dataset.columns(), batch_rows=8192))
            assert rows == steps * SERIES
            peaks[kind].append(peak)
    for kind, (small, large) in peaks.items():
        # Four times the points; what is held is a page and a batch, not the series.
        # The larger read alone would be ~240,000 points of JSON and Arrow (tens of MB).
        assert large < small * 1.5 and large < 16 * 2**20, (kind, small, large)
