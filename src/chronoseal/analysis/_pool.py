"""The back-test as independent window jobs, spread over worker processes inside the TEE.

Each (candidate, window) of a rolling-origin back-test is one fit on the history before the
window's cutoff and one forecast of the horizon after it, exactly what the libraries'
``cross_validation`` does per window; no window depends on another. So every window of
every candidate (the joint model, the baselines, each coalition) is one job, planned up
front, and the jobs run on as many processes as the runtime has cores.

A local model (statsforecast: one model per series, fitted on that series alone) is also
cut by series: its window job becomes :func:`shard_count` shards of its sorted series ids,
each fitted apart, their frames concatenated in shard order (:func:`joined`). Every series'
forecast is the one the whole job would have made, so the result is the same frame; a
global model (LightGBM over all series) is never cut. A fit is still one (candidate,
window): the shards are parts of it, counted once (:attr:`WindowJob.counts_fit`).

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
from dataclasses import dataclass, replace
from typing import Any

import pandas as pd

from chronoseal.errors import AnalysisError
from chronoseal.model import DS, ID, Candidate, Grid, cross_validate, is_global

log = logging.getLogger("chronoseal.analysis")

JobDone = Callable[["WindowJob", float, float], None]
"""(job, wall seconds, CPU seconds of the process that ran it)."""
PoolFactory = Callable[[pd.DataFrame, Grid, int], "WindowPool"]
"""(panel frame, grid, cores) → the pool a back-test runs on."""

#: Fewest series in a shard of a local model's window: below it a shard's fixed cost
#: (the window cut, the library's set-up) outweighs what spreading it gains.
MIN_SERIES_PER_SHARD = 50
#: Shards per worker process: more than one, so that the workers finish together even when
#: the jobs beside the shards (a global model's) are long.
SHARDS_PER_WORKER = 2


@dataclass(frozen=True)
class WindowJob:
    """One window of one candidate's back-test: every series cut ``rows_back`` periods
    short, then the ``h`` periods after the new cutoff forecast. ``window`` orders a
    candidate's windows (0 is the earliest). A shard (``shards`` > 1) is part ``shard`` of
    a local model's window: its candidate's ``series`` are that shard's series."""

    key: str
    group: str
    candidate: Candidate
    window: int
    rows_back: int
    shard: int = 0
    shards: int = 1

    @property
    def counts_fit(self) -> bool:
        """Whether this job counts as its (candidate, window)'s fit: one job of each does."""
        return self.shard == 0


def backtest_jobs(
    key: str,
    group: str,
    candidate: Candidate,
    windows: int,
    step: int,
    series: list[str] | None = None,
    shards: int = 1,
) -> list[WindowJob]:
    """The ``windows`` rolling windows of a back-test, ``step`` periods apart, as
    ``cross_validation(n_windows=windows, step_size=step)`` places them; each cut into
    ``shards`` contiguous parts of the sorted ``series`` (the candidate's series) when
    ``shards`` > 1, which only a local model's candidate may be."""
    if shards > 1 and is_global(candidate.recipe.family):
        raise ValueError(f"a global model ({candidate.recipe.family}) is not cut by series")
    parts: list[Candidate] = [candidate]
    if shards > 1:
        assert series is not None
        ids = sorted(series)
        bounds = [len(ids) * i // shards for i in range(shards + 1)]
        parts = [
            replace(candidate, series=tuple(ids[bounds[i] : bounds[i + 1]])) for i in range(shards)
        ]
    return [
        WindowJob(key, group, part, i, step * (windows - 1 - i), shard, len(parts))
        for i in range(windows)
        for shard, part in enumerate(parts)
    ]


def shard_count(candidate: Candidate, series: int, workers: int) -> int:
    """Shards of each window of ``candidate`` on ``workers`` processes, for ``series``
    series: 1 for a global model or one process, else up to :data:`SHARDS_PER_WORKER` per
    worker with at least :data:`MIN_SERIES_PER_SHARD` series in each."""
    if workers <= 1 or is_global(candidate.recipe.family):
        return 1
    return max(1, min(SHARDS_PER_WORKER * workers, series // MIN_SERIES_PER_SHARD))


Parts = dict[tuple[str, int], dict[int, pd.DataFrame]]


def joined(parts: Parts) -> dict[tuple[str, int], pd.DataFrame]:
    """Each (key, window)'s frame: its shards' frames in shard order (one: as it is)."""
    out: dict[tuple[str, int], pd.DataFrame] = {}
    for at, frames in parts.items():
        ordered_frames = [frames[i] for i in sorted(frames)]
        out[at] = (
            ordered_frames[0]
            if len(ordered_frames) == 1
            else pd.concat(ordered_frames, ignore_index=True)
        )
    return out


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
        self._series: list[str] | None = None

    @property
    def series(self) -> list[str]:
        """The panel's series ids, as a candidate that names none learns from."""
        if self._series is None:
            self._series = list(pd.unique(self.frame[ID]))
        return self._series

    def shards(self, candidate: Candidate) -> int:
        """How many shards each window of ``candidate`` is cut into on this pool."""
        series = len(self.series) if candidate.series is None else len(candidate.series)
        return shard_count(candidate, series, self.workers)

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
        parts: Parts = {}
        try:
            while pending:
                done, _ = wait(pending, return_when=FIRST_COMPLETED)
                for future in done:
                    job = pending.pop(future)
                    cv, seconds, cpu = future.result()
                    parts.setdefault((job.key, job.window), {})[job.shard] = cv
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
        return joined(parts)

    def _run_here(
        self, jobs: list[WindowJob], on_done: JobDone | None
    ) -> dict[tuple[str, int], pd.DataFrame]:
        if self._from_end is None:
            self._from_end = _from_end(self.frame)
        parts: Parts = {}
        for job in jobs:
            start, cpu = time.perf_counter(), time.process_time()
            parts.setdefault((job.key, job.window), {})[job.shard] = run_window(
                self.frame, self._from_end, self.grid, job, self.cores
            )
            if on_done is not None:
                on_done(job, time.perf_counter() - start, time.process_time() - cpu)
        return joined(parts)

    def close(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=True, cancel_futures=True)
            self._executor = None

    def __enter__(self) -> WindowPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
