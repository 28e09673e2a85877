"""The back-test as independent window jobs, spread over worker processes inside the TEE.

Each (candidate, window) of a rolling-origin back-test is one fit on the history before the
window's cutoff and one forecast of the horizon after it, exactly what the libraries'
``cross_validation`` does per window; no window depends on another. So every window of
every candidate (the joint model, the baselines, each coalition) is one job, planned up
front, and the jobs run on as many processes as the runtime has cores.

Processes, not threads: statsforecast's models hold the GIL while they fit. Forked from a
fork server, not from the runtime: the runtime holds TLS server threads and OpenMP pools that
a fork would copy half-alive, while the fork server is a fresh single-threaded process that
imported the forecasting stack once (:func:`warm_up`, at the runtime's start), so a worker
starts in milliseconds and no user script's ``__main__`` is re-imported. Each worker receives
the joined panel once, over its own pipe at start (never through shared memory: under
Gramine, ``/dev/shm`` is the untrusted host's), and LightGBM in a worker trains on
``cores // workers`` threads, so the runtime never runs more threads than it has cores.
"""

from __future__ import annotations

import logging
import multiprocessing
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from typing import Any

import pandas as pd

from chronoseal.errors import AnalysisError
from chronoseal.model import DS, ID, Candidate, Grid, cross_validate

log = logging.getLogger("chronoseal.analysis")

JobDone = Callable[["WindowJob", float, float], None]
"""(job, wall seconds, CPU seconds of the process that ran it)."""
PoolFactory = Callable[[pd.DataFrame, Grid, int], "WindowPool"]
"""(panel frame, grid, cores) → the pool a back-test runs on."""


@dataclass(frozen=True)
class WindowJob:
    """One window of one candidate's back-test: every series cut ``rows_back`` periods
    short, then the ``h`` periods after the new cutoff forecast. ``window`` orders a
    candidate's windows (0 is the earliest)."""

    key: str
    group: str
    candidate: Candidate
    window: int
    rows_back: int


def backtest_jobs(
    key: str, group: str, candidate: Candidate, windows: int, step: int
) -> list[WindowJob]:
    """The ``windows`` rolling windows of a back-test, ``step`` periods apart, as
    ``cross_validation(n_windows=windows, step_size=step)`` places them."""
    return [WindowJob(key, group, candidate, i, step * (windows - 1 - i)) for i in range(windows)]


def _from_end(frame: pd.DataFrame) -> pd.Series:
    return frame.groupby(ID, sort=False).cumcount(ascending=False)


def ordered(frame: pd.DataFrame) -> pd.DataFrame:
    """The panel sorted by series and time, as the window cut by position needs."""
    keys = frame[[ID, DS]]
    if keys.equals(keys.sort_values([ID, DS], kind="stable")):
        return frame
    return frame.sort_values([ID, DS], kind="stable").reset_index(drop=True)


def run_window(
    frame: pd.DataFrame,
    from_end: pd.Series,
    grid: Grid,
    job: WindowJob,
    threads: int | None,
) -> pd.DataFrame:
    """The job's window: every series cut ``rows_back`` periods short, then one window of
    ``cross_validation``, which puts its cutoff ``h`` periods before each series' new end."""
    data = frame if job.rows_back == 0 else frame[from_end.to_numpy() >= job.rows_back]
    return cross_validate(data, job.candidate, grid, windows=1, step=1, threads=threads)


_worker: dict[str, Any] = {}
#: What the fork server imports once, so that every worker forked from it starts warm.
_PRELOAD = ["chronoseal.model._lightgbm", "chronoseal.model._statsforecast", __name__]


def _context() -> multiprocessing.context.BaseContext:
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(_PRELOAD)
    return context


def warm_up() -> None:
    """Start the fork server now (it imports the forecasting stack), not at the first
    back-test: a runtime calls this when it starts, while the parties' streams arrive."""
    from multiprocessing import forkserver

    _context()
    forkserver.ensure_running()


def _init_worker(frame: pd.DataFrame, freq: str, threads: int) -> None:
    _worker.update(frame=frame, from_end=_from_end(frame), grid=Grid.parse(freq), threads=threads)


def _run_in_worker(job: WindowJob) -> tuple[pd.DataFrame, float, float]:
    start, cpu = time.perf_counter(), time.process_time()
    cv = run_window(_worker["frame"], _worker["from_end"], _worker["grid"], job, _worker["threads"])
    return cv, time.perf_counter() - start, time.process_time() - cpu


class WindowPool:
    """Runs window jobs on ``workers`` spawned processes (in this process when 1).

    Start it early (:meth:`start`): the workers import the forecasting stack while the
    runtime does its sequential work; :meth:`run` then hands them the jobs.
    """

    def __init__(self, frame: pd.DataFrame, grid: Grid, *, workers: int, cores: int) -> None:
        self.frame = ordered(frame)
        self.grid = grid
        self.workers = max(1, workers)
        self.cores = max(1, cores)
        self._executor: ProcessPoolExecutor | None = None
        self._from_end: pd.Series | None = None

    @property
    def threads_per_job(self) -> int:
        return max(1, self.cores // self.workers)

    def start(self) -> None:
        if self.workers == 1 or self._executor is not None:
            return
        self._executor = ProcessPoolExecutor(
            max_workers=self.workers,
            mp_context=_context(),
            initializer=_init_worker,
            initargs=(self.frame, self.grid.alias, self.threads_per_job),
        )
        # Boot every worker now, not at the first job.
        for _ in range(self.workers):
            self._executor.submit(time.sleep, 0)

    def run(
        self, jobs: list[WindowJob], on_done: JobDone | None = None
    ) -> dict[tuple[str, int], pd.DataFrame]:
        """Every job's window frame by (key, window); the first failure stops the rest and
        is raised."""
        if self.workers == 1 or len(jobs) <= 1:
            return self._run_here(jobs, on_done)
        self.start()
        assert self._executor is not None
        pending: dict[Future[tuple[pd.DataFrame, float, float]], WindowJob] = {
            self._executor.submit(_run_in_worker, job): job for job in jobs
        }
        out: dict[tuple[str, int], pd.DataFrame] = {}
        try:
            while pending:
                done, _ = wait(pending, return_when=FIRST_COMPLETED)
                for future in done:
                    job = pending.pop(future)
                    cv, seconds, cpu = future.result()
                    out[job.key, job.window] = cv
                    if on_done is not None:
                        on_done(job, seconds, cpu)
        except BrokenProcessPool as exc:
            raise AnalysisError(
                "a back-test worker process died (out of memory, or killed); nothing is "
                "trained or released",
                id="analysis.worker.died",
            ) from exc
        finally:
            for future in pending:
                future.cancel()
        return out

    def _run_here(
        self, jobs: list[WindowJob], on_done: JobDone | None
    ) -> dict[tuple[str, int], pd.DataFrame]:
        if self._from_end is None:
            self._from_end = _from_end(self.frame)
        out: dict[tuple[str, int], pd.DataFrame] = {}
        for job in jobs:
            start, cpu = time.perf_counter(), time.process_time()
            out[job.key, job.window] = run_window(
                self.frame, self._from_end, self.grid, job, self.cores
            )
            if on_done is not None:
                on_done(job, time.perf_counter() - start, time.process_time() - cpu)
        return out

    def close(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=True, cancel_futures=True)
            self._executor = None

    def __enter__(self) -> WindowPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
