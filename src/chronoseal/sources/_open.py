"""From a URL (or a party's logical source name) to a :class:`Source`."""

from __future__ import annotations

from pathlib import Path

from chronoseal.errors import DataError
from chronoseal.spec import PartyConfig

from ._base import Source
from ._duckdb import DuckDBSource
from ._influxdb import InfluxDBSource
from ._postgres import PostgresSource
from ._prometheus import PrometheusSource
from ._url import SourceUrl, parse_source_url

#: DuckDB's working memory per read; nothing spills to disk, so a sorted read must fit in it.
DEFAULT_MEMORY_LIMIT_MB = 512


def open_source(
    url: str | SourceUrl,
    *,
    base_dir: str | Path | None = None,
    memory_limit_mb: int = DEFAULT_MEMORY_LIMIT_MB,
) -> Source:
    """The source ``url`` names; nothing is opened or read until a method asks for it.

    ``base_dir`` resolves relative file paths, ``auth=file:`` ones included (pass the party
    config's directory);
    ``memory_limit_mb`` bounds the embedded DuckDB engine that reads file sources.
    """
    if memory_limit_mb < 64:
        raise ValueError(f"memory_limit_mb must be at least 64, got {memory_limit_mb}")
    location = url if isinstance(url, SourceUrl) else parse_source_url(url, base_dir=base_dir)
    if location.kind == "postgresql":
        return PostgresSource(location)
    base = Path(base_dir) if base_dir is not None else None
    if location.kind == "influxdb":
        return InfluxDBSource(location, base)
    if location.kind == "prometheus":
        return PrometheusSource(location, base)
    return DuckDBSource(location, memory_limit_mb=memory_limit_mb)


def open_party_source(
    config: PartyConfig,
    name: str,
    *,
    base_dir: str | Path,
    memory_limit_mb: int = DEFAULT_MEMORY_LIMIT_MB,
) -> Source:
    """The source a party's config declares under ``name`` (a dataset's ``source``)."""
    url = config.sources.get(name)
    if url is None:
        declared = ", ".join(sorted(config.sources)) or "none"
        raise DataError(
            f"party {config.party.name!r} declares no source {name!r} (declared: {declared})",
            id="data.source.undeclared",
            context={"party": config.party.name, "source": name},
        )
    return open_source(url, base_dir=base_dir, memory_limit_mb=memory_limit_mb)
