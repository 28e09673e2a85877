"""``chronoseal spec``: check a task file and print its on-chain id."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from chronoseal.errors import ChronosealError
from chronoseal.node import load_task
from chronoseal.spec import GLOBAL_FAMILIES, load_spec, planned_fits, task_id

from ._output import console, fail

spec_app = typer.Typer(help="Check task specifications and compute their on-chain id.")

FileArg = Annotated[Path, typer.Argument(help="TOML task file", show_default=False)]


@spec_app.command("check")
def check(file: FileArg) -> None:
    """Exit 0 if FILE is a valid task spec; otherwise exit 2 listing every problem."""
    try:
        spec = load_spec(file)
    except ChronosealError as exc:
        fail(exc)
    console.print(
        f"[green]ok[/] {file}: task {spec.task.name!r} ({spec.task.kind}), "
        f"{len(spec.participants)} participants, {len(spec.datasets)} datasets"
    )
    fits = planned_fits(spec)
    local = "" if spec.model.family in GLOBAL_FAMILIES else " (one model per series each)"
    console.print(
        f"the analysis will run {sum(fits.values()):,} fits{local}, "
        f"{spec.evaluation.windows} back-test windows for each model and coalition: "
        + ", ".join(f"{k} {v:,}" for k, v in fits.items())
        + f"; local baselines fit on the last {spec.model.input_size():,} periods of each "
        f"series ({spec.model.statistical_baseline()}, seasonal-naive)",
        highlight=False,
    )


@spec_app.command("hash")
def hash_(file: FileArg) -> None:
    """Print the task id: SHA-256 of the RFC 8785 canonical JSON of the resolved spec."""
    try:
        tid = task_id(load_task(file))
    except ChronosealError as exc:
        fail(exc)
    typer.echo("0x" + tid.hex())
