"""``chronoseal demo`` and ``chronoseal run``: a thin layer over :meth:`Scenario.run` that
prints and writes what the run gave."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from chronoseal._hex import short_hex
from chronoseal.errors import ChronosealError
from chronoseal.node import Scenario, Stage, bundled_scenario

if TYPE_CHECKING:
    from chronoseal.node import DemoReport, RunResult

from ._audit import audit_table, audit_timeline
from ._output import EXIT_ATTESTATION, console, fail, output_path, write_json
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
        Path | None,
        typer.Option("--json", help="also write the summary as JSON to PATH", callback=output_path),
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
            callback=output_path,
            help="also write a self-contained HTML page of what the task released to the "
            "target party (plots, back-test, contributions, timeline) to PATH",
        ),
    ] = None,
    explorer: ExplorerFlag = False,
    explorer_listen: ExplorerListen = "127.0.0.1:8080",
) -> None:
    """Three organisations agree a forecasting task on a real EVM chain, stream their data,
    and train, back-test and value a joint model they never see each other's data for."""
    _run_and_present(
        lambda: _run(Scenario.load(scenario or bundled_scenario()), "chronoseal demo", until),
        json_path,
        report_path,
        explorer_listen if explorer else None,
    )


def run(
    scenario: Annotated[Path, typer.Argument(help="the scenario TOML (see docs/scenario.md)")],
    rpc: Annotated[
        str | None,
        typer.Option(
            help="JSON-RPC URL of the chain (several, comma-separated: the members' nodes in "
            "member order, party i on node i), or 'anvil' to start a local node: then every "
            "component and party runs as its own process (default: one process, embedded chain)"
        ),
    ] = None,
    json_path: Annotated[
        Path | None,
        typer.Option("--json", help="also write the summary as JSON to PATH", callback=output_path),
    ] = None,
    report_path: Annotated[
        Path | None,
        typer.Option("--report", help="also write the HTML report to PATH", callback=output_path),
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
    workers: Annotated[
        int | None,
        typer.Option(
            help="attested Dask workers the analysis runtime runs its back-test on "
            "(overrides the scenario's [compute] workers; 0: none)",
            min=0,
        ),
    ] = None,
) -> None:
    """Run a scenario through Serving and audit it from the chain: in one process on the
    embedded chain, or (``--rpc``) as separate processes coordinated only through a node."""

    def start() -> RunResult:
        loaded = Scenario.load(scenario)
        if workers is not None:
            loaded = loaded.with_workers(workers)
        return _run(loaded, "chronoseal run", "serving", rpc, work, timeout)

    _run_and_present(
        start,
        json_path,
        report_path,
        explorer_listen if explorer else None,
    )


def _run(
    loaded: Scenario,
    title: str,
    until: Stage,
    rpc: str | None = None,
    work: Path | None = None,
    timeout: float = 900.0,
) -> RunResult:
    from chronoseal.node import run_scenario  # every component, the forecasting stack too

    result = run_scenario(
        loaded,
        until,
        progress=True,
        rpc=rpc,
        work=work,
        timeout=timeout,
        console=console,
        title=title,
    )
    if result.work is not None:
        console.print(f"keys, state and every process's log: {result.work}")
    return result


def _run_and_present(
    start: Callable[[], RunResult],
    json_path: Path | None,
    report_path: Path | None,
    explorer_listen: str | None,
) -> None:
    """Run through the Python API, print and write what the run gave, exit with its code."""
    try:
        result = start()
    except ChronosealError as exc:
        fail(exc)
    with result:
        code = _present(result, json_path, report_path)
        if explorer_listen is not None:
            _keep_explorer_open(result, explorer_listen)
    raise typer.Exit(code)


def _keep_explorer_open(result: RunResult, listen: str) -> None:
    """Serve the explorer on the run's chain until Ctrl-C (the embedded chain lives only in
    this process, so this is the only way to browse it)."""
    from chronoseal.explorer import start_explorer

    host, port = _endpoint(listen, "--explorer-listen")
    try:
        running = start_explorer(result.consortium, host, port)
    except ChronosealError as exc:
        fail(exc)
    console.print(f"explorer: [bold]{running.url}[/] (read-only; Ctrl-C to stop)", highlight=False)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        console.print("explorer stopped")
    finally:
        running.stop()


def _present(result: RunResult, json_path: Path | None, report_path: Path | None) -> int:
    """What demo and run print and write, the same in every mode; the exit code."""
    report = result.report
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
        f"{report.chain.gas_used:,} gas · [yellow]tee: {escape(report.tee)}[/]"
    )
    if json_path is not None:
        write_json(json_path, report.to_json())
        console.print(f"summary written to {json_path}")
    if report_path is not None:
        # Imported here: matplotlib and jinja2 are only needed when a report is asked for.
        from chronoseal.node import write_report

        write_report(report_path, report, task_name=result.scenario.spec.task.name)
        console.print(f"report written to {report_path}")
    if report.audit is not None:
        console.print(audit_table(report.audit))
        if not report.audit.verified:
            return EXIT_ATTESTATION
    return 0


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
