"""The bundled Chicago task with each party's data in its own kind of database: the transit
operator's ridership in Prometheus (backfilled with promtool), the weather service's
observations in InfluxDB (line protocol), the events office's schedule in PostgreSQL; a
``chronoseal run`` reads them through their gateways to Serving, every commitment matched,
with the same rows the Parquet files give."""

from __future__ import annotations

import json
import shutil
import sys
import uuid
from pathlib import Path

import adbc_driver_postgresql.dbapi as pg_dbapi
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from chronoseal.cli import app
from chronoseal.node import bundled_scenario

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "sources"))
# The sources tests' helpers, a directory away.
from tsdb_support import (
    as_timestamps,
    exposition,
    influx_from_env,
    line_protocol,
    prometheus_backfill,
    require,
)

pytestmark = pytest.mark.integration
RUN = uuid.uuid4().hex[:10]
WINDOW = "start=2001-01-22T00:00:00Z&end=2016-08-28T00:00:00Z"


def _source(config: Path, name: str, url: str) -> None:
    text = config.read_text()
    lines = [
        f'{name} = "{url}"' if line.startswith(f"{name} = ") else line for line in text.splitlines()
    ]
    assert lines != text.splitlines(), f"{config} declares no source {name}"
    config.write_text("\n".join(lines) + "\n")


def test_parties_on_influxdb_prometheus_and_postgresql_reach_serving(tmp_path: Path) -> None:
    pg_url = require("CHRONOSEAL_PG_URL", "CHRONOSEAL_REQUIRE_PG", "scripts/postgres")
    prom_url = require("CHRONOSEAL_PROM_URL", "CHRONOSEAL_REQUIRE_PROM", "scripts/prometheus")
    influx = influx_from_env()
    data = bundled_scenario().parent / "data"
    transit = as_timestamps(pq.read_table(data / "transit.parquet"), "date")
    weather = as_timestamps(pq.read_table(data / "weather.parquet"), "date")
    events = pq.read_table(data / "events.parquet")

    metric = f"ridership_{RUN}"
    prometheus_backfill(
        {metric: exposition(transit, metric, "date", ["station"], "rides", unit="s")}
    )
    db = f"weather_{RUN}"
    influx.query(f'CREATE DATABASE "{db}"')
    fields = [c for c in weather.column_names if c != "date"]
    influx.write(db, line_protocol(weather, "daily", "date", [], fields))
    schema = f"events_{RUN}"
    with pg_dbapi.connect(pg_url, autocommit=True) as conn, conn.cursor() as cur:
        cur.execute(f'CREATE SCHEMA "{schema}"')
        cur.adbc_ingest("home_games", events, mode="create", db_schema_name=schema)

    root = tmp_path / "scenario"
    shutil.copytree(bundled_scenario().parent, root)
    shutil.rmtree(root / "data")  # nothing may be read from the Parquet files
    task = root / "task.toml"
    text = task.read_text().replace("windows = 13", "windows = 2")
    text = text.replace("contribution = {", "# contribution = {")
    # PostgreSQL's dates are naive, the time-series stores' times UTC: say how they meet.
    task.write_text(text.replace('kind = "vertical"', 'kind = "vertical"\nnaive_timezone = "UTC"'))
    host = prom_url.split("//")[1].rstrip("/")
    _source(
        root / "parties" / "transit.toml",
        "ridership",
        f"prometheus://{host}?query={metric}&step=1d&{WINDOW}&value=rides",
    )
    _source(
        root / "parties" / "weather.toml",
        "daily_weather",
        influx.source_url(db, "daily"),
    )
    sep = "&" if "?" in pg_url else "?"
    _source(
        root / "parties" / "events.toml", "home_games", f"{pg_url}{sep}table={schema}.home_games"
    )
    out = tmp_path / "run.json"
    try:
        result = CliRunner().invoke(app, ["run", str(root / "scenario.toml"), "--json", str(out)])
    finally:
        influx.query(f'DROP DATABASE "{db}"')
        with pg_dbapi.connect(pg_url, autocommit=True) as conn, conn.cursor() as cur:
            cur.execute(f'DROP SCHEMA "{schema}" CASCADE')
    assert result.exit_code == 0, result.output[-4000:]
    doc = json.loads(out.read_text())
    assert doc["task"]["state"] == "Serving"
    parties = {p["name"]: p for p in doc["parties"]}
    assert set(parties) == {"transit", "weather", "events"}
    assert all(p["commitment_matched"] for p in parties.values())
    # The training window's rows, as the Parquet files give them (tests/node/test_demo.py).
    assert {p["rows_sent"] for p in parties.values()} == {5684}
    matched = {e["fields"]["org"] for e in doc["events"] if e["event"] == "CommitmentMatched"}
    assert matched == {"transit", "weather", "events"}
    assert doc["audit"]["verified"] is True
