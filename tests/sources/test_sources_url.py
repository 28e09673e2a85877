"""Source URLs: the documented forms, strict refusals, round trips, and no password ever shown."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chronoseal.errors import DataError
from chronoseal.sources import SourceKind, SourceUrl, open_source, parse_source_url, redact_url


def test_duckdb_absolute_and_relative(tmp_path: Path) -> None:
    absolute = parse_source_url("duckdb:///srv/data/party.duckdb?table=readings")
    assert absolute == SourceUrl(
        kind="duckdb", path=Path("/srv/data/party.duckdb"), table=("readings",)
    )
    relative = parse_source_url("duckdb:data/party.duckdb?table=ts.readings", base_dir=tmp_path)
    assert relative.path == tmp_path / "data" / "party.duckdb"
    assert relative.table == ("ts", "readings")


def test_file_paths_resolve_against_the_base_dir_only(tmp_path: Path) -> None:
    parties = tmp_path / "parties"
    url = parse_source_url("parquet:../data/events.parquet", base_dir=parties)
    assert url.path == tmp_path / "data" / "events.parquet"
    assert parse_source_url("csv:/abs/x.csv").path == Path("/abs/x.csv")
    assert parse_source_url("CSV:my%20file.csv", base_dir="/d").path == Path("/d/my file.csv")
    with pytest.raises(DataError, match="no base directory") as caught:
        parse_source_url("parquet:events.parquet")
    assert caught.value.id == "data.source.bad_url"


def test_postgres_forms() -> None:
    url = parse_source_url("postgres://ana:s3cr%40t@db.example:6543/metrics?table=public.load")
    assert (url.kind, url.user, url.password, url.host, url.port, url.database, url.table) == (
        "postgresql",
        "ana",
        "s3cr@t",
        "db.example",
        6543,
        "metrics",
        ("public", "load"),
    )
    assert url.libpq_uri() == "postgresql://ana:s3cr%40t@db.example:6543/metrics"
    assert str(url) == "postgresql://ana:***@db.example:6543/metrics?table=public.load"
    assert "s3cr" not in repr(url)
    with_params = parse_source_url("postgresql://ana@h/db?sslmode=require&table=load&password=pw")
    assert with_params.params == (("sslmode", "require"), ("password", "pw"))
    assert with_params.libpq_uri() == "postgresql://ana@h/db?sslmode=require&password=pw"
    assert "pw" not in str(with_params)


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("events.parquet", "no scheme"),
        ("duckdb:///x.duckdb", "needs ?table"),
        ("duckdb:///x.duckdb?table=a.b.c", "'name' or 'schema.name'"),
        ('duckdb:///x.duckdb?table=t";drop table x;--', "'name' or 'schema.name'"),
        ("duckdb:///x.duckdb?table=a&table=b", "twice"),
        ("duckdb://host/x.duckdb?table=a", "local files"),
        ("parquet:///x.parquet?table=a", "unknown parameter 'table'"),
        ("parquet:///data/*.parquet", "glob"),
        ("csv:///data/x.csv#frag", "fragment"),
        ("csv:", "names no file"),
        ("parquet:///data/", "names no file"),
        ("csv:///%ff.csv", "percent-encoded UTF-8"),
        ("postgresql://u@h:99999/db?table=t", "port as a number"),
        ("postgresql://u@h/db", "exactly one ?table"),
        ("postgresql://u@h/?table=t", "no database"),
        ("postgresql://u@h/db?table=bad-name", "'name' or 'schema.name'"),
    ],
)
def test_malformed_urls_say_what_is_wrong(url: str, why: str) -> None:
    with pytest.raises(DataError, match=re.escape(why)) as caught:
        parse_source_url(url, base_dir="/base")
    assert caught.value.id == "data.source.bad_url"


@pytest.mark.parametrize(
    "url", ["mysql://u@h/db?table=t", "s3://bucket/key.parquet", "file:///x.csv", "C:\\x.csv"]
)
def test_unknown_schemes_are_refused(url: str) -> None:
    with pytest.raises(DataError) as caught:
        parse_source_url(url)
    assert caught.value.id == "data.source.unknown_scheme"


def test_errors_never_show_the_password() -> None:
    for url in (
        "postgresql://ana:hunter2@h:99999/db?table=t",
        "postgresql://ana:hunter2@h/db",
        "mysql://ana:hunter2@h/db",
        "postgresql://ana@h/db?password=hunter2",
        "postgresql://ana:hun/ter2@h/db?table=t",
        "postgresql://ana:hun@ter2@h:1x/db?table=t",
    ):
        with pytest.raises(DataError) as caught:
            parse_source_url(url)
        for fragment in ("hunter2", "hun", "ter2"):
            assert fragment not in str(caught.value), url
            assert fragment not in repr(caught.value.context), url


def test_connection_errors_never_show_the_password() -> None:
    # Nothing listens on port 1: the driver's own message comes back, scrubbed.
    source = open_source("postgresql://ana:hunter2@127.0.0.1:1/db?table=t")
    with pytest.raises(DataError) as caught:
        source.schema()
    assert caught.value.id == "data.source.unavailable"
    assert "hunter2" not in str(caught.value)
    assert "ana:***@" in str(caught.value)


# --- properties ------------------------------------------------------------------------------

_segment = st.text(
    alphabet=st.characters(exclude_characters="/\x00*?[{", exclude_categories=["Cs"]),
    min_size=1,
    max_size=12,
).filter(lambda s: s not in {".", ".."})
_ident = st.from_regex(r"[A-Za-z_][A-Za-z0-9_$]{0,20}", fullmatch=True)
_table = st.lists(_ident, min_size=1, max_size=2).map(tuple)
_FILE_KINDS: tuple[SourceKind, ...] = ("duckdb", "parquet", "csv")
_host = st.from_regex(r"[a-z0-9]([a-z0-9.-]{0,20}[a-z0-9])?", fullmatch=True)
_anything = st.text(
    alphabet=st.characters(exclude_characters="\x00", exclude_categories=["Cs"]),
    min_size=1,
    max_size=16,
)


@st.composite
def file_urls(draw: st.DrawFn) -> SourceUrl:
    kind = draw(st.sampled_from(_FILE_KINDS))
    path = Path("/", *draw(st.lists(_segment, min_size=1, max_size=4)))
    return SourceUrl(kind=kind, path=path, table=draw(_table) if kind == "duckdb" else None)


@st.composite
def postgres_urls(draw: st.DrawFn) -> SourceUrl:
    user = draw(st.none() | _anything)
    params = draw(
        st.dictionaries(
            st.sampled_from(["sslmode", "application_name", "password", "sslpassword"]),
            _anything,
            max_size=3,
        )
    )
    return SourceUrl(
        kind="postgresql",
        table=draw(_table),
        user=user,
        password=draw(st.none() | _anything) if user is not None else None,
        host=draw(st.none() | _host),
        port=draw(st.none() | st.integers(min_value=1, max_value=65535)),
        database=draw(_anything.filter(lambda d: "/" not in d)),
        params=tuple(params.items()),
    )


@given(file_urls() | postgres_urls())
def test_parsing_the_canonical_form_gives_the_url_back(url: SourceUrl) -> None:
    assert parse_source_url(url.to_url(redact=False)) == url


@given(postgres_urls())
def test_text_redaction_agrees_with_structured_redaction(url: SourceUrl) -> None:
    full = url.to_url(redact=False)
    assert redact_url(full) == url.to_url(redact=True) == str(url)


@given(st.text(max_size=60))
def test_any_text_parses_or_raises_a_data_error(text: str) -> None:
    for candidate in (text, f"postgresql://{text}", f"duckdb:{text}", f"csv:{text}"):
        try:
            parse_source_url(candidate, base_dir="/base")
        except DataError as exc:
            assert exc.id in {"data.source.bad_url", "data.source.unknown_scheme"}


@given(st.sampled_from(_FILE_KINDS), st.lists(_segment, min_size=1, max_size=3))
def test_relative_paths_stay_under_the_base_dir(kind: str, segments: list[str]) -> None:
    relative = "/".join(segments).replace("%", "%25").replace("#", "%23")
    query = "?table=t" if kind == "duckdb" else ""
    url = parse_source_url(f"{kind}:{relative}{query}", base_dir="/base/dir")
    assert url.path == Path("/base/dir", *segments)
