"""Run a scenario: the one entry point behind :meth:`Scenario.run`, ``chronoseal demo`` and
``chronoseal run``, so a notebook and the command line run the same code.

In one process on the embedded chain (or a chain passed in) up to any stage, or with
``rpc`` as one OS process per component and per party through Serving.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Console
from rich.markup import escape
from rich.panel import Panel
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from chronoseal.ledger import ChainBackend, EmbeddedChain, JsonRpcChain

from ._demo import DemoReport, pinned_tees, run_demo
from ._result import RunResult
from ._run import Anvil, RunError, run_separate

if TYPE_CHECKING:
    from ._config import ScenarioConfig, Stage

Log = Callable[[str], None]

#: What each analysis progress stage counts, as its bar says it.
ANALYSIS_STAGES = {
    "back-test": "back-test fits",
    "fit": "released model fit",
}


def run_scenario(
    scenario: ScenarioConfig,
    until: Stage = "serving",
    *,
    progress: bool = False,
    log: Log | None = None,
    rpc: str | None = None,
    work: Path | None = None,
    timeout: float = 900.0,
    chain: ChainBackend | None = None,
    console: Console | None = None,
    title: str = "chronoseal",
) -> RunResult:
    """Run ``scenario`` up to ``until``; ``progress`` prints a banner, the run's log lines
    and a bar per gateway stream and analysis stage to ``console``."""
    out = console or Console()
    if rpc is None:
        if progress:
            _banner(out, scenario, title, "embedded (eth-tester + py-evm)")
        backend = chain if chain is not None else EmbeddedChain()
        if progress:
            report = _with_progress(out, scenario, until, backend, log)
        else:
            report = run_demo(scenario, log=log or _quiet, until=until, chain=backend)
        return RunResult(scenario, report, backend)
    if until != "serving":
        raise RunError(
            f"with rpc the scenario runs as separate processes through Serving; until={until!r} "
            "is for the one-process run (leave rpc out)",
            id="run.until.separate",
        )
    where = Path(tempfile.mkdtemp(prefix="chronoseal-run-")) if work is None else work
    where.mkdir(parents=True, exist_ok=True)
    anvil = Anvil.start(where) if rpc == "anvil" else None
    url = anvil.url if anvil is not None else rpc
    try:
        if progress:
            _banner(out, scenario, title, f"{url} · one process per component")
        backend = JsonRpcChain(url)
        report = run_separate(
            scenario,
            chain=backend,
            chain_url=url,
            work=where,
            log=log or (_bullets(out) if progress else _quiet),
            timeout=timeout,
        )
    except BaseException:
        if anvil is not None:
            anvil.stop()
        raise
    return RunResult(scenario, report, backend, work=where, _stop=anvil.stop if anvil else None)


def _quiet(_: str) -> None:
    """No log: a script asked for the result only."""


def _bullets(console: Console) -> Log:
    return lambda msg: console.print(f"  [dim]•[/] {escape(msg)}")


def _banner(console: Console, scenario: ScenarioConfig, title: str, chain: str) -> None:
    console.print(
        Panel.fit(
            f"[bold]{escape(scenario.spec.task.name)}[/] — "
            f"{escape(scenario.spec.task.description)}\n"
            f"parties: {', '.join(p.org for p in scenario.spec.participants)} · "
            f"chain: {escape(chain)} · [yellow]tee: {escape(pinned_tees(scenario.spec))}[/]",
            title=title,
        )
    )


def _with_progress(
    console: Console, scenario: ScenarioConfig, until: Stage, chain: ChainBackend, log: Log | None
) -> DemoReport:
    """One progress bar per gateway stream and per analysis stage; log lines print above."""
    columns = (
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=console, transient=False) as progress:
        bars: dict[str, TaskID] = {}

        def on_rows(party: str, rows: int, total: int) -> None:
            if party not in bars:
                bars[party] = progress.add_task(f"{party} gateway → analysis", total=total or None)
            progress.update(bars[party], completed=rows, total=total or None)

        def on_stage(stage: str, done: int, total: int) -> None:
            key = f"analysis:{stage}"
            if key not in bars:
                what = ANALYSIS_STAGES.get(stage, stage)
                bars[key] = progress.add_task(f"analysis: {what}", total=total or None)
            progress.update(bars[key], completed=done, total=total or None)

        return run_demo(
            scenario,
            log=log or _bullets(progress.console),
            progress=on_rows,
            analysis_progress=on_stage,
            until=until,
            chain=chain,
        )
