"""Gateway throughput and memory: DuckDB → policy → AEAD frames → mutual RA-TLS, vs baselines.

All pipelines read the same 5-column DuckDB table in the same batches:

* **gateway**: chronoseal's real path — ``sources`` (the time-column survey, made before
  the gateway connects and timed apart as ``survey_seconds``, then a stored-order,
  memory-bounded DuckDB read), ``privacy.Desensitizer`` (pseudonymize, round,
  clip), Arrow IPC, the attested intake protocol (HPKE-sealed stream key, AES-256-GCM frames,
  per-batch acknowledgement carrying the commitment leaf) over mutual TLS 1.3 on loopback,
  with simulated-TEE attestation;
* **tls**: what a user would do instead: the rows read from DuckDB as Arrow and written as
  one Arrow IPC stream over TLS 1.3 (same certificate kind and cipher suite, no policy, no
  frames, no commitments) — the baseline the ``ratio`` is taken against;
* **raw**: the same over plain TCP (``ratio_vs_raw``).

Beside it, the parties' own time-series databases (``scripts/influxdb``,
``scripts/prometheus``, started here when ``CHRONOSEAL_INFLUX_URL`` / ``CHRONOSEAL_PROM_URL``
are unset), each holding the same points (sensors x minutes: a float field, an integer field
for InfluxDB), read two ways in child processes:

* **influx** / **prometheus**: ``chronoseal.sources`` as the gateway reads (``check``, then
  every batch, in time order, ties sorted, Arrow in canonical types);
* **influx_client** / **prometheus_client**: the store's HTTP API read the way its own
  Python client reads it, without chronoseal: InfluxDB's ``chunked=true`` JSON lines decoded
  with ``json.loads`` (what ``influxdb-python``'s chunked query does), Prometheus'
  ``query_range`` pages decoded with ``json.loads``, paged by time with the same point
  budget (a single query may not exceed 11,000 points per series, and an unpaged read holds
  everything). ``ratio_influx`` and ``ratio_prometheus`` are points/s of the first over the
  second (target 0.8), with peak RSS at both sizes. Loading the points (line protocol;
  ``promtool`` backfill) is done once per size and reused by later runs.

The sender of each pipeline runs in a child process so its peak RSS is its own (and its
time excludes interpreter start-up); it runs at two table sizes to show that memory does not
grow with the table. The receiver decodes every batch and keeps only counters. Kinds
alternate within each repeat so load drift on a shared machine hits them alike; figures
are medians over the repeats.

    python bench/gateway.py --quick     # 1 M and 4 M rows/points, 3 repeats
    python bench/gateway.py             # 2.5 M and 10 M rows (stores: 1 M and 4 M), 5 repeats
    python bench/gateway.py --no-stores # DuckDB only

The last line printed is one JSON object with the figures and ratios.
"""

from __future__ import annotations

import argparse
import base64
import http.client
import json
import os
import resource
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request
from pathlib import Path

import duckdb
import pyarrow as pa

from chronoseal.attest import (
    AppraisalPolicy,
    Appraiser,
    PinnedMeasurements,
    SimulatedAttester,
    code_measurement,
)
from chronoseal.channel import (
    ChannelServer,
    GatewayIntake,
    PartyIntake,
    RaTlsIdentity,
    connect,
    serve_intake,
)
from chronoseal.channel._tls import client_context, server_context
from chronoseal.gateway._checks import read_order
from chronoseal.gateway._gateway import encoded_batches
from chronoseal.privacy import Desensitizer
from chronoseal.sources import _influxdb, _prometheus, open_source
from chronoseal.spec import Component, Dataset

NONCE = b"chronoseal-bench-freshness-nonce"
TASK = bytes(32)
BATCH_ROWS = 65_536
COLUMNS = ["ts", "entity", "a", "b", "c"]
KINDS = ("raw", "tls", "gateway")
#: DuckDB's working memory for every read: a scan streams in it, whatever the table size.
MEMORY_LIMIT_MB = 128


def dataset() -> Dataset:
    return Dataset.model_validate(
        {
            "party": "bench",
            "name": "bench",
            "source": "bench",
            "time_column": "ts",
            "entity_columns": ["entity"],
            "value_columns": ["a", "b", "c"],
            "frequency": "s",
            "policy": {
                "columns": {
                    "ts": {"action": "keep"},
                    "entity": {"action": "pseudonymize"},
                    "a": {"action": "round", "digits": 3},
                    "b": {"action": "clip", "min": 0.1, "max": 0.9},
                    "c": {"action": "keep"},
                }
            },
        }
    )


def make_table(path: Path, rows: int) -> None:
    with duckdb.connect(str(path)) as con:
        con.execute(
            "CREATE TABLE t AS SELECT TIMESTAMP '2020-01-01' + to_seconds(i) AS ts, "
            "'meter-' || (i % 5000)::VARCHAR AS entity, (i % 997) / 997.0 AS a, "
            "(i % 101) / 101.0 AS b, i::DOUBLE AS c FROM range(?) r(i)",
            [rows],
        )


def appraiser(kind: Component, measurement: bytes) -> Appraiser:
    """Approve one peer measurement: the code the peer's process measured at its start.

    Passed between the processes because a tree being edited while the bench runs would
    otherwise measure differently in each process (as it should).
    """
    pinned = PinnedMeasurements([(kind, "simulated", measurement)])
    return Appraiser(AppraisalPolicy(measurements=pinned, allow_simulated=True))


class Counter:
    def __init__(self) -> None:
        self.rows = 0
        self.bytes = 0
        #: CPU seconds of this (receiving) process from the receiver's first read to its
        #: last: every thread, as the runtime's intake hashes on a helper thread while its
        #: connection thread reads the next batch (the main thread only waits meanwhile).
        self.cpu = 0.0


# ---------------------------------------------------------------- receivers (parent process)


def receive_gateway(listener: socket.socket, counter: Counter, gateway_measurement: bytes) -> None:
    identity = RaTlsIdentity.generate(SimulatedAttester(Component.ANALYSIS), NONCE)
    server = ChannelServer(
        identity,
        appraiser=appraiser(Component.GATEWAY, gateway_measurement),
        peer_component=Component.GATEWAY,
        fresh_nonces={NONCE},
    )
    conn, _ = listener.accept()
    cpu = time.process_time()

    class Discarding(PartyIntake):
        """Decodes and checks every batch and keeps the commitment, not the data."""

        def accept(self, index: int, salt: bytes, payload: bytes) -> bytes:
            leaf = super().accept(index, salt, payload)
            counter.rows += self.batches[-1].num_rows
            counter.bytes += len(payload)
            self.batches.clear()
            return leaf

    columns = ["ts", "entity", "a", "b", "c"]
    with server.accept(conn) as channel:
        serve_intake(
            channel,
            task_id=TASK,
            own_fingerprint=identity.fingerprint,
            task_key=os.urandom(32),
            intake_for=lambda party: Discarding(TASK, party, columns),
            verify_party=lambda party, digest, sig: None,
        )
    counter.cpu = time.process_time() - cpu


def receive_baseline(listener: socket.socket, counter: Counter, tls: bool) -> None:
    conn, _ = listener.accept()
    cpu = time.process_time()
    if tls:
        identity = RaTlsIdentity.generate(SimulatedAttester(Component.ANALYSIS), NONCE)
        conn = server_context(identity).wrap_socket(conn, server_side=True)
    with conn, conn.makefile("rb") as stream, pa.ipc.open_stream(stream) as reader:
        for batch in reader:
            counter.rows += batch.num_rows
            counter.bytes += batch.nbytes
    counter.cpu = time.process_time() - cpu


# ---------------------------------------------------------------- senders (child process)


def send_gateway(db: Path, port: int, analysis_measurement: bytes) -> tuple[float, float, float]:
    """Stream the table; returns the seconds from the first read to the runtime's ``done``
    (start-up — attestation, handshake, hello — is measured by bench/channel.py), and the
    seconds of the time-column survey the gateway makes before it connects, and the CPU
    seconds of this process (every thread: reader, sender, DuckDB's) while it streamed."""
    source = open_source(f"duckdb://{db}?table=t", memory_limit_mb=MEMORY_LIMIT_MB)
    ds = dataset()
    source.check(ds)
    survey = time.perf_counter()
    order = read_order(source, ds)  # as the gateway does, before it connects
    survey = time.perf_counter() - survey
    identity = RaTlsIdentity.generate(SimulatedAttester(Component.GATEWAY), NONCE)
    channel = connect(
        ("127.0.0.1", port),
        identity,
        appraiser=appraiser(Component.ANALYSIS, analysis_measurement),
        peer_component=Component.ANALYSIS,
        fresh_nonces={NONCE},
    )
    with GatewayIntake(
        channel,
        task_id=TASK,
        party="bench",
        own_fingerprint=identity.fingerprint,
        sign=lambda digest: b"",
    ) as intake:
        welcome = intake.hello()
        start, cpu = time.perf_counter(), time.process_time()
        desensitizer = Desensitizer(ds, task_key=welcome.task_key, task_id=TASK)
        for _rows, payload in encoded_batches(source, ds, desensitizer, BATCH_ROWS, order=order):
            intake.send(payload)
        intake.finish()
        return time.perf_counter() - start, survey, time.process_time() - cpu


def send_baseline(db: Path, port: int, tls: bool) -> tuple[float, float]:
    """The same rows as one Arrow IPC stream over TLS 1.3 (or plain TCP): no policy, no
    frames, no commitments."""
    with (
        duckdb.connect(str(db), read_only=True) as con,
        socket.create_connection(("127.0.0.1", port)) as plain,
    ):
        sock: socket.socket | ssl.SSLSocket = client_context().wrap_socket(plain) if tls else plain
        con.execute(f"SET memory_limit = '{MEMORY_LIMIT_MB}MB'")
        con.execute("SET enable_progress_bar = false")  # it would break the JSON line
        with sock.makefile("wb") as stream:
            start, cpu = time.perf_counter(), time.process_time()
            reader = con.execute("SELECT * FROM t").to_arrow_reader(BATCH_ROWS)
            with pa.ipc.new_stream(stream, reader.schema) as writer:
                for batch in reader:
                    writer.write_batch(batch)
            stream.flush()
            return time.perf_counter() - start, time.process_time() - cpu


# ---------------------------------------------------------------- time-series stores

STORE_KINDS = ("influx_client", "influx", "prometheus_client", "prometheus")
REPO = Path(__file__).resolve().parents[1]
#: Minutes per series: one page of the store's answer holds many series' minutes.
STEPS = 10_000
STEP_S = 60
START_S = 1_577_836_800  # 2020-01-01T00:00:00Z


def store_dataset(store: str) -> Dataset:
    values = ["reading", "level"] if store == "influx" else ["reading"]
    return Dataset.model_validate(
        {
            "party": "bench",
            "name": "sensors",
            "source": "sensors",
            "time_column": "ts",
            "entity_columns": ["sensor"],
            "value_columns": values,
            "frequency": "min",
            "policy": {"columns": {c: {"action": "keep"} for c in ["ts", *values]}},
        }
    )


def _server(name: str, env: str) -> str:
    url = os.environ.get(env)
    if url:
        return url.rstrip("/")
    out = subprocess.run(
        [str(REPO / "scripts" / name), "start"], capture_output=True, text=True, check=True
    )
    return out.stdout.strip().splitlines()[-1]


def _influx_auth() -> str:
    found = os.environ.get("CHRONOSEAL_INFLUX_AUTH_FILE")
    if found:
        return found
    out = subprocess.run(
        [str(REPO / "scripts" / "influxdb"), "auth-file"],
        capture_output=True,
        text=True,
        check=True,
    )
    return out.stdout.strip()


def _authorization(auth_file: str) -> dict[str, str]:
    secret = Path(auth_file).read_text().strip().encode()
    return {"Authorization": "Basic " + base64.b64encode(secret).decode()}


def _post(url: str, body: bytes, headers: dict[str, str]) -> bytes:
    request = urllib.request.Request(url, data=body, headers=headers)
    with urllib.request.urlopen(request, timeout=600) as response:
        data: bytes = response.read()
        return data


def _value(step: int, sensor: int) -> float:
    return ((step * 31 + sensor) % 1000) / 8


def load_influx(url: str, auth_file: str, points: int) -> str:
    """``points`` points in database ``chronoseal_bench``, measurement ``sensors_<points>``
    (kept for later runs); returns the measurement."""
    headers = _authorization(auth_file)
    name = f"sensors_{points}"
    _post(
        f"{url}/query",
        urllib.parse.urlencode({"q": "CREATE DATABASE chronoseal_bench"}).encode(),
        headers,
    )
    q = urllib.parse.urlencode(
        {"db": "chronoseal_bench", "q": f'SELECT count("reading") FROM "{name}"'}
    )
    found = json.loads(_post(f"{url}/query", q.encode(), headers))["results"][0].get("series")
    if found and found[0]["values"][0][1] == points:
        return name
    sensors = points // STEPS
    lines: list[str] = []
    for step in range(STEPS):
        ns = (START_S + STEP_S * step) * 10**9
        lines += [
            f"{name},sensor=s{s:04d} reading={_value(step, s)},level={(step + s) % 97}i {ns}"
            for s in range(sensors)
        ]
        if len(lines) >= 100_000:
            _post(f"{url}/write?db=chronoseal_bench", "\n".join(lines).encode(), headers)
            lines = []
    if lines:
        _post(f"{url}/write?db=chronoseal_bench", "\n".join(lines).encode(), headers)
    return name


def load_prometheus(url: str, points: int) -> str:
    """``points`` samples of metric ``chronoseal_bench_<points>`` (backfilled with promtool by
    ``scripts/prometheus backfill``, kept for later runs); returns the metric."""
    name = f"chronoseal_bench_{points}"
    q = urllib.parse.urlencode(
        {"query": f"count(count_over_time({name}[1y]))", "time": START_S + STEPS * STEP_S}
    )
    with urllib.request.urlopen(f"{url}/api/v1/query?{q}", timeout=60) as response:
        result = json.loads(response.read())["data"]["result"]
    if result and int(float(result[0]["value"][1])) == points // STEPS:
        return name
    sensors = points // STEPS
    with tempfile.TemporaryDirectory(prefix="chronoseal-bench-om-") as tmp:
        path = Path(tmp) / "samples.om"
        with path.open("w") as out:
            out.write(f"# TYPE {name} gauge\n")
            for s in range(sensors):
                out.write(
                    "".join(
                        f'{name}{{sensor="s{s:04d}"}} {_value(step, s)} {START_S + STEP_S * step}\n'
                        for step in range(STEPS)
                    )
                )
            out.write("# EOF\n")
        subprocess.run(
            [str(REPO / "scripts" / "prometheus"), "backfill", str(path)],
            capture_output=True, text=True, check=True,
        )  # fmt: skip
    return name


def _prom_window() -> tuple[int, int]:
    return START_S, START_S + STEP_S * (STEPS - 1)


def read_store(kind: str, url: str, name: str, auth_file: str) -> tuple[float, int]:
    """One read of every point; (seconds, points)."""
    start = time.perf_counter()
    rows = 0
    host = urllib.parse.urlsplit(url).netloc
    if kind in ("influx", "prometheus"):
        if kind == "influx":
            source_url = (
                f"influxdb://{host}/chronoseal_bench?measurement={name}&auth=file:{auth_file}"
            )
        else:
            first, last = _prom_window()
            source_url = (
                f"prometheus://{host}?query={name}&step={STEP_S}&start={first}&end={last}"
                "&value=reading"
            )
        source = open_source(source_url)
        ds = store_dataset(kind)
        source.check(ds)
        for batch in source.batches(ds.columns(), batch_rows=BATCH_ROWS):
            rows += batch.num_rows
    elif kind == "influx_client":
        params = urllib.parse.urlencode(
            {
                "db": "chronoseal_bench",
                "q": f'SELECT "reading", "level", "sensor" FROM "{name}"',
                "epoch": "ns",
                "chunked": "true",
                "chunk_size": str(_influxdb.CHUNK_POINTS),
            }
        )
        conn = http.client.HTTPConnection(host, timeout=600)
        conn.request("GET", f"/query?{params}", headers=_authorization(auth_file))
        for line in conn.getresponse():
            for series in json.loads(line)["results"][0].get("series", ()):
                rows += len(series["values"])
        conn.close()
    else:
        first, last = _prom_window()
        conn = http.client.HTTPConnection(host, timeout=600)
        steps = _prometheus.FIRST_STEPS  # the same pages as the source asks for
        t = first
        while t <= last:
            end = min(last, t + (min(steps, _prometheus.MAX_STEPS) - 1) * STEP_S)
            params = urllib.parse.urlencode({"query": name, "start": t, "end": end, "step": STEP_S})
            conn.request("GET", f"/api/v1/query_range?{params}")
            result = json.loads(conn.getresponse().read())["data"]["result"]
            rows += sum(len(series["values"]) for series in result)
            steps = max(2, _prometheus.PAGE_POINTS // max(1, len(result)))
            t = end + STEP_S
        conn.close()
    return time.perf_counter() - start, rows


def store_child(kind: str, url: str, name: str, auth_file: str) -> None:
    seconds, rows = read_store(kind, url, name, auth_file)
    peak = round(_peak_rss_kib() / 1024, 1)
    print(json.dumps({"seconds": seconds, "rows": rows, "peak_rss_mib": peak}))


def run_store_once(kind: str, url: str, name: str, auth_file: str, points: int) -> dict[str, float]:
    command = [sys.executable, __file__, "--store-child", kind, "--url", url, "--name", name]
    command += ["--auth-file", auth_file]
    done = subprocess.run(command, capture_output=True, text=True, check=False, timeout=1800)
    if done.returncode != 0:
        raise SystemExit(f"{kind} read failed:\n{done.stderr}")
    report = json.loads(done.stdout.strip().splitlines()[-1])
    if report["rows"] != points:
        raise SystemExit(f"{kind}: read {report['rows']} points of {points}")
    return {
        "seconds": round(report["seconds"], 3),
        "rows_per_s": round(points / report["seconds"]),
        "peak_rss_mib": report["peak_rss_mib"],
    }


def bench_stores(sizes: list[int], repeats: int) -> dict[str, object]:
    influx_url = _server("influxdb", "CHRONOSEAL_INFLUX_URL")
    auth_file = _influx_auth()
    prom_url = _server("prometheus", "CHRONOSEAL_PROM_URL")
    results: dict[str, dict[str, dict[str, float]]] = {}
    loading: dict[str, float] = {}
    for points in sizes:
        started = time.perf_counter()
        names = {
            "influx": load_influx(influx_url, auth_file, points),
            "prometheus": load_prometheus(prom_url, points),
        }
        loading[str(points)] = round(time.perf_counter() - started, 1)
        runs: dict[str, list[dict[str, float]]] = {kind: [] for kind in STORE_KINDS}
        for _ in range(repeats):
            for kind in STORE_KINDS:
                store = kind.removesuffix("_client")
                url = influx_url if store == "influx" else prom_url
                runs[kind].append(run_store_once(kind, url, names[store], auth_file, points))
        results[str(points)] = {kind: _median(runs[kind]) for kind in STORE_KINDS}
        r = results[str(points)]
        print(
            f"{points:>10,} points "
            + "   ".join(
                f"{k} {r[k]['rows_per_s']:>9,}/s {r[k]['peak_rss_mib']:>6} MiB" for k in STORE_KINDS
            ),
            file=sys.stderr,
        )
    small, large = (results[str(n)] for n in sizes)

    def ratio(table: dict[str, dict[str, float]], store: str) -> float:
        return round(table[store]["rows_per_s"] / table[f"{store}_client"]["rows_per_s"], 3)

    return {
        "sizes": sizes,
        "load_seconds": loading,
        "results": results,
        "ratio_influx": ratio(large, "influx"),
        "ratio_prometheus": ratio(large, "prometheus"),
        "ratio_influx_small": ratio(small, "influx"),
        "ratio_prometheus_small": ratio(small, "prometheus"),
        "influx_peak_rss_growth": round(
            large["influx"]["peak_rss_mib"] / small["influx"]["peak_rss_mib"], 3
        ),
        "prometheus_peak_rss_growth": round(
            large["prometheus"]["peak_rss_mib"] / small["prometheus"]["peak_rss_mib"], 3
        ),
        "target_ratio": 0.8,
    }


def child(kind: str, db: Path, port: int, analysis_measurement: bytes) -> None:
    """Send once; report the streaming time and peak RSS.

    The first line out is this process's gateway measurement, which the receiver pins."""
    print(code_measurement(Component.GATEWAY).hex(), flush=True)
    survey = 0.0
    if kind == "gateway":
        seconds, survey, cpu = send_gateway(db, port, analysis_measurement)
    else:
        seconds, cpu = send_baseline(db, port, tls=kind == "tls")
    peak = round(_peak_rss_kib() / 1024, 1)
    print(
        json.dumps(
            {"seconds": seconds, "survey_seconds": survey, "cpu_seconds": cpu, "peak_rss_mib": peak}
        )
    )


def _peak_rss_kib() -> int:
    """This process image's own high-water mark (VmHWM). ``ru_maxrss`` would not do: Linux
    carries it over from the parent across fork + exec, so every child would report at
    least the parent's peak."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


# ---------------------------------------------------------------- driver


def run_once(kind: str, db: Path, rows: int, analysis: bytes) -> dict[str, float]:
    counter = Counter()
    with socket.create_server(("127.0.0.1", 0)) as listener:
        listener.settimeout(120)  # a sender that dies before connecting must not hang the run
        port = listener.getsockname()[1]
        command = [sys.executable, __file__, "--child", kind, "--db", str(db)]
        command += ["--port", str(port), "--peer-measurement", analysis.hex()]
        with subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        ) as process:
            assert process.stdout is not None
            gateway_measurement = bytes.fromhex(process.stdout.readline().strip() or "00")
            if kind == "gateway":
                thread = threading.Thread(
                    target=receive_gateway, args=(listener, counter, gateway_measurement)
                )
            else:
                thread = threading.Thread(
                    target=receive_baseline, args=(listener, counter, kind == "tls")
                )
            thread.start()
            stdout, stderr = process.communicate()
            thread.join()
        if process.returncode != 0:
            raise SystemExit(f"{kind} sender failed:\n{stderr}")
    if counter.rows != rows:
        raise SystemExit(f"{kind}: received {counter.rows} rows of {rows}")
    report = json.loads(stdout.strip().splitlines()[-1])
    elapsed, peak = report["seconds"], report["peak_rss_mib"]
    return {
        "seconds": round(elapsed, 3),
        "rows_per_s": round(rows / elapsed),
        "mb_per_s": round(counter.bytes / elapsed / 1e6, 2),
        "peak_rss_mib": peak,
        "survey_seconds": round(report["survey_seconds"], 3),
        "sender_cpu_s": round(report["cpu_seconds"], 3),
        "receiver_cpu_s": round(counter.cpu, 3),
        "cpu_s": round(report["cpu_seconds"] + counter.cpu, 3),
        "rows_per_s_with_survey": round(rows / (elapsed + report["survey_seconds"])),
    }


#: The CPU features the path's cost depends on: SHA-256 and AES-GCM speed (sha_ni, aes,
#: vaes, vpclmulqdq, pclmulqdq) and the vector units DuckDB, Arrow and OpenSSL use.
CPU_FLAGS = ("sha_ni", "aes", "vaes", "pclmulqdq", "vpclmulqdq", "avx2", "avx512f", "bmi2", "adx")


def machine() -> dict[str, object]:
    """What the figures depend on besides the code: CPU model and features (Linux's
    /proc/cpuinfo), cores, load, the Python build and the libraries' versions. An
    ``OPENSSL_ia32cap`` in the environment (which masks CPU features from OpenSSL, e.g. to
    measure a CPU without SHA extensions) is reported too."""
    model, flags = "unknown", set[str]()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name" and model == "unknown":
                model = value.strip()
            elif key.strip() in ("flags", "Features") and not flags:
                flags = set(value.split())
    except OSError:
        pass
    try:
        load = Path("/proc/loadavg").read_text().split()[:3]
    except OSError:
        load = []
    return {
        "cpu": model,
        "cpu_flags": {flag: flag in flags for flag in CPU_FLAGS},
        "cpus": os.cpu_count(),
        "loadavg": [float(x) for x in load],
        "python": sys.version.split()[0] + " " + " ".join(sys.version.split()[1:]),
        "openssl": ssl.OPENSSL_VERSION,
        "duckdb": duckdb.__version__,
        "pyarrow": pa.__version__,
        "openssl_ia32cap": os.environ.get("OPENSSL_ia32cap"),
    }


def _median(runs: list[dict[str, float]]) -> dict[str, float]:
    """Per figure, the median over the repeats."""
    return {key: statistics.median(run[key] for run in runs) for key in runs[0]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small tables, about a minute")
    parser.add_argument("--child", choices=KINDS, help=argparse.SUPPRESS)
    parser.add_argument("--db", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--peer-measurement", help=argparse.SUPPRESS)
    parser.add_argument(
        "--no-stores", action="store_true", help="skip the InfluxDB and Prometheus reads"
    )
    parser.add_argument("--store-child", choices=STORE_KINDS, help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--name", help=argparse.SUPPRESS)
    parser.add_argument("--auth-file", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.store_child:
        store_child(args.store_child, args.url, args.name, args.auth_file)
        return
    if args.child:
        child(args.child, args.db, args.port, bytes.fromhex(args.peer_measurement))
        return
    before = machine()
    print(f"machine: {json.dumps(before)}", file=sys.stderr)
    analysis = code_measurement(Component.ANALYSIS)  # what every sender pins
    sizes = [1_000_000, 4_000_000] if args.quick else [2_500_000, 10_000_000]
    repeats = 3 if args.quick else 5
    results: dict[str, dict[str, dict[str, float]]] = {}
    with tempfile.TemporaryDirectory(prefix="chronoseal-bench-") as tmp:
        for rows in sizes:
            db = Path(tmp) / f"t{rows}.duckdb"
            make_table(db, rows)
            runs: dict[str, list[dict[str, float]]] = {kind: [] for kind in KINDS}
            for _ in range(repeats):
                for kind in KINDS:
                    runs[kind].append(run_once(kind, db, rows, analysis))
            results[str(rows)] = {kind: _median(runs[kind]) for kind in KINDS}
            r = results[str(rows)]
            print(
                f"{rows:>10,} rows  "
                + "   ".join(
                    f"{k} {r[k]['rows_per_s']:>10,} rows/s {r[k]['peak_rss_mib']:>6} MiB"
                    for k in KINDS
                ),
                file=sys.stderr,
            )
    small, large = (results[str(n)] for n in sizes)

    def ratio(table: dict[str, dict[str, float]], baseline: str) -> float:
        return round(table["gateway"]["rows_per_s"] / table[baseline]["rows_per_s"], 3)

    summary = {
        "bench": "gateway",
        "quick": args.quick,
        "batch_rows": BATCH_ROWS,
        "sizes": sizes,
        "repeats": repeats,
        "results": results,
        "ratio": ratio(large, "tls"),
        "ratio_with_survey": round(
            large["gateway"]["rows_per_s_with_survey"] / large["tls"]["rows_per_s"], 3
        ),
        "ratio_small": ratio(small, "tls"),
        "ratio_vs_raw": ratio(large, "raw"),
        # CPU seconds of both ends, TLS baseline over gateway: the work each path costs,
        # steady when other jobs take the cores (wall-time ratios are not)
        "cpu_ratio": round(large["tls"]["cpu_s"] / large["gateway"]["cpu_s"], 3),
        "gateway_peak_rss_growth": round(
            large["gateway"]["peak_rss_mib"] / small["gateway"]["peak_rss_mib"], 3
        ),
        "target_ratio": 0.6,
        "target_ratio_vs_raw": 0.35,
        "machine": {**before, "loadavg_after": machine()["loadavg"]},
    }
    if not args.no_stores:
        summary["stores"] = bench_stores([1_000_000, 4_000_000], repeats)
        stores = summary["stores"]
        assert isinstance(stores, dict)
        summary["ratio_influx"] = stores["ratio_influx"]
        summary["ratio_prometheus"] = stores["ratio_prometheus"]
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
