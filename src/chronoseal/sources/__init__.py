"""A party's time series as a stream of Arrow record batches, memory bounded at any size.

``open_source(url)`` understands DuckDB files (the embedded default), Parquet, CSV,
PostgreSQL/TimescaleDB tables, InfluxDB measurements and PromQL queries on Prometheus or
VictoriaMetrics (over plain HTTP, credentials never in the URL). ``check(dataset)``
refuses, before anything is sent, a table that lacks a declared column or types one
unusably; ``batches(columns)`` reads only the
requested columns, in one total order, in batches whose boundaries and bytes are the same on
every backend and after a resume from ``start_row``. Depends only on :mod:`chronoseal.spec`
and :mod:`chronoseal.errors`. Details: ``docs/sources.md``.
"""

from ._base import DEFAULT_BATCH_ROWS, ReadOrder, Source
from ._open import DEFAULT_MEMORY_LIMIT_MB, open_party_source, open_source
from ._types import canonical_type
from ._url import SourceKind, SourceUrl, parse_source_url, redact_url

__all__ = [
    "DEFAULT_BATCH_ROWS",
    "DEFAULT_MEMORY_LIMIT_MB",
    "ReadOrder",
    "Source",
    "SourceKind",
    "SourceUrl",
    "canonical_type",
    "open_party_source",
    "open_source",
    "parse_source_url",
    "redact_url",
]
