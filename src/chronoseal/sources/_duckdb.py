"""DuckDB files, Parquet and CSV, all read through an embedded DuckDB engine.

One engine for the three file kinds gives them one sort order and one type mapping. The
engine never writes a party's rows to disk: spilling is off (DuckDB's temporary files would
hold them in the clear), so a read is bounded by ``memory_limit_mb``. A stored-order read is
a scan and streams a table of any size in that bound; a sorted read of a table whose sort
does not fit is refused (``data.source.memory``) with what to do instead. Parquet and DuckDB
tables are read column by column (projection pushdown): a column that was not requested is
never decoded.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb
import pyarrow as pa

from chronoseal.errors import DataError

from ._base import SqlSource, quote_ident
from ._url import SourceUrl

#: The name a party's DuckDB file is attached under, read-only, in a private in-memory engine.
_ALIAS = "chronoseal_source"
#: The explicit CSV reading rules (docs/sources.md): what is inferred, and from what.
_CSV_TYPES = "['BOOLEAN', 'BIGINT', 'DOUBLE', 'DATE', 'TIMESTAMP', 'TIMESTAMPTZ', 'VARCHAR']"
_CSV_OPTIONS = (
    "header = true, delim = ',', quote = '\"', escape = '\"', nullstr = '', "
    f"sample_size = -1, auto_type_candidates = {_CSV_TYPES}, dateformat = '%Y-%m-%d'"
)
#: Bounds of the rows per Arrow batch pulled from DuckDB (the caller's size where it fits);
#: the output is re-cut to the caller's size anyway.
_ENGINE_BATCH_ROWS_MIN = 2048
_ENGINE_BATCH_ROWS_MAX = 1 << 20


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


class DuckDBSource(SqlSource):
    """A table in a DuckDB file, or a Parquet or CSV file, read by embedded DuckDB."""

    _engine_settles_floats = True

    def __init__(self, location: SourceUrl, *, memory_limit_mb: int) -> None:
        super().__init__(location)
        if location.path is None:
            raise ValueError("a DuckDB-read source needs a path")
        self._path: Path = location.path
        self._memory_limit_mb = memory_limit_mb
        #: The engine of the last read that ended cleanly, kept for the next one: the schema
        #: read, the time-column survey and the stream that follows it share one engine
        #: (opening one and attaching the file costs ~10 ms of CPU, more wall time on a busy
        #: machine, and it would stand before the stream's first batch).
        self._idle: duckdb.DuckDBPyConnection | None = None
        self._lock = threading.Lock()

    def _open(self) -> duckdb.DuckDBPyConnection:
        # Never fetch extensions at run time: a gateway in a TEE runs only measured code. No
        # temporary directory: nothing of the party's data is ever spilled to disk.
        config: dict[str, str | bool | int | float | list[str]] = {
            "memory_limit": f"{self._memory_limit_mb}MB",
            "temp_directory": "",
            "preserve_insertion_order": True,
            "autoinstall_known_extensions": False,
            "autoload_known_extensions": False,
        }
        try:
            con = duckdb.connect(":memory:", config=config)
        except duckdb.Error as exc:
            raise self._unavailable(exc) from None
        try:
            con.execute("SET TimeZone = 'UTC'")
            con.execute("SET enable_progress_bar = false")  # a gateway's stdout is its own
            if self._location.kind == "duckdb":
                con.execute(f"ATTACH {_literal(str(self._path))} AS {_ALIAS} (READ_ONLY)")
        except BaseException:
            con.close()
            raise
        return con

    @contextmanager
    def _connect(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """An engine with the file attached: the idle one if no other read holds it, else a
        new one. It goes back to idle only when the read ran to its end without an error;
        any other way out (an error, a reader abandoned early) closes it."""
        if not self._path.is_file():
            raise DataError(
                f"{self.url}: there is no file at {self._path}",
                id="data.source.missing",
                context={"source": self.url},
            )
        with self._lock:
            con: duckdb.DuckDBPyConnection | None = self._idle
            self._idle = None
        clean = False
        try:
            if con is None:
                con = self._open()
            yield con
            clean = True
        except duckdb.CatalogException as exc:
            raise DataError(
                f"{self.url}: no such table in {self._path}: {exc}",
                id="data.source.missing",
                context={"source": self.url},
            ) from None
        except duckdb.OutOfMemoryException:
            raise DataError(
                f"{self.url}: reading the requested columns (a sorted read holds them all) needs "
                f"more than the "
                f"{self._memory_limit_mb} MB this source may use, and chronoseal never spills "
                "a party's rows to disk; store the table in time order (it is then read as "
                "stored, without a sort) or raise the source's memory limit",
                id="data.source.memory",
                context={"source": self.url, "memory_limit_mb": self._memory_limit_mb},
            ) from None
        except (duckdb.Error, pa.ArrowException) as exc:
            raise self._unavailable(exc) from None
        finally:
            if clean and con is not None:
                with self._lock:
                    if self._idle is None:
                        self._idle, con = con, None
            if con is not None:
                con.close()

    def _unavailable(self, exc: Exception) -> DataError:
        return DataError(
            f"{self.url}: DuckDB could not read it: {exc}",
            id="data.source.unavailable",
            context={"source": self.url},
        )

    @property
    def stored_order_reproducible(self) -> bool:
        # With insertion order preserved, DuckDB scans its own table, a Parquet file or a CSV
        # file in the order the file holds, whatever the thread count.
        return True

    def _relation(self) -> str:
        path = _literal(str(self._path))
        if self._location.kind == "parquet":
            return f"read_parquet({path})"
        if self._location.kind == "csv":
            return f"read_csv({path}, {_CSV_OPTIONS})"
        table = self._location.table or ()
        qualified = table if len(table) == 2 else ("main", *table)
        return ".".join(quote_ident(part) for part in (_ALIAS, *qualified))

    def _native_schema(self) -> pa.Schema:
        with self._connect() as con:
            schema: pa.Schema = (
                con.sql(f"SELECT * FROM {self._relation()} LIMIT 0").to_arrow_table().schema
            )
            return schema

    def row_count(self) -> int | None:
        # A CSV file has no row count short of reading it all.
        if self._location.kind == "csv":
            return None
        with self._connect() as con:
            found = con.sql(f"SELECT count(*) FROM {self._relation()}").fetchone()
            return int(found[0]) if found is not None else None

    @contextmanager
    def _execute(
        self, sql: str, batch_rows: int, *, scan: bool
    ) -> Iterator[Iterable[pa.RecordBatch]]:
        with self._connect() as con:
            # The engine may be the one a previous read used: set its threads either way.
            if not scan:
                con.execute("RESET threads")
            else:
                # A stored-order scan streams: the caller's own threads (desensitize, encode,
                # send) overlap it, and a second engine worker only adds the cost of putting
                # its chunks back in order (about a tenth of the gateway's CPU, measured by
                # bench/gateway.py; a lone scan, such as the time-column survey, is ~7 ms per
                # 4 M rows slower). A sort keeps every thread: it must finish first.
                con.execute("SET threads = 1")
            # The caller's batch size, so that re-cutting rarely has to join pieces.
            reader: pa.RecordBatchReader = con.sql(sql).to_arrow_reader(
                batch_size=min(max(batch_rows, _ENGINE_BATCH_ROWS_MIN), _ENGINE_BATCH_ROWS_MAX)
            )
            try:
                yield reader
            finally:
                reader.close()
