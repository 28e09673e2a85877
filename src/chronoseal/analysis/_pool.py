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

The plan is fed, not dumped (:class:`Feed`): at most one job per worker is out at a time,
the longest ready job first (:func:`estimated_seconds`), so the workers finish together
rather than one waiting on another's long last job; and a run may have a *gate*: jobs that
go out before all others (the differencing trials), whose frames decide further jobs (the
back-test of the models that use the chosen differences) while the jobs that do not depend
on them (the statistical baselines) keep the workers busy meanwhile.

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

import heapq
import logging
import multiprocessing
import time
from collections.abc import Callable, Sequence
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
Frames = dict[tuple[str, int], pd.DataFrame]
"""Window frames by (job key, window)."""
Then = Callable[[Frames], list["WindowJob"]]
"""The gate's frames → the jobs they decide."""

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

#: Seconds per fitted row on one thread, by family, measured on ``bench/distributed.py``'s
#: case (a global LightGBM fit: 1,000 series x 716 rows in ~10 s; AutoETS: 250 series x 140
#: rows in ~22 s; SeasonalNaive: the same in 0.13 s). They only order the jobs (longest
#: first); no result depends on them. A local family not listed costs as AutoETS.
SECONDS_PER_ROW = {"global": 14e-6, "seasonal-naive": 4e-6, "local": 6.4e-4}
#: A global model's window with conformal intervals fits its calibration windows too.
INTERVALS_FACTOR = 2.0


def estimated_seconds(job: WindowJob, series: int, rows_per_series: float) -> float:
    """What ``job`` should cost on one thread, ``series`` series of ``rows_per_series``
    rows (before its window's cut): the key that orders the plan, longest first."""
    recipe = job.candidate.recipe
    n = series if job.candidate.series is None else len(job.candidate.series)
    rows = max(1.0, rows_per_series - job.rows_back)
    if is_global(recipe.family):
        factor = INTERVALS_FACTOR if job.candidate.intervals else 1.0
        return n * rows * SECONDS_PER_ROW["global"] * factor
    if recipe.local_input_size is not None:
        rows = min(rows, recipe.local_input_size)
    return n * rows * SECONDS_PER_ROW.get(recipe.family, SECONDS_PER_ROW["local"])


class Feed:
    """A run's plan, handed out a job at a time: the gate's jobs first, then the longest
    ready job (:func:`estimated_seconds`); once every gate job is done, ``then`` (given
    the gate's frames) adds the jobs they decide. :meth:`frames` joins every job's frame,
    gate and decided jobs included."""

    def __init__(
        self,
        jobs: Sequence[WindowJob],
        *,
        series: int,
        rows_per_series: float,
        gate: Sequence[WindowJob] = (),
        then: Then | None = None,
    ) -> None:
        self._series, self._rows = series, rows_per_series
        self._ready: list[tuple[int, float, int, WindowJob]] = []
        self._order = 0
        self._out = 0
        self._gate = {(j.key, j.window, j.shard) for j in gate}
        self._then = then
        self.parts: Parts = {}
        self.total = len(jobs) + len(gate)
        self._add(gate, rank=0)
        self._add(jobs, rank=1)
        if not self._gate:
            self._release()

    def _add(self, jobs: Sequence[WindowJob], rank: int) -> None:
        for job in jobs:
            cost = estimated_seconds(job, self._series, self._rows)
            heapq.heappush(self._ready, (rank, -cost, self._order, job))
            self._order += 1

    def _release(self) -> None:
        if self._then is None:
            return
        then, self._then = self._then, None
        decided = then(joined(self.parts))
        self.total += len(decided)
        self._add(decided, rank=1)

    def next(self) -> WindowJob | None:
        """The next job to hand out, or None while none is ready."""
        if not self._ready:
            return None
        self._out += 1
        return heapq.heappop(self._ready)[3]

    def done(self, job: WindowJob, frame: pd.DataFrame) -> None:
        self._out -= 1
        self.parts.setdefault((job.key, job.window), {})[job.shard] = frame
        self._gate.discard((job.key, job.window, job.shard))
        if not self._gate:
            self._release()

    @property
    def finished(self) -> bool:
        return not self._ready and self._out == 0 and self._then is None

    def frames(self) -> Frames:
        return joined(self.parts)


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

    def feed(
        self, jobs: Sequence[WindowJob], gate: Sequence[WindowJob] = (), then: Then | None = None
    ) -> Feed:
        """The plan of a :meth:`run` over this pool's panel."""
        return Feed(
            jobs,
            series=len(self.series),
            rows_per_series=len(self.frame) / max(1, len(self.series)),
            gate=gate,
            then=then,
        )

    def run(
        self,
        jobs: Sequence[WindowJob],
        on_done: JobDone | None = None,
        *,
        gate: Sequence[WindowJob] = (),
        then: Then | None = None,
    ) -> Frames:
        """Every job's window frame by (key, window), the ``gate``'s and those ``then``
        decides from the gate's frames included (:class:`Feed`); the first failure stops
        the rest and is raised."""
        feed = self.feed(jobs, gate, then)
        if self.workers == 1 or feed.total <= 1:
            return self._run_here(feed, on_done)
        self.start()
        assert self._executor is not None
        out: dict[Future[tuple[pd.DataFrame, float, float]], WindowJob] = {}
        try:
            while not feed.finished:
                while len(out) < self.workers and (job := feed.next()) is not None:
                    out[self._executor.submit(_run_in_worker, job)] = job
                done, _ = wait(out, return_when=FIRST_COMPLETED)
                for future in done:
                    job = out.pop(future)
                    cv, seconds, cpu = future.result()
                    feed.done(job, cv)
                    if on_done is not None:
                        on_done(job, seconds, cpu)
        except BrokenProcessPool as exc:
            raise AnalysisError(
                "a back-test worker process died (out of memory, or killed); nothing is "
                "trained or released",
                id="analysis.worker.died",
            ) from exc
        finally:
            for future in out:
                future.cancel()
        return feed.frames()

    def _run_here(self, feed: Feed, on_done: JobDone | None) -> Frames:
        if self._from_end is None:
            self._from_end = _from_end(self.frame)
        while (job := feed.next()) is not None:
            start, cpu = time.perf_counter(), time.process_time()
            cv = run_window(self.frame, self._from_end, self.grid, job, self.cores)
            feed.done(job, cv)
            if on_done is not None:
                on_done(job, time.perf_counter() - start, time.process_time() - cpu)
        return feed.frames()

    def close(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=True, cancel_futures=True)
            self._executor = None

    def __enter__(self) -> WindowPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
