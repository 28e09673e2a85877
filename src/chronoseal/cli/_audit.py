"""``chronoseal audit TASK``: re-verify a task's whole life from a chain node alone."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from chronoseal._hex import short_hex
from chronoseal.audit import TaskAudit
from chronoseal.audit import audit as audit_chain
from chronoseal.errors import ChronosealError

from ._output import EXIT_ATTESTATION, console, fail, output_path, write_json

_STYLE = {"pass": "[green]pass[/]", "fail": "[bold red]FAIL[/]", "not_reached": "[dim]—[/]"}


def audit_table(audit: TaskAudit) -> Table:
    """One row per check: its id, verdict and what the replay found."""
    verdict = "[green]verified[/]" if audit.verified else "[bold red]NOT verified[/]"
    table = Table(title=f"audit from the chain alone: {verdict}")
    table.add_column("check")
    table.add_column("verdict")
    table.add_column("what the chain shows", overflow="fold")
    for c in audit.checks:
        table.add_row(escape(c.id), _STYLE[c.verdict], escape(short_hex(c.detail)))
    return table


def audit_timeline(audit: TaskAudit) -> Table:
    """The task's life as the replay saw it, names resolved as the chain knew them."""
    table = Table(title="task timeline (rebuilt from chain events)")
    table.add_column("block", justify="right")
    table.add_column("time (UTC)")
    table.add_column("actor")
    table.add_column("what happened", overflow="fold")
    for item in audit.timeline:
        when = datetime.fromtimestamp(item.time, UTC).strftime("%Y-%m-%d %H:%M:%S")
        table.add_row(str(item.block), when, escape(item.actor), escape(short_hex(item.summary)))
    return table


def audit(
    task: Annotated[str, typer.Argument(help="the task id (0x + 64 hex digits)")],
    rpc: Annotated[str, typer.Option(help="JSON-RPC URL of a node of the consortium chain")],
    contract: Annotated[str, typer.Option(help="address of the consortium contract")],
    from_block: Annotated[
        int, typer.Option(min=0, help="the contract's deployment block (where to read from)")
    ] = 0,
    receipt: Annotated[
        list[Path] | None,
        typer.Option(help="a prediction receipt (JSON, one or a list) to check; repeatable"),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print the audit as JSON")] = False,
    out: Annotated[
        Path | None, typer.Option(help="also write the audit as JSON to PATH", callback=output_path)
    ] = None,
) -> None:
    """Rebuild the task's life from chain events and re-verify every step; exit 1 if any
    check fails (2 if the audit cannot start: unknown task, unreachable node)."""
    try:
        result = audit_chain(
            task, rpc=rpc, contract=contract, from_block=from_block, receipts=receipt or []
        )
    except ChronosealError as exc:
        fail(exc)
    if as_json:
        typer.echo(json.dumps(result.to_json(), indent=2))
    else:
        console.print(audit_timeline(result))
        console.print(audit_table(result))
        console.print(
            f"task [bold]0x{result.task_id.hex()}[/] is {result.state}; "
            f"{len(result.checks) - len(result.failures)} of {len(result.checks)} checks did "
            f"not fail · {result.events_read} events replayed"
        )
    if out is not None:
        write_json(out, result.to_json())
    if not result.verified:
        raise typer.Exit(EXIT_ATTESTATION)
