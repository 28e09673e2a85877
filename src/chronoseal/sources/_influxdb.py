"""InfluxDB 1.x measurements, read with InfluxQL over HTTP as a chunked stream.

``SELECT <fields>, <tags> FROM "db"."rp"."m" WHERE <window>`` with ``chunked=true`` and
``epoch=ns``: InfluxDB merges the measurement's series into one stream in time order and
writes it ``chunk_size`` points per JSON line, so the client holds one chunk at a time and
the server never builds the whole answer. Tags become string entity columns, fields value
columns typed by ``SHOW FIELD KEYS``; a row is a point that has at least one of the fields
read (every field, when none is requested). A field typed differently in different shards
(InfluxDB allows it) is refused, ``data.column.mixed_types``: its values cannot be one column.
"""

from __future__ import annotations

from collections.abc import Iterator
from itertools import chain
from pathlib import Path
from typing import Any

import pyarrow as pa

from chronoseal.errors import DataError

from ._series import PAGE_TIME, SeriesSource, parse_instant
from ._url import SourceUrl

#: Points per JSON line of the chunked answer: ~1-2 MB of JSON for a few columns.
CHUNK_POINTS = 20_000
_FIELD_TYPES = {
    "float": pa.float64(),
    "integer": pa.int64(),
    "unsigned": pa.uint64(),
    "string": pa.string(),
    "boolean": pa.bool_(),
}


def _ident(name: str) -> str:
    """An InfluxQL identifier in double quotes (backslash escapes ``\\`` and ``"``)."""
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


class InfluxDBSource(SeriesSource):
    """One measurement of an InfluxDB 1.x database (the 1.x API of 2.x/3.x too)."""

    def __init__(self, location: SourceUrl, base_dir: Path | None = None) -> None:
        super().__init__(location, base_dir)
        self._database = location.database or ""
        self._measurement = location.param("measurement") or ""
        self._retention = location.param("retention")
        self._start = parse_instant(location, "start")
        self._end = parse_instant(location, "end")
        self._fields: dict[str, pa.DataType] = {}
        self._mixed: dict[str, list[str]] = {}

    def _relation(self) -> str:
        rp = _ident(self._retention) if self._retention else ""
        return f"{_ident(self._database)}.{rp}.{_ident(self._measurement)}"

    def _where(self) -> str:
        bounds = []
        if self._start is not None:
            bounds.append(f"time >= {self._start}")
        if self._end is not None:
            bounds.append(f"time <= {self._end}")
        return f" WHERE {' AND '.join(bounds)}" if bounds else ""

    def _missing(self, why: str) -> DataError:
        return DataError(
            f"{self.url}: {why}", id="data.source.missing", context={"source": self.url}
        )

    def _results(self, doc: Any) -> list[dict[str, Any]]:
        """The statements' results, a database or measurement that is not there refused."""
        if not isinstance(doc, dict):
            raise self._unavailable(f"an answer that is not an InfluxDB result: {doc!r:.200}")
        if "error" in doc:
            raise self._error(str(doc["error"]))
        results = doc.get("results")
        if not isinstance(results, list):
            raise self._unavailable(f"an answer without results: {doc!r:.200}")
        errors = [str(result["error"]) for result in results if "error" in result]
        if errors:
            # A statement after a failed one says only "not executed": report the cause.
            raise self._error(next((e for e in errors if "not found" in e), errors[0]))
        return results

    def _error(self, message: str) -> DataError:
        if "database not found" in message or "retention policy not found" in message:
            return self._missing(message)
        return self._unavailable(f"InfluxDB refused the query: {message}")

    def _unavailable(self, why: str) -> DataError:
        return DataError(
            f"{self.url}: {why}", id="data.source.unavailable", context={"source": self.url}
        )

    def _query(self, q: str) -> list[dict[str, Any]]:
        doc = self._http.get_json("/query", {"db": self._database, "q": q, "epoch": "ns"})
        return self._results(doc)

    def _columns(self) -> pa.Schema:
        relation = self._relation()
        # Two requests: after a failed statement InfluxDB says only "not executed".
        (fields,) = self._query(f"SHOW FIELD KEYS FROM {relation}")
        (tags,) = self._query(f"SHOW TAG KEYS FROM {relation}")
        if not fields.get("series"):
            raise self._missing(
                f"there is no measurement {self._measurement!r} in database {self._database!r}"
            )
        types: dict[str, list[str]] = {}
        for name, kind in fields["series"][0]["values"]:
            types.setdefault(name, []).append(kind)
        self._mixed = {name: kinds for name, kinds in types.items() if len(set(kinds)) > 1}
        self._fields = {
            name: _FIELD_TYPES.get(kinds[0], pa.null())
            for name, kinds in types.items()
            if name not in self._mixed
        }
        tag_names = [row[0] for s in tags.get("series", []) for row in s["values"]]
        columns = [pa.field(name, pa.string()) for name in tag_names if name not in types]
        columns += [pa.field(name, kind) for name, kind in self._fields.items()]
        # A mixed field shows with a type no dataset accepts; _check_column names the cause.
        columns += [pa.field(name, pa.null()) for name in self._mixed]
        return pa.schema(sorted(columns, key=lambda f: f.name))

    def _check_column(self, name: str) -> None:
        self._store_columns()
        kinds = self._mixed.get(name)
        if kinds is not None:
            raise DataError(
                f"{self.url}: field {name!r} holds values of several types in different "
                f"shards ({', '.join(sorted(set(kinds)))}); chronoseal reads a column as one "
                "type: rewrite the field with one type, or select a window of one type",
                id="data.column.mixed_types",
                context={"source": self.url, "column": name, "types": sorted(set(kinds))},
            )

    def _select(self, names: list[str]) -> str:
        schema = self._store_columns()
        fields = [n for n in names if n in self._fields] or sorted(self._fields)
        tags = [n for n in names if n not in self._fields and n in schema.names]
        parts = [f"{_ident(n)}::field" for n in fields] + [f"{_ident(n)}::tag" for n in tags]
        return f"SELECT {', '.join(parts)} FROM {self._relation()}{self._where()}"

    def _probe(self) -> None:
        results = self._query(self._select([]) + " LIMIT 1")
        if not results[0].get("series"):
            raise DataError(
                f"{self.url}: measurement {self._measurement!r} has no point "
                + ("in the window the source names" if self._where() else "at all"),
                id="data.source.empty",
                context={"source": self.url},
            )

    def _pages(self, names: list[str]) -> Iterator[pa.Table]:
        schema = self._store_columns()
        params = {
            "db": self._database,
            "q": self._select(names),
            "epoch": "ns",
            "chunked": "true",
            "chunk_size": str(CHUNK_POINTS),
        }
        types = [pa.int64(), *(schema.field(n).type for n in names)]
        for doc in self._http.json_lines("/query", params):
            for result in self._results(doc):
                for series in result.get("series", ()):
                    yield self._page(series, names, types)

    def _page(self, series: dict[str, Any], names: list[str], types: list[pa.DataType]) -> pa.Table:
        values = series.get("values") or []
        found = series.get("columns", [])
        if found[:1] != ["time"] or set(names) - set(found):
            raise self._unavailable(f"an answer with columns {found}, not time and {names}")
        where = {name: i for i, name in enumerate(found)}
        index = [0, *(where[n] for n in names)]
        # Row-major values, flattened in C and cut column by column: no per-point Python code.
        flat = list(chain.from_iterable(values))
        width = len(found)
        if len(flat) != width * len(values):
            raise self._unavailable(f"an answer with rows of other than {width} columns")
        arrays = []
        for i, kind in zip(index, types, strict=True):
            try:
                arrays.append(pa.array(flat[i::width], type=kind))
            except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError) as exc:
                raise DataError(
                    f"{self.url}: column {found[i]!r} holds a value that is not {kind}: {exc}",
                    id="data.column.mixed_types",
                    context={"source": self.url, "column": found[i]},
                ) from None
        arrays[0] = arrays[0].cast(pa.timestamp("ns", tz="UTC"))
        return pa.Table.from_arrays(arrays, names=[PAGE_TIME, *names])
