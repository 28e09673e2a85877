"""The time-series stores the project's scripts start, and ways to load a table into each.

``scripts/influxdb start``, ``scripts/prometheus start`` and ``scripts/victoria-metrics start``
print the URLs ``scripts/test`` exports as ``CHRONOSEAL_INFLUX_URL`` (with
``CHRONOSEAL_INFLUX_AUTH_FILE``), ``CHRONOSEAL_PROM_URL`` and ``CHRONOSEAL_VM_URL``; without
them the tests that need a store skip, or fail under ``CHRONOSEAL_REQUIRE_<STORE>=1``.
Self-contained (the node tests import it too).
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import math
import os
import subprocess
import tempfile
import urllib.parse
import urllib.request
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pytest

REPO = Path(__file__).resolve().parents[2]


def require(var: str, require_var: str, script: str) -> str:
    value = os.environ.get(var)
    if not value:
        message = f"{var} is unset: run `{script} start` and export the URL it prints as {var}"
        if os.environ.get(require_var) == "1":
            pytest.fail(message)
        pytest.skip(message)
    return value


@dataclass(frozen=True)
class Influx:
    """The InfluxDB server of ``scripts/influxdb`` and its admin credentials file."""

    url: str
    auth_file: Path

    @property
    def hostport(self) -> str:
        return urllib.parse.urlsplit(self.url).netloc

    def source_url(self, database: str, measurement: str, **params: str) -> str:
        query = urllib.parse.urlencode(
            {"measurement": measurement, **params, "auth": f"file:{self.auth_file}"}, safe="/:"
        )
        return f"influxdb://{self.hostport}/{database}?{query}"

    def _headers(self) -> dict[str, str]:
        secret = self.auth_file.read_text().strip().encode()
        return {"Authorization": "Basic " + base64.b64encode(secret).decode()}

    def query(self, q: str, database: str | None = None) -> dict[str, object]:
        params = {"q": q, **({"db": database} if database else {})}
        request = urllib.request.Request(
            f"{self.url}/query",
            data=urllib.parse.urlencode(params).encode(),
            headers=self._headers(),
        )
        with urllib.request.urlopen(request, timeout=60) as response:
            doc: dict[str, object] = json.loads(response.read())
        return doc

    def write(self, database: str, lines: Iterable[str], *, per_request: int = 50_000) -> None:
        """Line protocol, nanosecond timestamps, in requests of ``per_request`` points."""
        chunk: list[str] = []
        for line in lines:
            chunk.append(line)
            if len(chunk) == per_request:
                self._post(database, chunk)
                chunk = []
        if chunk:
            self._post(database, chunk)

    def _post(self, database: str, lines: list[str]) -> None:
        query = urllib.parse.urlencode({"db": database, "precision": "ns"})
        request = urllib.request.Request(
            f"{self.url}/write?{query}",
            data="\n".join(lines).encode(),
            headers=self._headers(),
        )
        with urllib.request.urlopen(request, timeout=120) as response:
            assert response.status == 204, response.read()


def influx_from_env() -> Influx:
    url = require("CHRONOSEAL_INFLUX_URL", "CHRONOSEAL_REQUIRE_INFLUX", "scripts/influxdb")
    auth = require(
        "CHRONOSEAL_INFLUX_AUTH_FILE", "CHRONOSEAL_REQUIRE_INFLUX", "scripts/influxdb auth-file"
    )
    return Influx(url.rstrip("/"), Path(auth))


def _ns(value: object) -> int:
    if isinstance(value, dt.datetime):
        stamp = value if value.tzinfo else value.replace(tzinfo=dt.UTC)
    elif isinstance(value, dt.date):
        stamp = dt.datetime(value.year, value.month, value.day, tzinfo=dt.UTC)
    else:
        raise TypeError(value)
    delta = stamp - dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
    return (delta.days * 86_400 + delta.seconds) * 10**9 + delta.microseconds * 1000


def _tag(text: str) -> str:
    return text.replace("\\", "\\\\").replace(",", "\\,").replace("=", "\\=").replace(" ", "\\ ")


def _field(value: object, integer: bool) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if integer:
        return f"{int(value)}i"  # type: ignore[call-overload]
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return repr(float(value))  # type: ignore[arg-type]


def line_protocol(
    table: pa.Table, measurement: str, time: str, tags: Sequence[str], fields: Sequence[str]
) -> list[str]:
    """One point per row; a null field is left out, a row with no field at all too."""
    integers = {f for f in fields if pa.types.is_integer(table.schema.field(f).type)}
    lines = []
    for row in table.to_pylist():
        tag_text = "".join(f",{t}={_tag(str(row[t]))}" for t in tags if row[t] is not None)
        field_text = ",".join(
            f"{f}={_field(row[f], f in integers)}"
            for f in fields
            if row[f] is not None and not (isinstance(row[f], float) and math.isnan(row[f]))
        )
        if field_text:
            lines.append(f"{measurement}{tag_text} {field_text} {_ns(row[time])}")
    return lines


def _label(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def exposition(
    table: pa.Table, metric: str, time: str, labels: Sequence[str], value: str, *, unit: str
) -> list[str]:
    """Prometheus text samples with timestamps (``unit`` ``s`` for OpenMetrics backfill,
    ``ms`` for VictoriaMetrics' import); a null value is no sample."""
    lines = []
    for row in table.to_pylist():
        if row[value] is None:
            continue
        label_text = ",".join(f'{name}="{_label(str(row[name]))}"' for name in labels)
        ns = _ns(row[time])
        stamp = f"{ns // 10**9}" if unit == "s" else f"{ns // 10**6}"
        number = row[value]
        text = "NaN" if isinstance(number, float) and math.isnan(number) else repr(float(number))
        lines.append(f"{metric}{{{label_text}}} {text} {stamp}")
    return lines


def prometheus_backfill(metrics: dict[str, list[str]]) -> None:
    """Every sample into the ``scripts/prometheus`` server (``promtool`` blocks, a restart).

    OpenMetrics wants each metric family's samples together, in time order per series.
    """
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "samples.om"
        with path.open("w") as out:
            for name, lines in metrics.items():
                out.write(f"# TYPE {name} gauge\n")
                out.write("\n".join(lines) + "\n")
            out.write("# EOF\n")
        proc = subprocess.run(
            [str(REPO / "scripts" / "prometheus"), "backfill", str(path)],
            capture_output=True,
            text=True,
            check=False,
            timeout=300,
        )
        assert proc.returncode == 0, proc.stderr[-3000:]


def vm_import(url: str, lines: Sequence[str]) -> None:
    """Samples into VictoriaMetrics (``/api/v1/import/prometheus``), searchable at once."""
    request = urllib.request.Request(
        f"{url.rstrip('/')}/api/v1/import/prometheus", data="\n".join(lines).encode()
    )
    with urllib.request.urlopen(request, timeout=120) as response:
        assert response.status == 204, response.read()
    with urllib.request.urlopen(f"{url.rstrip('/')}/internal/force_flush", timeout=60):
        pass
    _vm_settled(url, lines)


def _vm_settled(url: str, lines: Sequence[str], timeout: float = 60.0) -> None:
    """Until every imported sample is exported back, twice in a row: a freshly started
    server answered a read a moment after the flush without a sample it had answered with
    just before (seen 1 run in 3 on a new data directory), so the tests wait for the import
    to settle rather than read through it."""
    import time

    # a NaN sample is the store's staleness marker: kept, but not exported
    samples = [
        line
        for line in lines
        if line and not line.startswith("#") and line.rsplit(" ", 2)[-2].lower() != "nan"
    ]
    names = sorted({line.split("{", 1)[0].split(" ", 1)[0] for line in samples})
    query = urllib.parse.urlencode({"match[]": '{__name__=~"' + "|".join(names) + '"}'})
    deadline = time.monotonic() + timeout
    settled = 0
    while settled < 2:
        with urllib.request.urlopen(f"{url.rstrip('/')}/api/v1/export?{query}", timeout=60) as r:
            got = sum(len(json.loads(row)["values"]) for row in r.read().splitlines() if row)
        settled = settled + 1 if got == len(samples) else 0
        if time.monotonic() > deadline:
            raise AssertionError(f"VictoriaMetrics exports {got} of {len(samples)} samples")
        time.sleep(0.5)


def as_timestamps(table: pa.Table, column: str) -> pa.Table:
    """``column`` (a date) as the UTC timestamps a time-series store delivers."""
    index = table.schema.get_field_index(column)
    stamps = pc.cast(table.column(column), pa.timestamp("us", tz="UTC"))
    return table.set_column(index, column, stamps)
