"""The back-test's window jobs on attested Dask workers, behind :class:`WindowPool`'s interface.

:class:`DaskCompute` is the scheduler side, in the analysis runtime: a Dask scheduler and
client on ``ratls://`` with the runtime's own RA-TLS identity, and the worker processes it
starts (:mod:`._worker`), each with its own identity and the ``analysis_worker``
measurement. A worker's certificate is appraised against the chain (the runtime's appraisal,
passed in as ``appraise``) before the worker learns the scheduler's address; a refused
worker receives nothing and is stopped. The runtime keeps the task key, the gateways and
the chain: workers receive only the joined panel (once, as a worker plugin, over RA-TLS)
and the window jobs, and send back window frames. A shard of a local model's window is a
job like any other: it carries its series ids, never the panel again.

A worker in another TEE (a pod of its own: ``chronoseal analysis worker --listen``) is
reached the same way over its admission connection instead of a pipe (``remote=``): the
same three lines, then the connection stays open while the worker runs, so its end is the
worker's exit. Nothing on it is secret (a nonce, certificates, an address); a party in the
middle can at most keep a worker from joining, never join one in its place (the
certificate's evidence binds the worker's own key to the fresh nonce).

A window job depends on nothing but the panel every worker holds, so Dask re-runs the jobs
of a worker that dies on another one (up to ``distributed.scheduler.allowed-failures``
deaths of a job, then :class:`AnalysisError` ``analysis.worker.died``); when no admitted
worker is left the run stops with ``analysis.worker.none_left`` rather than wait.

A local worker that dies is replaced (:meth:`DaskCompute.tend`, from the run's loop): a new
process of the same build, attested and appraised through the same admission before it
learns the scheduler's address, up to ``replacements`` of them (default: one per local
worker). It joins, receives the panel plugin from the scheduler and takes jobs like the
others. A remote worker is someone else's process: it is never respawned. A process that
reaches the scheduler without this admission has no admitted certificate, so the RA-TLS
listener refuses its connection (``channel.dask.not_admitted``): it never gets work.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import os
import select
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import IO, Any

import pandas as pd
import pyarrow as pa
from distributed.diagnostics.plugin import WorkerPlugin

from chronoseal.channel import AttestedPeer, RaTlsIdentity, RaTlsTrust
from chronoseal.errors import AnalysisError, ChronosealError, PeerRefused
from chronoseal.model import Grid

from ._pool import Frames, JobDone, Then, WindowJob, WindowPool, _from_end, run_window

log = logging.getLogger("chronoseal.analysis")

Appraise = Callable[[bytes], AttestedPeer]
"""Appraises a worker's RA-TLS certificate (raises :class:`PeerRefused`)."""

#: A worker's and the scheduler's identity live as long as the cluster: Dask opens new
#: connections for as long as the back-test runs, and TLS checks both certificates' dates.
CLUSTER_VALIDITY = timedelta(hours=12)
#: How long the run waits with no admitted worker alive before it stops.
NO_WORKER_GRACE = 10.0
#: How often the run looks for finished jobs (and live workers) while jobs are out.
POLL = 0.02


@dataclass
class WorkerRecord:
    """One worker the runtime started: its attestation, or why it was refused, and the
    fits it ran per group of jobs."""

    name: str
    #: The worker process's id on this host, or where a remote worker was reached.
    pid: int | str
    fingerprint: bytes = b""
    evidence_hash: bytes = b""
    measurement: bytes | None = None
    tee: str = ""
    refused: str | None = None
    #: (candidate, window) fits per group: a job cut by series counts once, for the worker
    #: that ran its first shard, so the workers' fits add up to the analysis cost's.
    fits: dict[str, int] = field(default_factory=dict)
    #: Shards of local models' windows it ran per group (jobs cut by series only).
    shards: dict[str, int] = field(default_factory=dict)
    lost: bool = False
    #: Its attestation is on chain for the task (posted by the runtime it serves).
    posted: bool = False
    #: The dead worker this one was started to replace.
    replaces: str | None = None

    def to_json(self) -> dict[str, Any]:
        doc: dict[str, Any] = {"name": self.name}
        if self.replaces is not None:
            doc["replaces"] = self.replaces
        if self.refused is not None:
            doc.update(appraisal="refused", refused=self.refused)
            return doc
        doc.update(
            tee=self.tee,
            measurement=None if self.measurement is None else "0x" + self.measurement.hex(),
            evidence_hash="0x" + self.evidence_hash.hex(),
            certificate_fingerprint="0x" + self.fingerprint.hex(),
            appraisal="accepted",
            on_chain=self.posted,
            fits=dict(sorted(self.fits.items())),
            shards=dict(sorted(self.shards.items())),
            lost=self.lost,
        )
        return doc


class _Panel(WorkerPlugin):
    """The joined panel on a worker: a Dask worker plugin, sent once to every worker (and
    to a worker that joins later) by the scheduler."""

    def __init__(self, frame: pd.DataFrame, freq: str, threads: int) -> None:
        self.frame = frame
        self.freq = freq
        self.threads = threads
        self.from_end: pd.Series | None = None
        self.grid: Grid | None = None

    def setup(self, worker: Any) -> None:
        self.from_end = _from_end(self.frame)
        self.grid = Grid.parse(self.freq)

    def teardown(self, worker: Any) -> None:
        self.frame = pd.DataFrame()


def _run_on_worker(job: WindowJob, plugin: str) -> tuple[pd.DataFrame, float, float, str]:
    from distributed import get_worker

    worker = get_worker()
    panel = worker.plugins[plugin]
    assert isinstance(panel, _Panel) and panel.from_end is not None and panel.grid is not None
    start, cpu = time.perf_counter(), time.process_time()
    cv = run_window(panel.frame, panel.from_end, panel.grid, job, panel.threads)
    return cv, time.perf_counter() - start, time.process_time() - cpu, str(worker.name)


class RemoteWorker:
    """A worker started elsewhere (``chronoseal analysis worker --listen``), behind the part
    of ``subprocess.Popen`` :class:`DaskCompute` uses: its admission connection's two
    directions are ``stdin``/``stdout``, and the connection's end is its exit."""

    def __init__(self, address: tuple[str, int], timeout: float) -> None:
        try:
            self._sock = socket.create_connection(address, timeout=timeout)
        except OSError as exc:
            raise AnalysisError(
                f"the analysis worker at {address[0]}:{address[1]} could not be reached: {exc}",
                id="analysis.worker.unreachable",
            ) from None
        self._sock.settimeout(None)
        self.pid = f"{address[0]}:{address[1]}"
        self.stdout: IO[bytes] = self._sock.makefile("rb")
        self.stdin: IO[bytes] = self._sock.makefile("wb")
        self.returncode: int | None = None

    def poll(self) -> int | None:
        if self.returncode is None:
            try:
                ready, _, _ = select.select([self._sock], [], [], 0)
                if ready and not self._sock.recv(1, socket.MSG_PEEK):
                    self.returncode = -1  # the worker closed its end: it is gone
            except OSError:
                self.returncode = -1
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        deadline = time.monotonic() + (timeout if timeout is not None else 1e9)
        while self.poll() is None:
            if time.monotonic() > deadline:
                raise subprocess.TimeoutExpired(self.pid, timeout or 0.0)
            time.sleep(0.02)
        assert self.returncode is not None
        return self.returncode

    def terminate(self) -> None:
        """Close the admission connection: the worker stops when it sees the end."""
        if self.returncode is None:
            self.returncode = -15
        for f in (self.stdin, self.stdout):
            try:
                f.close()
            except OSError:
                pass
        self._sock.close()

    kill = terminate


def parse_worker_address(text: str) -> tuple[str, int]:
    """``HOST:PORT`` of a remote worker's admission listener."""
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise AnalysisError(
            f"{text!r} is not HOST:PORT of an analysis worker's admission listener",
            id="analysis.worker.bad_address",
        )
    return host.strip("[]"), int(port)


class DaskCompute:
    """The runtime's attested Dask cluster: scheduler and client here, ``workers`` worker
    processes on this host (``chronoseal run --workers N``), and the ``remote`` workers
    (``HOST:PORT`` of each one's admission listener, ``analysis serve --worker-at``).

    The scheduler listens on ``listen`` (``HOST:PORT``; loopback when every worker is
    local) and is announced to the workers as ``contact`` (``HOST``, e.g. the runtime's
    Service name; default: the host it listens on). ``measurements`` stands simulated
    workers in for other builds, one per worker, local ones first (tests: an unapproved
    build must be refused)."""

    def __init__(
        self,
        workers: int,
        *,
        remote: Sequence[str] = (),
        listen: str | None = None,
        contact: str | None = None,
        tee: str = "simulated",
        measurements: Sequence[bytes | None] | None = None,
        start_timeout: float = 90.0,
        replacements: int | None = None,
    ) -> None:
        self.remote = [parse_worker_address(a) for a in remote]
        if workers < 0 or workers + len(self.remote) < 1:
            raise AnalysisError(
                "a Dask cluster needs at least one worker", id="analysis.worker.none"
            )
        self.size = workers
        default = "0.0.0.0:0" if self.remote else "127.0.0.1:0"
        self._listen = parse_worker_address(listen) if listen else (default.split(":")[0], 0)
        self._contact = contact
        self.tee = tee
        self._measurements = list(measurements or [None] * (workers + len(self.remote)))
        self._timeout = start_timeout
        self.records: list[WorkerRecord] = []
        self._procs: dict[str, subprocess.Popen[bytes] | RemoteWorker] = {}
        self._trust: RaTlsTrust | None = None
        self._cluster: Any = None
        self._chain_address: str | None = None
        self.client: Any = None
        #: The worker plugin holding the panel the workers have now (keyed by its digest).
        self.panel: str | None = None
        #: How many dead local workers may still be replaced.
        self.replacements_left = workers if replacements is None else replacements
        #: Called with a replacement's record once it is appraised, before it learns the
        #: scheduler (the runtime posts its attestation on chain there).
        self.on_admitted: Callable[[WorkerRecord], None] | None = None
        self._local: dict[str, bytes | None] = {}
        self._pending: dict[str, float] = {}
        #: Replacements admitted but not yet registered with the scheduler: their deadline.
        self._joining: dict[str, float] = {}
        self._replaced: set[str] = set()
        self._appraise: Appraise | None = None
        self._freshness = b""

    @property
    def admitted(self) -> list[WorkerRecord]:
        return [r for r in self.records if r.refused is None and r.name not in self._pending]

    @property
    def pending(self) -> int:
        """Replacements started whose certificate is not appraised yet."""
        return len(self._pending)

    def record(self, name: str) -> WorkerRecord:
        return next(r for r in self.records if r.name == name)

    @property
    def scheduler_address(self) -> str:
        """Where the workers reach the scheduler (its contact host, if one was given)."""
        address = str(self._cluster.scheduler_address)
        if self._contact is None:
            return address
        return f"ratls://{self._contact}:{address.rsplit(':', 1)[1]}"

    def start(
        self,
        identity: RaTlsIdentity,
        appraise: Appraise,
        freshness: bytes,
        *,
        chain_address: str | None = None,
    ) -> None:
        """Serve the scheduler with ``identity``, start the workers, admit each one whose
        certificate ``appraise`` accepts, and wait until every admitted one joined.

        ``chain_address`` is the runtime's chain key: each worker's evidence binds it (the
        runtime posts the worker's attestation on chain), and a worker whose evidence binds
        another is refused."""
        from distributed import Client, LocalCluster

        self._chain_address = chain_address
        self._appraise = appraise
        self._freshness = freshness

        self._trust = trust = RaTlsTrust(identity)
        self._cluster = LocalCluster(
            n_workers=0,
            processes=False,
            protocol="ratls://",
            host=self._listen[0],
            scheduler_port=self._listen[1],
            security=trust.security(),
            dashboard_address="127.0.0.1:0",  # any free port: never 8787 taken by another
            scheduler_kwargs={"dashboard": False},
        )
        self.client = Client(self._cluster, security=trust.security())
        for i in range(self.size):
            self._spawn(f"worker-{i}", self._measurements[i], freshness)
        for j, address in enumerate(self.remote, start=self.size):
            self._reach(f"worker-{j}", address, self._measurements[j], freshness)
        for record in self.records:
            self._admit(record, appraise, trust)
        if not self.admitted:
            raise AnalysisError(
                "no analysis worker was admitted: every worker's attestation was refused ("
                + ", ".join(sorted({r.refused or "" for r in self.records}))
                + "); nothing was sent to any",
                id="analysis.worker.none_admitted",
            )
        self._wait_joined()
        log.info(
            "Dask over ratls:// at %s: %d worker(s) admitted, %d refused",
            self.scheduler_address,
            len(self.admitted),
            len(self.records) - len(self.admitted),
        )

    def _wait_joined(self) -> None:
        """Until every admitted worker registered with the scheduler; a worker process that
        exits first fails the start at once, not at the timeout."""
        deadline = time.monotonic() + self._timeout
        while len(self.client.scheduler_info(n_workers=-1)["workers"]) < len(self.admitted):
            dead = [r.name for r in self.admitted if self._procs[r.name].poll() is not None]
            if dead or time.monotonic() > deadline:
                raise AnalysisError(
                    f"analysis {', '.join(dead) or 'workers'} did not join the Dask scheduler"
                    + ("" if dead else f" within {self._timeout:.0f} s"),
                    id="analysis.worker.start_failed",
                )
            time.sleep(0.05)

    def _spawn(self, name: str, measurement: bytes | None, freshness: bytes) -> None:
        self._local[name] = measurement
        proc = subprocess.Popen(
            [sys.executable, "-m", "chronoseal.analysis._worker"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        self._hello(name, proc, measurement, freshness)

    def _reach(
        self, name: str, address: tuple[str, int], measurement: bytes | None, freshness: bytes
    ) -> None:
        self._hello(name, RemoteWorker(address, self._timeout), measurement, freshness)

    def _hello(
        self,
        name: str,
        proc: subprocess.Popen[bytes] | RemoteWorker,
        measurement: bytes | None,
        freshness: bytes,
    ) -> None:
        self._procs[name] = proc
        hello: dict[str, Any] = {
            "freshness": freshness.hex(),
            "tee": self.tee,
            "validity": CLUSTER_VALIDITY.total_seconds(),
        }
        if self._chain_address is not None:
            hello["chain_address"] = self._chain_address
        if measurement is not None:
            hello["measurement"] = measurement.hex()
        self._send(proc, hello)
        self.records.append(WorkerRecord(name, proc.pid))

    @staticmethod
    def _send(proc: subprocess.Popen[bytes] | RemoteWorker, doc: dict[str, Any]) -> None:
        assert proc.stdin is not None
        proc.stdin.write(json.dumps(doc).encode() + b"\n")
        proc.stdin.flush()

    def _read(self, name: str, out: IO[bytes]) -> dict[str, Any]:
        ready, _, _ = select.select([out], [], [], self._timeout)
        line = out.readline() if ready else b""
        try:
            doc = json.loads(line)
        except ValueError:
            doc = None
        if not isinstance(doc, dict):
            raise AnalysisError(
                f"analysis {name} did not present its certificate within {self._timeout:.0f} s",
                id="analysis.worker.no_certificate",
            )
        return doc

    def tend(self) -> list[WorkerRecord]:
        """Replace each dead admitted local worker (while replacements are left) and admit
        the replacements whose certificate arrived; never blocks. Returns the records of
        the replacements admitted now."""
        if self._appraise is None or self._trust is None:
            return []
        for record in self.admitted:
            if (
                record.name in self._local
                and record.name not in self._replaced
                and self.replacements_left > 0
                and self._procs[record.name].poll() is not None
            ):
                self._replaced.add(record.name)
                self.replacements_left -= 1
                name = f"worker-{len(self.records)}"
                self._spawn(name, self._local[record.name], self._freshness)
                self.records[-1].replaces = record.name
                self._pending[name] = time.monotonic() + self._timeout
                log.warning("analysis %s died: starting %s in its place", record.name, name)
        done: list[WorkerRecord] = []
        for name, deadline in list(self._pending.items()):
            out = self._procs[name].stdout
            assert out is not None
            ready, _, _ = select.select([out], [], [], 0)
            if not ready and time.monotonic() < deadline:
                continue
            del self._pending[name]
            record = self.record(name)
            if not ready:
                record.refused = "analysis.worker.no_certificate"
                log.warning("analysis %s presented no certificate in time", name)
                self._procs[name].kill()
                continue
            try:
                self._admit(record, self._appraise, self._trust, replacement=True)
            except AnalysisError as exc:
                record.refused = exc.id
                log.warning("analysis %s not admitted: [%s] %s", name, exc.id, exc.message)
                self._procs[name].kill()
                continue
            if record.refused is None:
                done.append(record)
                self._joining[name] = time.monotonic() + self._timeout
                log.info("analysis %s admitted in place of %s", name, record.replaces)
        self._check_joined()
        return done

    def _check_joined(self) -> None:
        """A replacement admitted but not registered with the scheduler in time is killed
        and counted lost, so the run's no-worker check sees it gone instead of waiting on
        a process that never takes a job."""
        if not self._joining:
            return
        workers = self.client.scheduler_info(n_workers=-1)["workers"].values()
        joined = {str(w.get("name")) for w in workers}
        for name, deadline in list(self._joining.items()):
            if name in joined:
                del self._joining[name]
            elif time.monotonic() > deadline or self._procs[name].poll() is not None:
                del self._joining[name]
                self._procs[name].kill()
                self.record(name).lost = True
                log.warning(
                    "analysis %s did not join the Dask scheduler within %.0f s: stopped",
                    name,
                    self._timeout,
                )

    def _admit(
        self,
        record: WorkerRecord,
        appraise: Appraise,
        trust: RaTlsTrust,
        *,
        replacement: bool = False,
    ) -> None:
        proc = self._procs[record.name]
        assert proc.stdout is not None
        certificate = base64.b64decode(self._read(record.name, proc.stdout)["certificate"])
        try:
            peer = trust.admit(certificate, self._bound(appraise))
        except PeerRefused as exc:
            refused = str(exc.context.get("attestation_id", exc.id))
            record.refused = refused
            log.warning("analysis %s refused: [%s] %s", record.name, refused, exc.message)
            self._send(proc, {"refused": refused})
            proc.wait(10)
            return
        record.fingerprint = peer.fingerprint
        record.evidence_hash = hashlib.sha256(peer.evidence.to_bytes()).digest()
        record.measurement = peer.appraisal.measurement
        record.tee = str(peer.appraisal.tee)
        assert self._trust is not None
        if replacement and self.on_admitted is not None:
            self.on_admitted(record)
        self._send(
            proc,
            {
                "scheduler": self.scheduler_address,
                "scheduler_certificate": base64.b64encode(
                    self._trust.identity.certificate_der
                ).decode(),
                "name": record.name,
            },
        )

    def _bound(self, appraise: Appraise) -> Appraise:
        """``appraise``, and the evidence must bind this runtime's chain key (if it has one):
        a worker attested for another runtime is not this task's."""

        def check(certificate_der: bytes) -> AttestedPeer:
            peer = appraise(certificate_der)
            want = self._chain_address
            if want is not None and (peer.chain_address or "").lower() != want.lower():
                raise PeerRefused(
                    f"the worker's evidence binds {peer.chain_address or 'no chain key'}, "
                    f"not this analysis runtime's {want}",
                    id="analysis.worker.other_runtime",
                )
            return peer

        return check

    def alive(self) -> int:
        """Admitted workers whose process still runs."""
        return sum(self._procs[r.name].poll() is None for r in self.admitted)

    def kill(self, name: str) -> None:
        """SIGKILL one worker (fault tests, the bench)."""
        self._procs[name].kill()

    def pool(self, frame: pd.DataFrame, grid: Grid, cores: int) -> DaskPool:
        """A :data:`PoolFactory`: ``analyse(..., executor=compute.pool)``."""
        return DaskPool(self, frame, grid, cores=cores)

    def to_json(self) -> list[dict[str, Any]]:
        return [r.to_json() for r in self.records]

    def close(self) -> None:
        """Stop the cluster and every worker process it started: none is left behind."""
        if self.client is not None:
            try:
                self.client.close(timeout=10)
            except (OSError, TimeoutError) as exc:
                log.warning("closing the Dask client: %s", exc)
            self.client = None
        if self._cluster is not None:
            self._cluster.close(timeout=10)
            self._cluster = None
        for proc in self._procs.values():
            if proc.poll() is None:
                proc.terminate()
        for proc in self._procs.values():
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            for pipe in (proc.stdin, proc.stdout):
                if pipe is not None:
                    pipe.close()

    def __enter__(self) -> DaskCompute:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class DaskPool(WindowPool):
    """:class:`WindowPool` whose jobs run on a :class:`DaskCompute`'s attested workers."""

    def __init__(self, compute: DaskCompute, frame: pd.DataFrame, grid: Grid, *, cores: int):
        workers = max(1, len(compute.admitted))
        super().__init__(frame, grid, workers=workers, cores=cores)
        self.compute = compute
        self._plugin: str | None = None

    @property
    def threads_per_job(self) -> int:
        # The local workers share this host's cores; one job at a time on each.
        return max(1, self.cores // max(1, self.compute.alive()))

    def start(self) -> None:
        """Send the panel to every worker, unless they hold it already (the same digest:
        a second analysis of the same panel sends nothing); a panel they held before is
        dropped first."""
        if self._plugin is not None:
            return
        name = f"chronoseal-panel-{self._digest()}"
        compute = self.compute
        try:
            if compute.panel != name:
                if compute.panel is not None:
                    compute.client.unregister_worker_plugin(compute.panel)
                    compute.panel = None
                compute.client.register_plugin(
                    _Panel(self.frame, self.grid.alias, self.threads_per_job), name=name
                )
                compute.panel = name
        except OSError as exc:  # distributed's CommClosedError: a worker died meanwhile
            raise AnalysisError(
                f"the panel could not reach every analysis worker ({exc}); "
                f"{compute.alive()} of {len(compute.admitted)} still run; nothing "
                "is trained or released",
                id="analysis.worker.none_left" if compute.alive() == 0 else "analysis.worker.died",
            ) from exc
        self._plugin = name

    def _digest(self) -> str:
        """SHA-256 of the panel (its Arrow IPC stream: values, columns, types), its grid and
        the LightGBM threads per job: what the workers' copy must match to be reused."""
        table = pa.Table.from_pandas(self.frame, preserve_index=False)
        sink = pa.BufferOutputStream()
        with pa.ipc.new_stream(sink, table.schema) as writer:
            writer.write_table(table)
        h = hashlib.sha256(sink.getvalue())
        h.update(f"|{self.grid.alias}|{self.threads_per_job}".encode())
        return h.hexdigest()

    def run(
        self,
        jobs: Sequence[WindowJob],
        on_done: JobDone | None = None,
        *,
        gate: Sequence[WindowJob] = (),
        then: Then | None = None,
    ) -> Frames:
        """Every job's window frame (:meth:`WindowPool.run`); one job per live worker is
        out at a time, the longest ready first, so both finish together. A job lost with
        its worker is re-run elsewhere by Dask. The first failure stops the rest and is
        raised; nothing partial is returned."""
        from distributed import CancelledError

        self.start()
        client = self.compute.client
        feed = self.feed(jobs, gate, then)
        out: dict[Any, WindowJob] = {}
        starved_since: float | None = None
        try:
            while not feed.finished:
                self.compute.tend()
                slots = max(1, self.compute.alive())
                while len(out) < slots and (job := feed.next()) is not None:
                    future = client.submit(
                        _run_on_worker, job, self._plugin, pure=False, key=self._key(job)
                    )
                    out[future] = job
                finished = [f for f in out if f.done()]
                for future in finished:
                    job = out.pop(future)
                    cv, seconds, cpu, worker = self._result(future)
                    feed.done(job, cv)
                    record = self.compute.record(worker)
                    if job.counts_fit:
                        record.fits[job.group] = record.fits.get(job.group, 0) + 1
                    if job.shards > 1:
                        record.shards[job.group] = record.shards.get(job.group, 0) + 1
                    if on_done is not None:
                        on_done(job, seconds, cpu)
                if finished:
                    continue
                if self.compute.alive() == 0 and not self.compute.pending:
                    starved_since = starved_since or time.monotonic()
                    if time.monotonic() - starved_since > NO_WORKER_GRACE:
                        raise AnalysisError(
                            f"every analysis worker is gone with {len(out)} back-test "
                            "job(s) out; nothing is trained or released",
                            id="analysis.worker.none_left",
                        )
                else:
                    starved_since = None
                time.sleep(POLL)
        except CancelledError as exc:
            raise AnalysisError(
                "the Dask cluster cancelled back-test jobs (it is closing); nothing is trained",
                id="analysis.worker.cancelled",
            ) from exc
        finally:
            for future in out:
                future.cancel()
            for record in self.compute.admitted:
                record.lost = self.compute._procs[record.name].poll() is not None
        return feed.frames()

    @staticmethod
    def _key(job: WindowJob) -> str:
        """Dask's key of a job: its group first (Dask learns durations per key prefix),
        a digest of the candidate's key (which may list thousands of series), the window,
        the shard, and a fresh suffix (a re-run is a new task)."""
        digest = hashlib.sha256(job.key.encode()).hexdigest()[:12]
        return f"{job.group}-{digest}-{job.window}-{job.shard}-{uuid.uuid4().hex[:12]}"

    @staticmethod
    def _result(future: Any) -> tuple[pd.DataFrame, float, float, str]:
        from distributed import KilledWorker

        try:
            result: tuple[pd.DataFrame, float, float, str] = future.result()
        except KilledWorker as exc:
            raise AnalysisError(
                "a back-test job's workers died too often (out of memory, or killed); "
                "nothing is trained or released",
                id="analysis.worker.died",
            ) from exc
        except ChronosealError:
            raise
        return result

    def close(self) -> None:
        """The panel stays on the workers (:meth:`start`) until another replaces it or the
        cluster closes."""
        self._plugin = None
