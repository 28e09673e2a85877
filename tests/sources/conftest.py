"""The same tables in every backend: the bundled Chicago data plus a table made to be awkward.

``open_table(backend, name)`` opens table ``name`` as a DuckDB file, Parquet file, CSV file
or PostgreSQL table; the PostgreSQL copy needs ``CHRONOSEAL_PG_URL`` (``scripts/postgres
start`` prints one) and is skipped without it, or fails when ``CHRONOSEAL_REQUIRE_PG=1``.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import adbc_driver_postgresql.dbapi as pg_dbapi
import duckdb
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq
import pytest
from sources_support import CHICAGO, CHICAGO_TABLES, OpenTable, pg_table_url, tricky_table

from chronoseal.sources import Source, open_source


@pytest.fixture(scope="session")
def tables() -> dict[str, pa.Table]:
    found = {name: pq.read_table(CHICAGO / f"{name}.parquet") for name in CHICAGO_TABLES}
    found["tricky"] = tricky_table()
    return found


@pytest.fixture(scope="session")
def file_dir(tmp_path_factory: pytest.TempPathFactory, tables: dict[str, pa.Table]) -> Path:
    """Parquet, CSV and one DuckDB file holding every table."""
    root = tmp_path_factory.mktemp("sources")
    con = duckdb.connect(str(root / "tables.duckdb"))
    try:
        for name, table in tables.items():
            pq.write_table(table, root / f"{name}.parquet")
            pa_csv.write_csv(table, root / f"{name}.csv")
            con.register("incoming", table)
            con.execute(f"CREATE TABLE {name} AS SELECT * FROM incoming")
            con.unregister("incoming")
    finally:
        con.close()
    return root


def _require_pg() -> str:
    url = os.environ.get("CHRONOSEAL_PG_URL")
    if not url:
        message = (
            "CHRONOSEAL_PG_URL is unset: run `scripts/postgres start` and export the URL "
            "it prints as CHRONOSEAL_PG_URL"
        )
        if os.environ.get("CHRONOSEAL_REQUIRE_PG") == "1":
            pytest.fail(message)
        pytest.skip(message)
    return url


@pytest.fixture(scope="session")
def pg_url() -> str:
    return _require_pg()


@pytest.fixture(scope="session")
def pg_schema(pg_url: str, tables: dict[str, pa.Table]) -> Iterator[str]:
    """Every table in a fresh schema, text columns with a locale collation where one exists."""
    schema = f"sources_{uuid.uuid4().hex[:12]}"
    with pg_dbapi.connect(pg_url, autocommit=True) as conn, conn.cursor() as cur:
        cur.execute(f'CREATE SCHEMA "{schema}"')
        for name, table in tables.items():
            cur.adbc_ingest(name, table, mode="create", db_schema_name=schema)
        cur.execute("SELECT collname FROM pg_collation WHERE collname = 'en-x-icu'")
        if cur.fetchone() is not None:
            # A locale collation sorts 'apple' before 'Apple' before 'Zürich': the source
            # must still order by bytes, like DuckDB.
            cur.execute(
                f'ALTER TABLE "{schema}".tricky ALTER COLUMN entity TYPE text COLLATE "en-x-icu"'
            )
    try:
        yield schema
    finally:
        with pg_dbapi.connect(pg_url, autocommit=True) as conn, conn.cursor() as cur:
            cur.execute(f'DROP SCHEMA "{schema}" CASCADE')


@pytest.fixture
def open_table(request: pytest.FixtureRequest, file_dir: Path) -> OpenTable:
    """Open a table by backend name; asks for PostgreSQL only when a test uses it."""

    def opener(backend: str, name: str) -> Source:
        if backend == "duckdb":
            return open_source(f"duckdb:tables.duckdb?table={name}", base_dir=file_dir)
        if backend in ("parquet", "csv"):
            return open_source(f"{backend}:{name}.{backend}", base_dir=file_dir)
        if backend == "postgresql":
            pg_url = request.getfixturevalue("pg_url")
            schema = request.getfixturevalue("pg_schema")
            return open_source(pg_table_url(pg_url, f"{schema}.{name}"))
        raise AssertionError(f"unknown backend {backend}")

    return opener
