"""The back-test on attested Dask worker processes over ratls://: a worker with an
unapproved measurement is refused before it receives anything, the distributed run
releases the same metrics as the single-process run, and a worker killed with SIGKILL
mid-back-test has its jobs re-run elsewhere and is replaced by a newly appraised worker, or
the run stops with an id, never hangs; a worker the runtime did not appraise never joins."""

from __future__ import annotations

import base64
import contextlib
import gc
import hashlib
import json
import logging
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator

import pytest
import rfc8785
from panels import synthetic_panel

from chronoseal.analysis import DaskCompute, _pool, analyse, build_releases
from chronoseal.attest import (
    AppraisalPolicy,
    Appraiser,
    PinnedMeasurements,
    SimulatedAttester,
    code_measurement,
)
from chronoseal.channel import RaTlsIdentity, certificate_appraiser
from chronoseal.errors import AnalysisError
from chronoseal.spec import Component

# Dask's scheduler binds (and leaves to the collector) an HTTP probe socket in its __init__.
# Worker processes boot Dask and the forecasting stack: slow, so outside the fast run.
pytestmark = [
    pytest.mark.integration,
    pytest.mark.filterwarnings("ignore::ResourceWarning"),
    pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning"),
]


@pytest.fixture(autouse=True)
def _collect_dask_sockets() -> Iterator[None]:
    """Dask's leftover sockets are collected here, inside this module's warning filters,
    not in whichever later test the collector happens to run."""
    yield
    gc.collect()


NONCE = os.urandom(32)
WORKER_CODE = code_measurement(Component.ANALYSIS_WORKER)
UNAPPROVED = bytes([0x66]) * 32


def _appraise() -> object:
    approved = PinnedMeasurements([(Component.ANALYSIS_WORKER, "simulated", WORKER_CODE)])
    policy = AppraisalPolicy(
        measurements=approved,
        pinned={Component.ANALYSIS_WORKER: WORKER_CODE},
        allow_simulated=True,
    )
    return certificate_appraiser(Appraiser(policy), Component.ANALYSIS_WORKER, {NONCE})


def _started(compute: DaskCompute) -> DaskCompute:
    identity = RaTlsIdentity.generate(SimulatedAttester(Component.ANALYSIS), NONCE)
    compute.start(identity, _appraise(), NONCE)  # type: ignore[arg-type]
    return compute


@pytest.fixture(scope="module")
def two() -> Iterator[DaskCompute]:
    with DaskCompute(2) as compute:
        yield _started(compute)
    gc.collect()  # its sockets, while this module's filters still apply


def _metrics_digest(spec: object, result: object) -> str:
    """The released documents without their cost section (seconds and worker counts
    differ between runs by nature) and their per-release random nonce: what the parties
    learn about the model."""
    releases = build_releases(spec, result, task_id=b"\x01" * 32, model_commitment=b"\x02" * 32)  # type: ignore[arg-type]
    docs = {}
    for party, doc in releases.documents.items():
        docs[party] = {k: v for k, v in doc.items() if k not in {"cost", "nonce"}}
    return hashlib.sha256(rfc8785.dumps(json.loads(json.dumps(docs, default=str)))).hexdigest()


def test_an_unapproved_worker_is_refused_before_it_receives_anything() -> None:
    with DaskCompute(2, measurements=[None, UNAPPROVED]) as compute:
        _started(compute)
        good, bad = compute.records
        assert bad.refused == "attest.measurement.not_approved"
        assert good.refused is None and good.measurement == WORKER_CODE
        # it never learnt the scheduler: it exited on the refusal, and never joined
        assert compute._procs[bad.name].returncode == 3
        workers = compute.client.scheduler_info(n_workers=-1)["workers"].values()
        assert [w["name"] for w in workers] == [good.name]
        assert compute.to_json()[1] == {
            "name": bad.name,
            "appraisal": "refused",
            "refused": bad.refused,
        }


def test_every_worker_refused_stops_the_start_with_an_id() -> None:
    with DaskCompute(1, measurements=[UNAPPROVED]) as compute:
        with pytest.raises(AnalysisError) as refused:
            _started(compute)
        assert refused.value.id == "analysis.worker.none_admitted"


def test_the_distributed_run_releases_the_single_process_metrics(two: DaskCompute) -> None:
    spec, panel = synthetic_panel(providers=2, windows=2)
    alone = analyse(spec, panel, workers=1)
    spread = analyse(spec, panel, executor=two.pool)
    assert spread.joint.metrics == alone.joint.metrics
    assert _metrics_digest(spec, spread) == _metrics_digest(spec, alone)
    assert spread.cost is not None and spread.cost.workers == 2
    ran = {r.name: sum(r.fits.values()) for r in two.admitted}
    assert sum(ran.values()) == spread.fits - 1  # the released model's final fit: the runtime
    doc = two.to_json()[0]
    assert doc["evidence_hash"].startswith("0x") and doc["measurement"] == "0x" + WORKER_CODE.hex()


def test_many_series_on_two_workers_release_the_single_process_metrics(two: DaskCompute) -> None:
    # more series than the Chicago demo's one, and three providers: coalitions and
    # per-series baselines spread over both workers
    spec, panel = synthetic_panel(providers=3, series=24, periods=300, windows=2)
    alone = analyse(spec, panel, workers=1)
    before = {r.name: sum(r.fits.values()) for r in two.admitted}
    spread = analyse(spec, panel, executor=two.pool)
    assert _metrics_digest(spec, spread) == _metrics_digest(spec, alone)
    ran = {r.name: sum(r.fits.values()) - before[r.name] for r in two.admitted}
    assert all(n > 0 for n in ran.values()), ran
    assert sum(ran.values()) == spread.fits - 1


def test_local_models_cut_by_series_on_two_workers_release_the_single_process_metrics(
    two: DaskCompute, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec, panel = synthetic_panel(providers=2, series=8, periods=300, windows=2)
    alone = analyse(spec, panel, workers=1)
    monkeypatch.setattr(_pool, "MIN_SERIES_PER_SHARD", 2)  # 8 series: 4 shards on 2 workers
    before = {r.name: (sum(r.fits.values()), sum(r.shards.values())) for r in two.admitted}
    spread = analyse(spec, panel, executor=two.pool)
    assert _metrics_digest(spec, spread) == _metrics_digest(spec, alone)
    fits = sum(sum(r.fits.values()) - before[r.name][0] for r in two.admitted)
    shards = sum(sum(r.shards.values()) - before[r.name][1] for r in two.admitted)
    assert fits == spread.fits - 1  # a (candidate, window) counts once, however it was cut
    assert shards == 4 * 2 * 2  # the two local baselines, 2 windows, 4 shards each
    assert "shards" in two.to_json()[0]


def _panels_held(compute: DaskCompute) -> list[list[str]]:
    def held(dask_worker: object) -> list[str]:
        return sorted(n for n in dask_worker.plugins if n.startswith("chronoseal-panel-"))  # type: ignore[attr-defined]

    return list(compute.client.run(held).values())


def test_each_worker_gets_the_panel_once_and_a_second_analysis_of_it_sends_nothing(
    two: DaskCompute,
) -> None:
    spec, panel = synthetic_panel(providers=2, series=3, periods=300, windows=2)
    alone = analyse(spec, panel, workers=1)
    first = analyse(spec, panel, executor=two.pool)
    name = two.panel
    assert name is not None and _panels_held(two) == [[name], [name]]
    again = analyse(spec, panel, executor=two.pool)
    assert two.panel == name and _panels_held(two) == [[name], [name]]
    assert first.cost is not None and again.cost is not None
    for result in (first, again):  # the trials ran on the workers: the same choice
        assert result.recipe.differences == alone.recipe.differences
        assert _metrics_digest(spec, result) == _metrics_digest(spec, alone)
    other_spec, other = synthetic_panel(providers=2, series=3, periods=300, windows=2, seed=1)
    analyse(other_spec, other, executor=two.pool)
    assert two.panel != name and _panels_held(two) == [[two.panel], [two.panel]]


def _settle(compute: DaskCompute) -> None:
    """Until every replacement started is admitted or refused (the run does not wait)."""
    deadline = time.monotonic() + 120
    while compute.pending:
        assert time.monotonic() < deadline, "a replacement never presented its certificate"
        compute.tend()
        time.sleep(0.05)


def test_a_worker_killed_mid_backtest_is_replaced_by_an_appraised_one() -> None:
    spec, panel = synthetic_panel(providers=2, windows=3)
    alone = analyse(spec, panel, workers=1)
    with DaskCompute(2) as compute:
        _started(compute)
        killed = threading.Event()

        def kill_once(step: str, done: int, total: int) -> None:
            if done >= 2 and not killed.is_set():
                killed.set()
                compute.kill("worker-1")

        spread = analyse(spec, panel, kill_once, executor=compute.pool)
        assert killed.is_set() and compute.records[1].lost
        _settle(compute)
        dead, new = compute.records[1], compute.records[2]
        assert new.replaces == dead.name and new.refused is None
        assert new.measurement == WORKER_CODE and new.pid != dead.pid
        assert compute.alive() == 2 and compute.replacements_left == 1
        doc = compute.to_json()[2]
        assert doc["replaces"] == "worker-1" and doc["appraisal"] == "accepted"
        assert doc["evidence_hash"].startswith("0x") and doc["certificate_fingerprint"]
        # the replacement received the panel from the scheduler and takes jobs
        before = sum(new.fits.values())
        again = analyse(spec, panel, executor=compute.pool)
        assert sum(new.fits.values()) > before
    assert _metrics_digest(spec, spread) == _metrics_digest(spec, alone)
    assert _metrics_digest(spec, again) == _metrics_digest(spec, alone)


def test_every_worker_killed_aborts_with_an_id_not_a_hang() -> None:
    spec, panel = synthetic_panel(providers=1, windows=2)
    with DaskCompute(1, replacements=0) as compute:  # nothing left to replace it with
        _started(compute)
        compute.kill("worker-0")
        compute._procs["worker-0"].wait(10)
        with pytest.raises(AnalysisError) as stopped:
            analyse(spec, panel, executor=compute.pool)
        assert len(compute.records) == 1
    assert stopped.value.id in {"analysis.worker.none_left", "analysis.worker.died"}


def test_a_worker_the_runtime_did_not_appraise_never_joins_nor_gets_work(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A real worker process with a valid simulated certificate that learnt the scheduler's
    address (and certificate) some other way than admission."""
    spec, panel = synthetic_panel(providers=2, windows=2)
    alone = analyse(spec, panel, workers=1)
    with DaskCompute(1) as compute:
        _started(compute)
        assert compute._trust is not None
        late = subprocess.Popen(
            [sys.executable, "-m", "chronoseal.analysis._worker"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        try:
            assert late.stdin is not None and late.stdout is not None
            hello = {"freshness": NONCE.hex(), "tee": "simulated", "validity": 3600}
            late.stdin.write(json.dumps(hello).encode() + b"\n")
            late.stdin.flush()
            certificate = base64.b64decode(json.loads(late.stdout.readline())["certificate"])
            assert _appraise()(certificate)  # type: ignore[operator]  # it would pass appraisal
            scheduler = compute._trust.identity.certificate_der
            reply = {
                "scheduler": compute.scheduler_address,
                "scheduler_certificate": base64.b64encode(scheduler).decode(),
                "name": "intruder",
            }
            with caplog.at_level(logging.WARNING, logger="chronoseal.channel"):
                late.stdin.write(json.dumps(reply).encode() + b"\n")
                late.stdin.flush()
                deadline = time.monotonic() + 120
                while "refused Dask peer" not in caplog.text:
                    assert late.poll() is None and time.monotonic() < deadline
                    time.sleep(0.1)
                spread = analyse(spec, panel, executor=compute.pool)
            workers = compute.client.scheduler_info(n_workers=-1)["workers"].values()
            assert [w["name"] for w in workers] == ["worker-0"]
            assert [r.name for r in compute.records] == ["worker-0"]
            assert sum(compute.records[0].fits.values()) == spread.fits - 1
        finally:
            late.kill()
            late.wait(10)
            for pipe in (late.stdin, late.stdout):
                if pipe is not None:
                    pipe.close()
    assert _metrics_digest(spec, spread) == _metrics_digest(spec, alone)


LOOPBACK_WORKER = ("--listen", "127.0.0.1:0", "--dask-port", "0")


@contextlib.contextmanager
def _worker_at() -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """``chronoseal analysis worker`` on a free loopback port, as a worker pod runs it."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "chronoseal", "analysis", "worker", *LOOPBACK_WORKER],
        stdout=subprocess.PIPE,
    )
    try:
        assert proc.stdout is not None
        yield json.loads(proc.stdout.readline())["listening"], proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(10)
        assert proc.stdout is not None
        proc.stdout.close()


def test_a_worker_in_its_own_tee_joins_over_its_admission_port_and_leaves_with_the_runtime() -> (
    None
):
    spec, panel = synthetic_panel(providers=2, series=4, windows=2)
    alone = analyse(spec, panel, workers=1)
    with _worker_at() as (address, proc):
        with DaskCompute(0, remote=[address]) as compute:
            _started(compute)
            (record,) = compute.admitted
            assert record.pid == address and record.measurement == WORKER_CODE
            spread = analyse(spec, panel, executor=compute.pool)
            assert sum(record.fits.values()) == spread.fits - 1
        # the runtime closed the admission connection: the worker stops on its own
        assert proc.wait(30) == 0
    assert _metrics_digest(spec, spread) == _metrics_digest(spec, alone)


def test_a_remote_worker_of_an_unapproved_build_is_refused_and_gets_nothing() -> None:
    with _worker_at() as (address, proc):
        with DaskCompute(1, remote=[address], measurements=[None, UNAPPROVED]) as compute:
            _started(compute)
            assert [r.refused for r in compute.records] == [
                None,
                "attest.measurement.not_approved",
            ]
            assert proc.wait(30) == 3  # told it was refused, it exits: no scheduler learnt
            workers = compute.client.scheduler_info(n_workers=-1)["workers"].values()
            assert [w["name"] for w in workers] == ["worker-0"]


def test_an_unreachable_remote_worker_is_refused_with_an_id() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # bound, not listening: the connection is refused
        with pytest.raises(AnalysisError) as info:
            with DaskCompute(0, remote=[f"127.0.0.1:{port}"], start_timeout=5) as compute:
                _started(compute)
    assert info.value.id == "analysis.worker.unreachable"
    with pytest.raises(AnalysisError) as bad:
        DaskCompute(0, remote=["no-port"])
    assert bad.value.id == "analysis.worker.bad_address"
