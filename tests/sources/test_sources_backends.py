"""Every backend yields the same bytes for the same request, and refuses the same way."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from sources_support import ALL_BACKENDS, FILE_BACKENDS, TABLES, OpenTable, ipc_bytes

from chronoseal.errors import DataError
from chronoseal.sources import canonical_type, open_party_source, open_source
from chronoseal.spec import Dataset, load_party_config, load_spec

REQUESTS = {
    "transit": ["date", "station", "rides"],
    "weather": ["date", "temp", "humidity", "percip", "weather_snow"],
    "events": ["date", "bulls_home", "cubs_home"],
    "tricky": ["ts", "entity", "code", "value", "flag"],
}


def reference(table: pa.Table, columns: list[str], batch_rows: int) -> list[pa.RecordBatch]:
    """The expected batches, computed by Arrow alone: canonical types, sorted, cut evenly.

    Each batch is rebuilt from Python values, so its layout is Arrow's builders' (fresh
    buffers, zeros under nulls): what the sources must match whatever the engine produced.
    Floats follow the documented rule: -0.0 reads as 0.0.
    """
    chosen = table.select(columns)
    chosen = chosen.cast(pa.schema([(f.name, canonical_type(f.type)) for f in chosen.schema]))
    ordered = chosen.sort_by([(c, "ascending") for c in columns], null_placement="at_end")
    slices = ordered.combine_chunks().to_batches(max_chunksize=batch_rows)
    return [
        pa.RecordBatch.from_pylist(
            [
                {k: v + 0.0 if isinstance(v, float) else v for k, v in row.items()}
                for row in s.to_pylist()
            ],
            schema=s.schema,
        )
        for s in slices
    ]


@pytest.mark.parametrize("backend", ALL_BACKENDS)
@pytest.mark.parametrize("name", TABLES)
def test_batches_are_byte_identical_to_the_reference(
    backend: str, name: str, open_table: OpenTable, tables: dict[str, pa.Table]
) -> None:
    batch_rows = 7 if name == "tricky" else 1000
    columns = REQUESTS[name]
    got = list(open_table(backend, name).batches(columns, batch_rows=batch_rows))
    expected = reference(tables[name], columns, batch_rows)
    assert [b.num_rows for b in got] == [b.num_rows for b in expected]
    assert [ipc_bytes(b) for b in got] == [ipc_bytes(b) for b in expected]


@pytest.mark.parametrize("backend", ALL_BACKENDS)
def test_order_follows_the_requested_columns(backend: str, open_table: OpenTable) -> None:
    batches = list(open_table(backend, "tricky").batches(["entity", "ts"], batch_rows=1000))
    entities = pa.Table.from_batches(batches).column("entity").to_pylist()
    present = [e for e in entities if e is not None]
    # Bytewise: upper case before lower case, 'Ä' (0xC3 0x84) after every ASCII letter.
    assert present == sorted(present, key=lambda e: e.encode())
    assert present[0] == "Apple" and present[-1] == "Äpfel"
    assert entities[-1] is None


@pytest.mark.parametrize("backend", ALL_BACKENDS)
def test_schema_gives_the_types_batches_carry(
    backend: str, open_table: OpenTable, tables: dict[str, pa.Table]
) -> None:
    source = open_table(backend, "tricky")
    expected = pa.schema([(f.name, canonical_type(f.type)) for f in tables["tricky"].schema])
    assert source.schema() == expected
    (batch,) = source.batches(expected.names, batch_rows=1000)
    assert batch.schema == expected


@pytest.mark.parametrize("backend", ALL_BACKENDS)
def test_only_requested_columns_come_back(backend: str, open_table: OpenTable) -> None:
    source = open_table(backend, "weather")
    for batch in source.batches(["humidity", "date"], batch_rows=2048):
        assert batch.schema.names == ["humidity", "date"]


@pytest.mark.parametrize("backend", ALL_BACKENDS)
def test_resume_yields_exactly_the_remaining_rows(backend: str, open_table: OpenTable) -> None:
    source = open_table(backend, "transit")
    columns = REQUESTS["transit"]
    full = [ipc_bytes(b) for b in source.batches(columns, batch_rows=500)]
    resumed = [ipc_bytes(b) for b in source.batches(columns, batch_rows=500, start_row=2500)]
    assert resumed == full[5:]
    everything = pa.Table.from_batches(list(source.batches(columns, batch_rows=5698)))
    odd = pa.Table.from_batches(list(source.batches(columns, batch_rows=500, start_row=1234)))
    assert odd.num_rows == 5698 - 1234
    assert odd.equals(everything.slice(1234))
    assert list(source.batches(columns, batch_rows=500, start_row=5698)) == []


@pytest.mark.parametrize("backend", FILE_BACKENDS)
def test_stored_order_is_the_files_and_reproducible(
    backend: str, open_table: OpenTable, tables: dict[str, pa.Table]
) -> None:
    source = open_table(backend, "transit")
    columns = REQUESTS["transit"]
    assert source.stored_order_reproducible
    first = [ipc_bytes(b) for b in source.batches(columns, batch_rows=500, order="stored")]
    again = [ipc_bytes(b) for b in source.batches(columns, batch_rows=500, order="stored")]
    assert first == again
    stored = pa.Table.from_batches(list(source.batches(columns, batch_rows=500, order="stored")))
    assert stored.column("station").to_pylist() == tables["transit"].column("station").to_pylist()
    resumed = [
        ipc_bytes(b)
        for b in source.batches(columns, batch_rows=500, start_row=2500, order="stored")
    ]
    assert resumed == first[5:]


@pytest.mark.parametrize("backend", FILE_BACKENDS)
def test_reads_that_share_one_engine_give_what_fresh_ones_give(
    backend: str, open_table: OpenTable
) -> None:
    # A source keeps the engine of a read that ended cleanly for the next one (the survey,
    # then the stream); a read abandoned half-way, a sorted read after a stored one, and two
    # reads open at once must each see what a source of their own sees.
    columns = REQUESTS["transit"]
    fresh_stored = [ipc_bytes(b) for b in open_table(backend, "transit").batches(
        columns, batch_rows=500, order="stored")]  # fmt: skip
    fresh_sorted = [ipc_bytes(b) for b in open_table(backend, "transit").batches(
        columns, batch_rows=500)]  # fmt: skip
    source = open_table(backend, "transit")
    assert source.schema().names  # a first read, kept as the idle engine
    abandoned = source.batches(columns, batch_rows=500, order="stored")
    assert ipc_bytes(next(abandoned)) == fresh_stored[0]
    other = source.batches(columns, batch_rows=500)  # while the first is still open
    assert [ipc_bytes(b) for b in other] == fresh_sorted
    abandoned.close()
    assert [ipc_bytes(b) for b in source.batches(columns, batch_rows=500, order="stored")] == (
        fresh_stored
    )
    assert [ipc_bytes(b) for b in source.batches(columns, batch_rows=500)] == fresh_sorted


@pytest.mark.integration
def test_postgresql_offers_no_stored_order(open_table: OpenTable) -> None:
    source = open_table("postgresql", "transit")
    assert not source.stored_order_reproducible
    with pytest.raises(ValueError, match="stored order"):
        source.batches(REQUESTS["transit"], order="stored")


@pytest.mark.parametrize(
    ("backend", "expected"),
    [("duckdb", 5698), ("parquet", 5698), ("csv", None)],
)
def test_row_count(backend: str, expected: int | None, open_table: OpenTable) -> None:
    assert open_table(backend, "transit").row_count() == expected


def test_the_bundled_example_passes_check(example_dir: Path) -> None:
    spec = load_spec(example_dir / "task.toml")
    for dataset in spec.datasets:
        config_path = example_dir / "parties" / f"{dataset.party}.toml"
        config = load_party_config(config_path)
        source = open_party_source(config, dataset.source, base_dir=config_path.parent)
        source.check(dataset)


def _dataset(**overrides: object) -> Dataset:
    fields: dict[str, object] = {
        "party": "transit",
        "name": "ridership",
        "source": "ridership",
        "time_column": "date",
        "entity_columns": ["station"],
        "value_columns": ["rides"],
        "frequency": "D",
        "policy": {
            "columns": {
                "date": {"action": "keep"},
                "station": {"action": "pseudonymize"},
                "rides": {"action": "round", "digits": 1},
            }
        },
    }
    fields.update(overrides)
    return Dataset.model_validate(fields)


@pytest.mark.parametrize("backend", ALL_BACKENDS)
def test_check_names_every_missing_column(backend: str, open_table: OpenTable) -> None:
    dataset = _dataset(entity_columns=["station", "line"], value_columns=["rides", "fares"])
    with pytest.raises(DataError) as caught:
        open_table(backend, "transit").check(dataset)
    assert caught.value.id == "data.column.missing"
    assert caught.value.context["columns"] == ["line", "fares"]
    assert "'line'" in caught.value.message and "'fares'" in caught.value.message


@pytest.mark.parametrize("backend", ALL_BACKENDS)
def test_check_names_every_mistyped_column(backend: str, open_table: OpenTable) -> None:
    dataset = _dataset(
        time_column="station",
        entity_columns=["rides"],
        value_columns=["date"],
        policy={
            "columns": {
                "station": {"action": "keep"},
                "rides": {"action": "keep"},
                "date": {"action": "round", "digits": 1},
            }
        },
    )
    with pytest.raises(DataError) as caught:
        open_table(backend, "transit").check(dataset)
    assert caught.value.id == "data.column.type"
    problems = caught.value.context["problems"]
    assert [p.split()[0] for p in problems] == ["'station'", "'rides'", "'date'"]


@pytest.mark.parametrize(
    ("policy", "ok"),
    [
        ({"action": "mask", "keep_prefix": 1}, True),
        ({"action": "generalize", "mapping": {"a": "b"}}, True),
        ({"action": "laplace", "sensitivity": 1.0, "epsilon": 1.0}, False),
        ({"action": "drop"}, True),
    ],
)
def test_check_types_value_columns_by_what_the_policy_does(
    policy: dict[str, object], ok: bool, open_table: OpenTable
) -> None:
    dataset = _dataset(
        entity_columns=[],
        value_columns=["station"],
        policy={"columns": {"date": {"action": "keep"}, "station": policy}},
    )
    source = open_table("parquet", "transit")
    if ok:
        source.check(dataset)
    else:
        with pytest.raises(DataError, match="station") as caught:
            source.check(dataset)
        assert caught.value.id == "data.column.type"


@pytest.mark.parametrize("backend", ALL_BACKENDS)
def test_asking_for_a_missing_column_fails_at_the_call(backend: str, open_table: OpenTable) -> None:
    with pytest.raises(DataError) as caught:
        open_table(backend, "transit").batches(["date", "nope", "rides", "nada"])
    assert caught.value.id == "data.column.missing"
    assert caught.value.context["columns"] == ["nope", "nada"]


@pytest.mark.parametrize("url", ["parquet:absent.parquet", "csv:absent.csv"])
def test_a_missing_file_is_reported(url: str, tmp_path: Path) -> None:
    with pytest.raises(DataError) as caught:
        open_source(url, base_dir=tmp_path).schema()
    assert caught.value.id == "data.source.missing"


def test_a_missing_duckdb_file_or_table_is_reported(file_dir: Path) -> None:
    for url in ("duckdb:absent.duckdb?table=transit", "duckdb:tables.duckdb?table=absent"):
        source = open_source(url, base_dir=file_dir)
        with pytest.raises(DataError) as caught:
            source.batches(["date"])
        assert caught.value.id == "data.source.missing", url


@pytest.mark.integration
def test_a_missing_postgres_table_is_reported(pg_url: str, pg_schema: str) -> None:
    from sources_support import pg_table_url

    source = open_source(pg_table_url(pg_url, f"{pg_schema}.absent"))
    with pytest.raises(DataError) as caught:
        source.check(_dataset())
    assert caught.value.id == "data.source.missing"


def test_a_file_that_is_not_parquet_is_unavailable(tmp_path: Path) -> None:
    (tmp_path / "bad.parquet").write_bytes(b"PAR1 not really")
    with pytest.raises(DataError) as caught:
        open_source("parquet:bad.parquet", base_dir=tmp_path).schema()
    assert caught.value.id == "data.source.unavailable"


@pytest.fixture
def odd_duckdb(tmp_path: Path) -> Path:
    path = tmp_path / "odd.duckdb"
    con = duckdb.connect(str(path))
    try:
        con.execute(
            "CREATE TABLE odd AS SELECT DATE '2024-01-01' + CAST(i AS INTEGER) AS day, "
            "INTERVAL (i) DAY AS span, "
            "CAST(CASE WHEN i = 2 THEN 18446744073709551610 ELSE i END AS UBIGINT) AS big, "
            "CAST(i AS DECIMAL(10, 3)) / 8 AS exact FROM range(4) t(i)"
        )
    finally:
        con.close()
    return path


def test_an_unsupported_type_is_refused_before_reading(odd_duckdb: Path) -> None:
    source = open_source(f"duckdb://{odd_duckdb}?table=odd")
    assert pa.types.is_interval(source.schema().field("span").type)
    with pytest.raises(DataError) as caught:
        source.batches(["day", "span"])
    assert caught.value.id == "data.column.type"


def test_a_value_its_canonical_type_cannot_hold_fails_loudly(odd_duckdb: Path) -> None:
    source = open_source(f"duckdb://{odd_duckdb}?table=odd")
    assert source.schema().field("big").type == pa.int64()
    with pytest.raises(DataError) as caught:
        list(source.batches(["day", "big"]))
    assert caught.value.id == "data.column.type"


def test_decimals_read_as_float64(odd_duckdb: Path) -> None:
    source = open_source(f"duckdb://{odd_duckdb}?table=odd")
    (batch,) = source.batches(["exact"])
    assert batch.column(0).to_pylist() == [0.0, 0.125, 0.25, 0.375]


def test_unrequested_parquet_columns_are_never_read(tmp_path: Path) -> None:
    """Wreck the bytes of one column chunk: reading any other column must not notice."""
    path = tmp_path / "wrecked.parquet"
    table = pa.table(
        {
            "day": pa.array(range(1000), pa.int32()).cast(pa.date32()),
            "secret": pa.array([f"secret-{i:06d}" for i in range(1000)]),
            "value": pa.array([i / 4 for i in range(1000)]),
        }
    )
    pq.write_table(table, path, compression="none", use_dictionary=False, row_group_size=1000)
    chunk = pq.ParquetFile(path).metadata.row_group(0).column(1)
    raw = bytearray(path.read_bytes())
    start = chunk.dictionary_page_offset or chunk.data_page_offset
    raw[start : start + chunk.total_compressed_size] = b"\xff" * chunk.total_compressed_size
    path.write_bytes(bytes(raw))

    source = open_source(f"parquet://{path}")
    (batch,) = source.batches(["day", "value"], batch_rows=5000)
    assert batch.column("value").to_pylist() == table.column("value").to_pylist()
    with pytest.raises(DataError) as caught:
        list(source.batches(["secret"]))
    assert caught.value.id == "data.source.unavailable"


def test_csv_inference_rules(tmp_path: Path) -> None:
    (tmp_path / "rules.csv").write_text(
        "day,at,at_utc,count,ratio,ok,us_date,label,empty\n"
        "2024-01-02,2024-01-02T03:04:05,2024-01-02 03:04:05+02:00,1,1.5,true,01/02/2024,a,\n"
        "2024-01-03,2024-01-02 03:04:05.25,2024-01-02T01:04:05Z,2,2,false,01/03/2024,007,\n",
        encoding="utf-8",
    )
    source = open_source("csv:rules.csv", base_dir=tmp_path)
    assert source.schema() == pa.schema(
        [
            ("day", pa.date32()),
            ("at", pa.timestamp("us")),
            ("at_utc", pa.timestamp("us", tz="UTC")),
            ("count", pa.int64()),
            ("ratio", pa.float64()),
            ("ok", pa.bool_()),
            ("us_date", pa.string()),
            ("label", pa.string()),
            ("empty", pa.string()),
        ]
    )
    (batch,) = source.batches(["at_utc", "label", "empty"])
    rows = batch.to_pylist()
    assert rows[0]["at_utc"] == rows[1]["at_utc"]
    assert [r["label"] for r in rows] == ["a", "007"] or [r["label"] for r in rows] == [
        "007",
        "a",
    ]
    assert [r["empty"] for r in rows] == [None, None]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"columns": []}, "at least one column"),
        ({"columns": "date"}, "not one string"),
        ({"columns": ["date", "date"]}, "twice"),
        ({"columns": ["date"], "batch_rows": 0}, "batch_rows"),
        ({"columns": ["date"], "start_row": -1}, "start_row"),
    ],
)
def test_a_malformed_request_is_a_programming_error(
    kwargs: dict[str, object], message: str, open_table: OpenTable
) -> None:
    source = open_table("parquet", "transit")
    with pytest.raises(ValueError, match=message):
        source.batches(**kwargs)  # type: ignore[arg-type]


def test_an_undeclared_source_name_is_refused(example_dir: Path) -> None:
    config = load_party_config(example_dir / "parties" / "transit.toml")
    with pytest.raises(DataError) as caught:
        open_party_source(config, "nope", base_dir=example_dir / "parties")
    assert caught.value.id == "data.source.undeclared"
    assert "ridership" in caught.value.message


@pytest.mark.parametrize("backend", FILE_BACKENDS)
def test_sources_reopen_per_read_and_leave_the_file_alone(
    backend: str, open_table: OpenTable, file_dir: Path
) -> None:
    target = file_dir / ("tables.duckdb" if backend == "duckdb" else f"events.{backend}")
    before = target.stat().st_mtime_ns, target.read_bytes()
    source = open_table(backend, "events")
    for _ in range(2):
        assert sum(b.num_rows for b in source.batches(["date"], batch_rows=999)) == 5698
    assert (target.stat().st_mtime_ns, target.read_bytes()) == before
