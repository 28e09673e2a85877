"""``chronoseal demo``: the bundled three-party scenario, end to end, on the embedded chain."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.panel import Panel
from rich.table import Table

from chronoseal.errors import ChronosealError
from chronoseal.node import DemoReport, bundled_scenario, load_scenario, run_demo

from ._output import console, fail, write_json


def demo(
    json_path: Annotated[
        Path | None, typer.Option("--json", help="also write the summary as JSON to PATH")
    ] = None,
    scenario: Annotated[
        Path | None,
        typer.Option(help="scenario TOML (default: the bundled Chicago ridership scenario)"),
    ] = None,
) -> None:
    """Three organisations propose and approve a forecasting task on a real EVM chain."""
    try:
        loaded = load_scenario(scenario or bundled_scenario())
        console.print(
            Panel.fit(
                f"[bold]{loaded.spec.task.name}[/] — {loaded.spec.task.description}\n"
                f"parties: {', '.join(p.org for p in loaded.spec.participants)} · "
                "chain: embedded (eth-tester + py-evm) · [yellow]tee: simulated[/]",
                title="chronoseal demo",
            )
        )
        with console.status("running the consortium on the embedded chain…"):
            report = run_demo(loaded, log=lambda msg: console.print(f"  [dim]•[/] {msg}"))
    except ChronosealError as exc:
        fail(exc)
    console.print(_timeline(report))
    console.print(
        f"task [bold]0x{report.task_id.hex()}[/] is [bold green]{report.state}[/] with "
        f"{report.approvals}/{len(report.participants)} approvals · "
        f"{report.chain.blocks} blocks, {report.chain.transactions} transactions, "
        f"{report.chain.gas_used:,} gas · [yellow]tee: simulated[/]"
    )
    if json_path is not None:
        write_json(json_path, report.to_json())
        console.print(f"summary written to {json_path}")


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
    return " ".join(f"{k}={v}" for k, v in fields.items() if k != "task_id")
