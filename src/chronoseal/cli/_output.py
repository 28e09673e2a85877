"""Shared console helpers: one place decides how refusals look and which exit code they get."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, NoReturn

import typer
from rich.console import Console
from rich.markup import escape

from chronoseal.errors import AttestationError, ChronosealError, SpecError

console = Console()
err_console = Console(stderr=True)

#: Exit codes: 0 ok, 1 evidence did not verify, 2 refused (bad input, refused by the chain).
EXIT_OK = 0
EXIT_ATTESTATION = 1
EXIT_REFUSED = 2


def fail(exc: ChronosealError) -> NoReturn:
    """Print a refusal with its stable id and exit with the code scripts can rely on."""
    raise typer.Exit(show(exc))


def show(exc: ChronosealError) -> int:
    """Print a refusal with its stable id; return its exit code."""
    err_console.print(
        f"[bold red]error[/] {escape(f'[{exc.id}]')} {escape(exc.message)}", highlight=False
    )
    if isinstance(exc, SpecError):
        for p in exc.problems:
            err_console.print(
                f"  [yellow]{escape(p.location)}[/]: {escape(p.message)}", highlight=False
            )
    return EXIT_ATTESTATION if isinstance(exc, AttestationError) else EXIT_REFUSED


def output_path(value: Path | None) -> Path | None:
    """Refuse an output PATH before the work starts, not after it: an option name taken as
    the path (``--json --report x.html`` names a file ``--report``) or a directory."""
    if value is None:
        return None
    if str(value).startswith("-"):
        raise typer.BadParameter(
            f"{str(value)!r} is not a PATH (an option where the path should be?): give the "
            "file to write, e.g. --json run.json"
        )
    if value.is_dir():
        raise typer.BadParameter(f"{value} is a directory: give the file to write in it")
    return value


def write_json(path: Path, doc: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc, indent=2, sort_keys=False) + "\n", encoding="utf-8")
