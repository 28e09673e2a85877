"""PostgreSQL and TimescaleDB tables, read with ADBC (Arrow Database Connectivity).

Why ADBC rather than psycopg: the ADBC PostgreSQL driver runs the query as
``COPY (...) TO STDOUT (FORMAT binary)`` and decodes that binary stream straight into Arrow
batches of bounded size (``adbc.postgresql.batch_size_hint_bytes``) as it arrives, so rows
never become Python objects and the client holds one batch at a time. A psycopg server-side
cursor would stream too, but row by row through Python tuples, with the type mapping ours to
get right. Plain SQL only, so a TimescaleDB hypertable reads like any table.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager

import adbc_driver_manager
import adbc_driver_postgresql.dbapi as pg_dbapi
import pyarrow as pa

from chronoseal.errors import DataError

from ._base import SqlSource, quote_ident
from ._types import canonical_type
from ._url import SourceUrl

#: Bytes per Arrow batch the driver decodes from the COPY stream before handing it over.
_BATCH_SIZE_HINT_BYTES = 4 * 1024 * 1024
#: PostgreSQL types ADBC hands over as opaque text that chronoseal reads as float64.
_AS_DOUBLE = frozenset({"numeric"})


def _pg_type(field: pa.Field) -> str | None:
    metadata = field.metadata or {}
    value = metadata.get(b"POSTGRESQL:type")
    return value.decode() if value is not None else None


class PostgresSource(SqlSource):
    """A table or hypertable in PostgreSQL, streamed through ADBC's binary COPY."""

    def __init__(self, location: SourceUrl) -> None:
        super().__init__(location)
        if location.table is None:
            raise ValueError("a PostgreSQL source needs a table")
        self._table = location.table

    def _scrub(self, text: str) -> str:
        password = self._location.password
        return text.replace(password, "***") if password else text

    def _failure(self, exc: Exception, what: str) -> DataError:
        return DataError(
            f"{self.url}: {what}: {self._scrub(str(exc))}",
            id="data.source.unavailable",
            context={"source": self.url},
        )

    @contextmanager
    def _connect(self) -> Iterator[pg_dbapi.Connection]:
        try:
            conn = pg_dbapi.connect(self._location.libpq_uri(), autocommit=True)
        except adbc_driver_manager.Error as exc:
            raise self._failure(exc, "cannot connect") from None
        try:
            with conn.cursor() as cur:
                # The source only ever reads; the session refuses writes should a bug try one.
                cur.execute("SET default_transaction_read_only = on")
                cur.execute("SELECT to_regclass($1) IS NOT NULL", parameters=(self._relation(),))
                found = cur.fetchone()
            if found is None or not found[0]:
                raise DataError(
                    f"{self.url}: there is no table {'.'.join(self._table)}",
                    id="data.source.missing",
                    context={"source": self.url},
                )
            yield conn
        except (adbc_driver_manager.Error, pa.ArrowException) as exc:
            raise self._failure(exc, "query failed") from None
        finally:
            conn.close()

    def _relation(self) -> str:
        return ".".join(quote_ident(part) for part in self._table)

    def _canonical(self, field: pa.Field) -> pa.DataType | None:
        if _pg_type(field) in _AS_DOUBLE:
            return pa.float64()
        return canonical_type(field.type)

    def _select(self, field: pa.Field) -> str:
        name = quote_ident(field.name)
        if _pg_type(field) in _AS_DOUBLE:
            return f"CAST({name} AS double precision) AS {name}"
        return name

    def _order(self, field: pa.Field, canonical: pa.DataType) -> str:
        # "C" collation compares UTF-8 bytes, as DuckDB does: same order on every backend,
        # whatever locale the database was created with.
        collate = ' COLLATE "C"' if pa.types.is_string(canonical) else ""
        return f"{quote_ident(field.name)}{collate} ASC NULLS LAST"

    def _native_schema(self) -> pa.Schema:
        with self._connect() as conn, conn.cursor() as cur:
            cur.execute(f"SELECT * FROM {self._relation()} LIMIT 0")
            schema: pa.Schema = cur.fetch_arrow_table().schema
            return schema

    def row_count(self) -> int | None:
        # count(*) is a full scan in PostgreSQL and reltuples only an estimate.
        return None

    @contextmanager
    def _execute(
        self, sql: str, batch_rows: int, *, scan: bool
    ) -> Iterator[Iterable[pa.RecordBatch]]:
        # The driver sizes its batches in bytes, not rows.
        with self._connect() as conn, conn.cursor() as cur:
            cur.adbc_statement.set_options(
                **{"adbc.postgresql.batch_size_hint_bytes": str(_BATCH_SIZE_HINT_BYTES)}
            )
            cur.execute(sql)
            reader = cur.fetch_record_batch()
            try:
                yield reader
            finally:
                reader.close()
