"""The analysis on attested Dask workers: the 1,000-series case of ``bench/scale.py`` in one
local process vs on 2 worker processes over ``ratls://`` (loopback), and the same 2 workers
on Dask's own plain TLS.

Three runs of ``analyse`` on the same joined panel (1,000 daily meters over 2 years, a weather
party and a noise party, ``mlforecast-lightgbm``; the case ``scale.series_case`` builds):

* **local**: one process, one LightGBM thread (``workers=1, cores=1``), no Dask;
* **ratls**: :class:`~chronoseal.analysis.DaskCompute` with 2 attested (simulated) worker
  processes, each appraised before it joins, every connection mutual RA-TLS 1.3;
* **tls**: the same :class:`~chronoseal.analysis.DaskPool` on a ``LocalCluster`` of 2 worker
  processes over ``tls://`` with a self-signed CA made here: Dask's TLS without attestation.

The distributed part of the analysis is the differencing trials and the back-test windows
(``cost.seconds['differences'] + cost.seconds['back-test']``): that is what the workers
run; the released model's final fit stays in the runtime (one TEE), on one LightGBM thread
in every run (``final_threads=1``) so that the totals compare. ``speedup_2_workers`` =
that part's wall seconds local / ratls; ``ratls_overhead`` = ratls / tls on the same part;
the ``*_total`` figures are the same ratios on the whole ``analyse`` call. The released
metrics of the three runs must be equal (``same_metrics``). An untimed warm-up keeps library
set-up out of the figures; the worker start (attestation, appraisal, joining) is timed apart
(``start_seconds``).

The machine is shared, so each run also says what it got: ``cpu_seconds`` of the runtime's
process (``time.process_time``, every thread: in the local run that is all the work) and
of each worker (the same, read on the worker through ``client.run`` before and after);
``job_cpu_seconds`` the jobs' CPU seconds per group (where they ran: the runtime's process
in the local run, the workers on Dask); from Dask's task stream each worker's
``busy_seconds`` (computing a job) and ``idle_seconds`` (the distributed part's wall seconds
less its busy ones: waiting for a job, the gate, or the runtime). ``speedup_2_workers_cpu``
= the local run's CPU seconds of the distributed part / the longest worker's (CPU seconds +
idle seconds) in the ratls run: the wall speedup had each process had a core of its own
whenever it could run, so it keeps every wait of the plan (idle) and drops only the time the
host gave the cores to others. ``speedup_2_workers`` (wall) stays the headline figure.

    python bench/distributed.py --quick   # 1 back-test window (several minutes on 2 cores)
    python bench/distributed.py           # 4 windows, as scale.py's series ladder

The last line printed is one JSON object with the figures, the ratios and the targets.
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib.util
import ipaddress
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

# This file's name is Dask's package name: its directory (sys.path[0] for a script) must not
# shadow ``distributed``, so it leaves the path (before any import of Dask: hence the late
# imports below) and scale.py is loaded from its file.
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]
_spec = importlib.util.spec_from_file_location("scale", _HERE / "scale.py")
assert _spec is not None and _spec.loader is not None
scale = importlib.util.module_from_spec(_spec)
sys.modules["scale"] = scale
_spec.loader.exec_module(scale)
load_average, series_case = scale.load_average, scale.series_case
stdout_to_stderr, warm_up = scale.stdout_to_stderr, scale.warm_up

from cryptography import x509  # noqa: E402
from cryptography.hazmat.primitives import hashes, serialization  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import ec  # noqa: E402
from cryptography.x509.oid import NameOID  # noqa: E402

from chronoseal.analysis import DaskCompute, WorkerRecord, analyse, join_tables  # noqa: E402
from chronoseal.attest import (  # noqa: E402
    AppraisalPolicy,
    Appraiser,
    PinnedMeasurements,
    SimulatedAttester,
    code_measurement,
)
from chronoseal.channel import RaTlsIdentity, certificate_appraiser  # noqa: E402
from chronoseal.spec import Component  # noqa: E402

SERIES = 1000
WORKERS = 2
TARGETS = {"speedup_2_workers": (">=", 1.5), "ratls_overhead": ("<=", 1.1)}


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


class _Running:
    """A plain-TLS worker as :class:`DaskCompute` sees a worker process: it runs."""

    def poll(self) -> None:
        return None


class PlainTlsCompute(DaskCompute):
    """The baseline: Dask's ``LocalCluster`` of worker processes on ``tls://`` (a CA made
    here, every endpoint one certificate), no attestation, no admission."""

    def __init__(self, workers: int, certs: Path) -> None:
        super().__init__(workers)
        self._certs = certs

    def start_plain(self) -> None:
        from distributed import Client, LocalCluster, Security

        ca, cert, key = (str(self._certs / n) for n in ("ca.pem", "cert.pem", "key.pem"))
        security = Security(
            tls_ca_file=ca,
            tls_client_cert=cert,
            tls_client_key=key,
            tls_scheduler_cert=cert,
            tls_scheduler_key=key,
            tls_worker_cert=cert,
            tls_worker_key=key,
            require_encryption=True,
        )
        self._cluster = LocalCluster(
            n_workers=self.size,
            threads_per_worker=1,
            processes=True,
            protocol="tls://",
            host="127.0.0.1",
            security=security,
            dashboard_address=None,
            scheduler_kwargs={"dashboard": False},
        )
        self.client = Client(self._cluster, security=security)
        self.client.wait_for_workers(self.size, timeout=120)
        names = [w["name"] for w in self.client.scheduler_info(n_workers=-1)["workers"].values()]
        self.records = [WorkerRecord(str(n), 0) for n in names]
        self._procs = {str(n): _Running() for n in names}  # type: ignore[misc]

    def alive(self) -> int:
        return len(self.client.scheduler_info(n_workers=-1)["workers"])

    def close(self) -> None:
        if self.client is not None:
            self.client.close(timeout=10)
            self.client = None
        if self._cluster is not None:
            self._cluster.close(timeout=10)
            self._cluster = None


def make_certificates(directory: Path) -> None:
    """A CA and one certificate for 127.0.0.1 it signed (P-256), as PEM files."""
    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "bench plain-TLS CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    (directory / "ca.pem").write_bytes(ca.public_bytes(pem))
    (directory / "cert.pem").write_bytes(cert.public_bytes(pem))
    (directory / "key.pem").write_bytes(
        key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    os.chmod(directory / "key.pem", 0o600)


def start_attested(compute: DaskCompute) -> None:
    """As the runtime does: its own RA-TLS identity, each worker appraised against the
    approved ``analysis_worker`` measurement (simulated TEE allowed) before it joins."""
    nonce = os.urandom(32)
    code = code_measurement(Component.ANALYSIS_WORKER)
    policy = AppraisalPolicy(
        measurements=PinnedMeasurements([(Component.ANALYSIS_WORKER, "simulated", code)]),
        pinned={Component.ANALYSIS_WORKER: code},
        allow_simulated=True,
    )
    appraise = certificate_appraiser(Appraiser(policy), Component.ANALYSIS_WORKER, {nonce})
    identity = RaTlsIdentity.generate(SimulatedAttester(Component.ANALYSIS), nonce)
    compute.start(identity, appraise, nonce)


PART = ("differences", "back-test")


def timed(name: str, spec: Any, panel: Any, client: Any = None, **kwargs: Any) -> dict[str, Any]:
    """One ``analyse``, its wall and CPU seconds; with a Dask ``client``, each worker's CPU
    seconds and its busy and idle seconds from Dask's task stream."""
    from distributed import get_task_stream

    load = load_average()
    workers_cpu = {} if client is None else client.run(time.process_time)
    stream: Any = None
    began, cpu = time.perf_counter(), time.process_time()
    if client is None:
        result = analyse(spec, panel, **kwargs)
    else:
        with get_task_stream(client) as stream:
            result = analyse(spec, panel, **kwargs)
    seconds, cpu = time.perf_counter() - began, time.process_time() - cpu
    assert result.cost is not None
    phases = result.cost.phases
    part = sum(phases.get(k, 0.0) for k in PART)
    out = {
        "seconds": round(seconds, 2),
        "distributed_part_seconds": round(part, 2),
        "phases": {k: round(v, 2) for k, v in phases.items()},
        "cpu_seconds": {
            "runtime": round(cpu, 2),
            "runtime_distributed_part": round(
                sum(result.cost.phases_cpu.get(k, 0.0) for k in PART), 2
            ),
        },
        "job_cpu_seconds": {k: round(v, 2) for k, v in result.cost.work_cpu.items()},
        "fits": result.fits,
        "workers": result.cost.workers,
        "metrics": result.joint.metrics,
        "load_average_1min": [load, load_average()],
    }
    if client is not None:
        after = client.run(time.process_time)
        names = {
            a: str(w["name"]) for a, w in client.scheduler_info(n_workers=-1)["workers"].items()
        }
        busy = dict.fromkeys(names.values(), 0.0)
        for task in stream.data:
            for span in task["startstops"]:
                if span["action"] == "compute":
                    busy[names.get(task["worker"], task["worker"])] += span["stop"] - span["start"]
        out["cpu_seconds"]["workers"] = {
            names.get(a, a): round(after[a] - workers_cpu[a], 2) for a in after if a in workers_cpu
        }
        out["busy_seconds"] = {w: round(b, 2) for w, b in busy.items()}
        out["idle_seconds"] = {w: round(max(0.0, part - b), 2) for w, b in busy.items()}
    _say(
        f"{name}: {seconds:.1f} s in all, {part:.1f} s differences + back-test, "
        f"{result.fits} fits, CPU {out['cpu_seconds']}, load {out['load_average_1min']}"
    )
    return out


def cpu_speedup(local: dict[str, Any], run: dict[str, Any]) -> float | None:
    """Local CPU seconds of the distributed part / the longest worker's CPU + idle seconds."""
    spans = [
        cpu + run["idle_seconds"].get(w, 0.0) for w, cpu in run["cpu_seconds"]["workers"].items()
    ]
    if not spans or max(spans) <= 0:
        return None
    return round(local["cpu_seconds"]["runtime_distributed_part"] / max(spans), 3)


def _meets(name: str, value: float | None) -> bool | None:
    if value is None:
        return None
    op, bound = TARGETS[name]
    return value >= bound if op == ">=" else value <= bound


def measure(quick: bool, series: int) -> dict[str, Any]:
    windows = 1 if quick else 4
    _say(f"warm-up: {warm_up():.1f} s")
    case = series_case(series, windows)
    panel = join_tables(case.spec, case.tables)
    runs: dict[str, dict[str, Any]] = {}
    runs["local"] = timed("local (1 process)", case.spec, panel, workers=1, cores=1)

    with DaskCompute(WORKERS) as compute:
        began = time.perf_counter()
        start_attested(compute)
        start = time.perf_counter() - began
        runs["ratls"] = timed(
            f"ratls:// ({WORKERS} attested workers)",
            case.spec,
            panel,
            compute.client,
            executor=compute.pool,
            cores=WORKERS,
            final_threads=1,
        )
        runs["ratls"]["start_seconds"] = round(start, 2)
        runs["ratls"]["fits_per_worker"] = {r.name: sum(r.fits.values()) for r in compute.admitted}
        runs["ratls"]["shards_per_worker"] = {
            r.name: sum(r.shards.values()) for r in compute.admitted
        }

    with tempfile.TemporaryDirectory() as tmp:
        make_certificates(Path(tmp))
        with PlainTlsCompute(WORKERS, Path(tmp)) as plain:
            began = time.perf_counter()
            plain.start_plain()
            start = time.perf_counter() - began
            runs["tls"] = timed(
                f"tls:// ({WORKERS} plain-TLS workers)",
                case.spec,
                panel,
                plain.client,
                executor=plain.pool,
                cores=WORKERS,
                final_threads=1,
            )
            runs["tls"]["start_seconds"] = round(start, 2)

    def ratio(a: str, b: str, key: str) -> float:
        return round(runs[a][key] / runs[b][key], 3)

    speedup = ratio("local", "ratls", "distributed_part_seconds")
    overhead = ratio("ratls", "tls", "distributed_part_seconds")
    metrics = [json.dumps(r.pop("metrics"), sort_keys=True) for r in runs.values()]
    return {
        "case": {
            "series": series,
            "providers": len(case.spec.data_providers()),
            "windows": windows,
            "workers": WORKERS,
            "cpu_count": os.cpu_count(),
        },
        "runs": runs,
        "same_metrics": len(set(metrics)) == 1,
        "speedup_2_workers_total": ratio("local", "ratls", "seconds"),
        "speedup_2_workers_cpu": cpu_speedup(runs["local"], runs["ratls"]),
        "speedup_2_workers_cpu_tls": cpu_speedup(runs["local"], runs["tls"]),
        "ratls_overhead_total": ratio("ratls", "tls", "seconds"),
        "targets": {k: f"{op} {v}" for k, (op, v) in TARGETS.items()},
        "meets": {
            "speedup_2_workers": _meets("speedup_2_workers", speedup),
            "ratls_overhead": _meets("ratls_overhead", overhead),
        },
        "speedup_2_workers": speedup,
        "ratls_overhead": overhead,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1 back-test window")
    parser.add_argument(
        "--series", type=int, default=SERIES, help="meters (default: scale.py's 1,000 case)"
    )
    args = parser.parse_args()
    scale.report(lambda: measure(args.quick, args.series))


if __name__ == "__main__":
    main()
