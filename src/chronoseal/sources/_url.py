"""Source URLs: where a party's table lives, parsed strictly so a typo is an error, not a guess.

Forms (see ``docs/sources.md``)::

    duckdb:///abs/path.duckdb?table=name        duckdb:relative/path.duckdb?table=schema.name
    parquet:path/file.parquet                   csv:path/file.csv
    postgresql://user[:password]@host[:port]/db?table=schema.name   (also postgres://)
    influxdb://host[:port]/database?measurement=name[&retention=rp][&start=..][&end=..][&auth=..]
    prometheus://host[:port]?query=promql&step=1d&start=..&end=..[&value=name][&auth=..]
    prometheus://host[:port]?query.NAME=promql[&query.OTHER=..]&step=1d&start=..&end=..

File paths are percent-decoded and, when relative, resolved against the directory the caller
passes (the party config's directory): never the process's working directory. Passwords are
never shown: ``str()`` and every error message use the redacted form. The time-series stores
take no credentials in the URL at all: ``auth=env:NAME`` or ``auth=file:PATH`` says where the
gateway finds them (:mod:`._http`).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal
from urllib.parse import parse_qsl, quote, unquote, urlencode, urlsplit

from chronoseal.errors import DataError

SourceKind = Literal["csv", "duckdb", "influxdb", "parquet", "postgresql", "prometheus"]

_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*):")
_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_$]{0,62}$")
_FILE_KINDS: dict[str, SourceKind] = {"duckdb": "duckdb", "parquet": "parquet", "csv": "csv"}
_PG_SCHEMES = frozenset({"postgresql", "postgres"})
_SECRET_PARAMS = frozenset({"password", "sslpassword"})
_HTTP_KINDS: dict[str, SourceKind] = {"influxdb": "influxdb", "prometheus": "prometheus"}
_HTTP_DEFAULT_PORTS = {"influxdb": 8086, "prometheus": 9090}
_INFLUX_PARAMS = frozenset({"measurement", "retention", "start", "end", "auth"})
_PROM_PARAMS = frozenset({"query", "step", "start", "end", "value", "auth"})
#: ``query.NAME=PROMQL``: one value column NAME per query.
_NAMED_QUERY = re.compile(r"query\.[A-Za-z_][A-Za-z0-9_]*")
_AUTH = re.compile(r"^(env:[A-Za-z_][A-Za-z0-9_]*|file:.+)$")
# Up to the *last* '@': a password with a raw '/' or '@' in it must not leak its tail.
_USERINFO = re.compile(r"(//[^/?#@:]*:).*@")
_SECRET_QUERY = re.compile(r"((?:^|[?&])(?:ssl)?password=)[^&#]*", re.IGNORECASE)
_REDACTED = "***"


def redact_url(url: str) -> str:
    """The URL with any password (userinfo or ``password=`` parameter) replaced by ``***``.

    Works on any text, parseable or not, so error messages about a bad URL are safe too.
    """
    return _SECRET_QUERY.sub(rf"\g<1>{_REDACTED}", _USERINFO.sub(rf"\g<1>{_REDACTED}@", url))


def _bad(url: str, why: str) -> DataError:
    return DataError(
        f"bad source URL {redact_url(url)!r}: {why}",
        id="data.source.bad_url",
        context={"url": redact_url(url)},
    )


def _table(url: str, value: str) -> tuple[str, ...]:
    parts = tuple(value.split("."))
    if len(parts) > 2 or not all(_IDENT.fullmatch(p) for p in parts):
        raise _bad(
            url,
            f"table {value!r} must be 'name' or 'schema.name', each part a letter or '_' "
            "followed by letters, digits, '_' or '$' (at most 63 characters)",
        )
    return parts


def _query(
    url: str, query: str, allowed: frozenset[str], pattern: re.Pattern[str] | None = None
) -> dict[str, str]:
    if not query:
        return {}
    try:
        pairs = parse_qsl(query, keep_blank_values=True, strict_parsing=True)
    except ValueError as exc:
        raise _bad(url, f"unreadable query string: {exc}") from None
    params: dict[str, str] = {}
    for key, value in pairs:
        if key in params:
            raise _bad(url, f"parameter {key!r} is given twice")
        if key not in allowed and not (pattern is not None and pattern.fullmatch(key)):
            known = ", ".join(sorted(allowed)) or "none"
            if pattern is not None:
                known += ", query.NAME"
            raise _bad(url, f"unknown parameter {key!r} (allowed: {known})")
        params[key] = value
    return params


@dataclass(frozen=True)
class SourceUrl:
    """A parsed source URL. ``path`` is absolute for file kinds; ``password`` is never shown."""

    kind: SourceKind
    path: Path | None = None
    table: tuple[str, ...] | None = None
    user: str | None = None
    password: str | None = field(default=None, repr=False)
    host: str | None = None
    port: int | None = None
    database: str | None = None
    params: tuple[tuple[str, str], ...] = ()

    def to_url(self, *, redact: bool = True) -> str:
        """The canonical URL text; parsing it gives this value back (with ``redact=False``)."""
        if self.kind in _HTTP_KINDS:
            return self._http_url()
        if self.kind != "postgresql":
            text = f"{self.kind}://{quote(str(self.path), safe='/')}"
            if self.table is not None:
                text += "?" + urlencode({"table": ".".join(self.table)}, safe="*")
            return text
        return self._libpq_uri(redact=redact, with_table=True)

    def param(self, key: str) -> str | None:
        """The value of query parameter ``key``, if given."""
        return next((v for k, v in self.params if k == key), None)

    def http_base(self) -> str:
        """``http://host:port`` of an InfluxDB or Prometheus-compatible server."""
        host = f"[{self.host}]" if self.host and ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def _http_url(self) -> str:
        host = f"[{self.host}]" if self.host and ":" in self.host else self.host
        path = "/" + quote(self.database, safe="") if self.database is not None else ""
        query = "?" + urlencode(self.params, safe="*:/,") if self.params else ""
        return f"{self.kind}://{host}:{self.port}{path}{query}"

    def libpq_uri(self) -> str:
        """The connection URI for libpq, password included: hand it to the driver, never log it."""
        return self._libpq_uri(redact=False, with_table=False)

    def _libpq_uri(self, *, redact: bool, with_table: bool) -> str:
        auth = ""
        if self.user is not None:
            auth = quote(self.user, safe="")
            if self.password is not None:
                auth += ":" + (_REDACTED if redact else quote(self.password, safe=""))
            auth += "@"
        host = self.host or ""
        if ":" in host:
            host = f"[{host}]"
        port = f":{self.port}" if self.port is not None else ""
        params = [(k, _REDACTED if redact and k in _SECRET_PARAMS else v) for k, v in self.params]
        if with_table and self.table is not None:
            params.append(("table", ".".join(self.table)))
        query = "?" + urlencode(params, safe="*") if params else ""
        return f"postgresql://{auth}{host}{port}/{quote(self.database or '', safe='')}{query}"

    def __str__(self) -> str:
        return self.to_url(redact=True)


def parse_source_url(url: str, *, base_dir: str | Path | None = None) -> SourceUrl:
    """Parse ``url``; relative file paths are resolved against ``base_dir``.

    Raises :class:`DataError` ``data.source.bad_url`` for a malformed URL (or a relative path
    with no ``base_dir``) and ``data.source.unknown_scheme`` for a scheme chronoseal cannot read.
    """
    if "\x00" in url:
        raise _bad(url, "it contains a NUL character")
    match = _SCHEME.match(url)
    if match is None:
        raise _bad(url, "it has no scheme: write duckdb:, parquet:, csv: or postgresql:// in front")
    scheme = match.group(1).lower()
    if scheme in _FILE_KINDS:
        return _parse_file(url, _FILE_KINDS[scheme], url[match.end() :], base_dir)
    if scheme in _PG_SCHEMES:
        return _parse_postgres(url)
    if scheme in _HTTP_KINDS:
        return _parse_http(url, _HTTP_KINDS[scheme])
    raise DataError(
        f"source URL {redact_url(url)!r} has scheme {scheme!r}; chronoseal reads duckdb:, "
        "parquet:, csv:, postgresql:// (or postgres://), influxdb:// and prometheus:// sources",
        id="data.source.unknown_scheme",
        context={"url": redact_url(url), "scheme": scheme},
    )


def _parse_file(url: str, kind: SourceKind, rest: str, base_dir: str | Path | None) -> SourceUrl:
    rest, _, query = rest.partition("?")
    if "#" in rest or "#" in query:
        raise _bad(url, "a fragment ('#') is not allowed; write '%23' for a '#' in a path")
    if rest.startswith("//"):
        if not rest.startswith("///"):
            raise _bad(url, f"{kind} sources are local files: write {kind}:///abs/path")
        rest = rest[2:]
    raw_path = unquote(rest, errors="strict") if _decodable(rest) else None
    if raw_path is None:
        raise _bad(url, "the path is not valid percent-encoded UTF-8")
    if not raw_path or raw_path.endswith("/"):
        raise _bad(url, "it names no file")
    if kind != "duckdb" and any(c in raw_path for c in "*?[{"):
        # DuckDB would expand these as a glob and read files nobody named.
        raise _bad(url, "the path contains a glob character (*, ?, [ or {): name one file")
    params = _query(url, query, frozenset({"table"}) if kind == "duckdb" else frozenset())
    table: tuple[str, ...] | None = None
    if kind == "duckdb":
        if "table" not in params:
            raise _bad(url, "a duckdb source needs ?table=name (or ?table=schema.name)")
        table = _table(url, params["table"])
    path = Path(raw_path)
    if not path.is_absolute():
        if base_dir is None:
            raise _bad(url, "the path is relative and no base directory was given")
        path = Path(base_dir).absolute() / path
    return SourceUrl(kind=kind, path=Path(os.path.normpath(path)), table=table)


def _decodable(text: str) -> bool:
    try:
        unquote(text, errors="strict")
    except UnicodeDecodeError:
        return False
    return True


def _parse_postgres(url: str) -> SourceUrl:
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        # urllib's own message would quote the authority, password included.
        raise _bad(
            url,
            "the part user:password@host:port is malformed: percent-encode '/', '@' and ':' "
            "in the user and password, and give the port as a number from 1 to 65535",
        ) from None
    if parts.fragment:
        raise _bad(url, "a fragment ('#') is not allowed")
    database = unquote(parts.path[1:]) if parts.path.startswith("/") else ""
    if not database or "/" in database:
        raise _bad(url, "it names no database: postgresql://user@host:port/db?table=schema.name")
    pairs = _pg_params(url, parts.query)
    table = [v for k, v in pairs if k == "table"]
    if len(table) != 1:
        raise _bad(url, "a postgresql source needs exactly one ?table=schema.name")
    return SourceUrl(
        kind="postgresql",
        table=_table(url, table[0]),
        user=unquote(parts.username) if parts.username is not None else None,
        password=unquote(parts.password) if parts.password is not None else None,
        host=parts.hostname or None,
        port=port,
        database=database,
        params=tuple((k, v) for k, v in pairs if k != "table"),
    )


def _pg_params(url: str, query: str) -> list[tuple[str, str]]:
    if not query:
        return []
    try:
        pairs = parse_qsl(query, keep_blank_values=True, strict_parsing=True)
    except ValueError as exc:
        raise _bad(url, f"unreadable query string: {exc}") from None
    keys = [k for k, _ in pairs]
    if len(keys) != len(set(keys)):
        raise _bad(url, "a parameter is given twice")
    return pairs


def _parse_http(url: str, kind: SourceKind) -> SourceUrl:
    """``influxdb://`` and ``prometheus://``: host, port, parameters; never a credential."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise _bad(url, "the part host:port is malformed: give the port as 1 to 65535") from None
    if parts.username is not None or parts.password is not None:
        raise _bad(
            url,
            "credentials never go in a source URL: write auth=env:NAME (an environment "
            "variable holding user:password or a token) or auth=file:PATH",
        )
    if parts.fragment:
        raise _bad(url, "a fragment ('#') is not allowed")
    if not parts.hostname:
        raise _bad(url, f"it names no host: {kind}://host:port")
    allowed = _INFLUX_PARAMS if kind == "influxdb" else _PROM_PARAMS
    params = _query(url, parts.query, allowed, _NAMED_QUERY if kind == "prometheus" else None)
    auth = params.get("auth")
    if auth is not None and not _AUTH.fullmatch(auth):
        raise _bad(url, "auth must be env:NAME (a variable name) or file:PATH")
    database: str | None = None
    if kind == "influxdb":
        database = unquote(parts.path[1:]) if parts.path.startswith("/") else ""
        if not database or "/" in database:
            raise _bad(url, "it names no database: influxdb://host:port/database?measurement=m")
        if not params.get("measurement"):
            raise _bad(url, "an influxdb source needs ?measurement=name")
    else:
        if parts.path not in ("", "/"):
            raise _bad(url, "a prometheus source has no path: prometheus://host:port?query=...")
        named = [k for k in params if _NAMED_QUERY.fullmatch(k)]
        if named and ("query" in params or "value" in params):
            raise _bad(
                url,
                "write either query=PROMQL (with value=NAME) or query.NAME=PROMQL for each "
                "value column, not both",
            )
        if any(not params[k] for k in named):
            raise _bad(url, "a query.NAME parameter is empty")
        needed = ("step", "start", "end") if named else ("query", "step", "start", "end")
        missing = [k for k in needed if not params.get(k)]
        if missing:
            raise _bad(
                url,
                f"a prometheus source needs {', '.join(missing)}: the query, its step and the "
                "window it reads (start and end, RFC 3339 or Unix seconds)",
            )
    return SourceUrl(
        kind=kind,
        host=parts.hostname,
        port=port if port is not None else _HTTP_DEFAULT_PORTS[kind],
        database=database,
        params=tuple(params.items()),
    )
