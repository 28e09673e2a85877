"""``chronoseal demo``: the bundled three-party scenario, end to end, on the embedded chain."""

from __future__ import annotations

import tempfile
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
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
from rich.table import Table

from chronoseal._hex import short_hex
from chronoseal.errors import ChronosealError
from chronoseal.ledger import ChainBackend, EmbeddedChain
from chronoseal.node import Scenario, Stage, bundled_scenario, load_scenario

if TYPE_CHECKING:
    from chronoseal.node import DemoReport

from ._audit import audit_table, audit_timeline
from ._output import EXIT_ATTESTATION, console, fail, write_json
from ._serve import _endpoint

ExplorerFlag = Annotated[
    bool,
    typer.Option(
        "--explorer", help="afterwards, keep the explorer open on the run's chain (Ctrl-C ends)"
    ),
]
ExplorerListen = Annotated[str, typer.Option(help="HOST:PORT for --explorer")]


def demo(
    json_path: Annotated[
        Path | None, typer.Option("--json", help="also write the summary as JSON to PATH")
    ] = None,
    scenario: Annotated[
        Path | None,
        typer.Option(help="scenario TOML (default: the bundled Chicago ridership scenario)"),
    ] = None,
    until: Annotated[
        Stage,
        typer.Option(
            help="stop once the task is 'approved', 'running' (data streamed), 'trained' or "
            "'serving' (model handed over, forecasts served and audited)"
        ),
    ] = "serving",
    report_path: Annotated[
        Path | None,
        typer.Option(
            "--report",
            help="also write a self-contained HTML page of what the task released to the "
            "target party (plots, back-test, contributions, timeline) to PATH",
        ),
    ] = None,
    explorer: ExplorerFlag = False,
    explorer_listen: ExplorerListen = "127.0.0.1:8080",
) -> None:
    """Three organisations agree a forecasting task on a real EVM chain, stream their data,
    and train, back-test and value a joint model they never see each other's data for."""
    try:
        loaded = load_scenario(scenario or bundled_scenario())
        _banner(loaded, "chronoseal demo", "embedded (eth-tester + py-evm)")
        chain = EmbeddedChain()
        report = _run_with_progress(loaded, until, chain)
    except ChronosealError as exc:
        fail(exc)
    code = _present(report, loaded, json_path, report_path)
    if explorer:
        _keep_explorer_open(chain, report, explorer_listen)
    raise typer.Exit(code)


def run(
    scenario: Annotated[Path, typer.Argument(help="the scenario TOML (see docs/scenario.md)")],
    rpc: Annotated[
        str | None,
        typer.Option(
            help="JSON-RPC URL of the chain, or 'anvil' to start a local node: then every "
            "component and party runs as its own process (default: one process, embedded chain)"
        ),
    ] = None,
    json_path: Annotated[
        Path | None, typer.Option("--json", help="also write the summary as JSON to PATH")
    ] = None,
    report_path: Annotated[
        Path | None, typer.Option("--report", help="also write the HTML report to PATH")
    ] = None,
    work: Annotated[
        Path | None,
        typer.Option(help="with --rpc: where keys, state and each process's log go"),
    ] = None,
    timeout: Annotated[
        float, typer.Option(help="with --rpc: seconds any stage may take before the run fails")
    ] = 900.0,
    explorer: ExplorerFlag = False,
    explorer_listen: ExplorerListen = "127.0.0.1:8080",
) -> None:
    """Run a scenario through Serving and audit it from the chain: in one process on the
    embedded chain, or (``--rpc``) as separate processes coordinated only through a node."""
    # Imported here: only the multi-process mode needs the process supervisor.
    from chronoseal.ledger import JsonRpcChain
    from chronoseal.node import Anvil, run_separate

    try:
        loaded = load_scenario(scenario)
        anvil = None
        if rpc is None:
            _banner(loaded, "chronoseal run", "embedded (eth-tester + py-evm)")
            chain: ChainBackend = EmbeddedChain()
            report = _run_with_progress(loaded, "serving", chain)
        else:
            where = Path(tempfile.mkdtemp(prefix="chronoseal-run-")) if work is None else work
            where.mkdir(parents=True, exist_ok=True)
            anvil = Anvil.start(where) if rpc == "anvil" else None
            url = anvil.url if anvil is not None else rpc
            try:
                _banner(loaded, "chronoseal run", f"{url} · one process per component")
                chain = JsonRpcChain(url)
                report = run_separate(
                    loaded,
                    chain=chain,
                    chain_url=url,
                    work=where,
                    log=lambda msg: console.print(f"  [dim]•[/] {escape(msg)}"),
                    timeout=timeout,
                )
            except BaseException:
                if anvil is not None:
                    anvil.stop()
                raise
            console.print(f"keys, state and every process's log: {where}")
    except ChronosealError as exc:
        fail(exc)
    try:
        code = _present(report, loaded, json_path, report_path)
        if explorer:
            _keep_explorer_open(chain, report, explorer_listen)
    finally:
        if anvil is not None:
            anvil.stop()
    raise typer.Exit(code)


def _banner(loaded: Scenario, title: str, chain: str) -> None:
    console.print(
        Panel.fit(
            f"[bold]{escape(loaded.spec.task.name)}[/] — {escape(loaded.spec.task.description)}\n"
            f"parties: {', '.join(p.org for p in loaded.spec.participants)} · "
            f"chain: {escape(chain)} · [yellow]tee: simulated[/]",
            title=title,
        )
    )


def _keep_explorer_open(chain: ChainBackend, report: DemoReport, listen: str) -> None:
    """Serve the explorer on the run's chain until Ctrl-C (the embedded chain lives only in
    this process, so this is the only way to browse it)."""
    from chronoseal.explorer import start_explorer
    from chronoseal.ledger import Consortium

    host, port = _endpoint(listen, "--explorer-listen")
    try:
        running = start_explorer(Consortium.at(chain, report.contract), host, port)
    except ChronosealError as exc:
        fail(exc)
    console.print(f"explorer: [bold]{running.url}[/] (read-only; Ctrl-C to stop)", highlight=False)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        console.print("explorer stopped")
    finally:
        running.stop()


def _present(
    report: DemoReport, loaded: Scenario, json_path: Path | None, report_path: Path | None
) -> int:
    """What demo and run print and write, the same in every mode; the exit code."""
    console.print(audit_timeline(report.audit) if report.audit else _timeline(report))
    if report.parties:
        console.print(_parties(report))
    if report.releases:
        console.print(_backtest(report))
        if report.analysis_json().get("contribution"):
            console.print(_contributions(report))
    console.print(
        f"task [bold]0x{report.task_id.hex()}[/] is [bold green]{report.state}[/] with "
        f"{report.approvals}/{len(report.participants)} approvals · "
        f"{report.chain.blocks} blocks, {report.chain.transactions} transactions, "
        f"{report.chain.gas_used:,} gas · [yellow]tee: simulated[/]"
    )
    if json_path is not None:
        write_json(json_path, report.to_json())
        console.print(f"summary written to {json_path}")
    if report_path is not None:
        # Imported here: matplotlib and jinja2 are only needed when a report is asked for.
        from chronoseal.node._report import write_report

        write_report(report_path, report, task_name=loaded.spec.task.name)
        console.print(f"report written to {report_path}")
    if report.audit is not None:
        console.print(audit_table(report.audit))
        if not report.audit.verified:
            return EXIT_ATTESTATION
    return 0


#: What each analysis progress stage counts, as its bar says it.
ANALYSIS_STAGES = {
    "back-test": "back-test fits",
    "fit": "released model fit",
}


def _run_with_progress(scenario: Scenario, until: Stage, chain: ChainBackend) -> DemoReport:
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

        from chronoseal.node import run_demo  # every component, the forecasting stack too

        return run_demo(
            scenario,
            log=lambda msg: progress.console.print(f"  [dim]•[/] {escape(msg)}"),
            progress=on_rows,
            analysis_progress=on_stage,
            until=until,
            chain=chain,
        )


def _num(value: Any) -> str:
    return "—" if value is None else f"{value:.4g}"


def _backtest(report: DemoReport) -> Table:
    doc = report.analysis_json()
    model = doc.get("model")
    baselines: list[dict[str, Any]] = report.released("baselines") or []
    metrics = list(model["metrics"]) if model else []
    table = Table(title="back-test on the same folds (released to the parties)")
    table.add_column("model")
    table.add_column("family")
    table.add_column("data of")
    for m in metrics:
        table.add_column(m, justify="right")
    if model is not None:
        table.add_row(
            "[bold]joint[/]",
            model["family"],
            "all providers",
            *[_num(model["metrics"][m]) for m in metrics],
        )
    for b in baselines:
        table.add_row(
            b["name"], b["family"], report.target_party, *[_num(b["metrics"][m]) for m in metrics]
        )
    return table


def _contributions(report: DemoReport) -> Table:
    doc = report.analysis_json()
    how = doc["contribution_method"]
    table = Table(
        title=f"value of each party's data: MASE change ({how['method']}, reference "
        f"{how['reference']}; negative = better forecasts)"
    )
    table.add_column("party")
    table.add_column("Δ MASE", justify="right")
    for party, delta in doc["contribution"].items():
        colour = "green" if delta is not None and delta < 0 else "red"
        table.add_row(party, f"[{colour}]{_num(delta)}[/]")
    return table


def _parties(report: DemoReport) -> Table:
    table = Table(title="data streams (commitments compared by the contract)")
    table.add_column("party")
    table.add_column("rows", justify="right")
    table.add_column("bytes", justify="right")
    table.add_column("commitment")
    table.add_column("matched on chain")
    for p in report.parties:
        table.add_row(
            p.name,
            f"{p.rows_sent:,}",
            f"{p.bytes_sent:,}",
            p.commitment[:18] + "…",
            "[green]yes[/]" if p.commitment_matched else "[bold red]NO[/]",
        )
    return table


def _timeline(report: DemoReport) -> Table:
    table = Table(title="on-chain timeline (read back from contract events)", show_lines=False)
    table.add_column("block", justify="right")
    table.add_column("actor")
    table.add_column("event")
    table.add_column("key fields", overflow="fold")
    for ev in report.events:
        table.add_row(str(ev.block), ev.actor, ev.event, _fields(ev.fields))
    return table


def _fields(fields: dict[str, Any]) -> str:
    # The task id is in the summary line; repeating it on every row only adds noise.
    return short_hex(" ".join(f"{k}={v}" for k, v in fields.items() if k != "task_id"))
