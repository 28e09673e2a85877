"""``chronoseal explorer``: the read-only web view of a consortium on a JSON-RPC chain."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.markup import escape

from chronoseal.errors import ChronosealError, ConfigError

from ._output import console, fail


def _listen(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) < 65536:
        fail(ConfigError(f"--listen must be HOST:PORT, got {text!r}", id="config.endpoint"))
    return host.strip("[]"), int(port)


def explorer(
    contract: Annotated[
        str,
        typer.Option(
            envvar="CHRONOSEAL_CONTRACT", help="address of the deployed consortium contract"
        ),
    ],
    rpc: Annotated[
        str, typer.Option(envvar="CHRONOSEAL_RPC", help="JSON-RPC URL of an EVM node")
    ] = "http://127.0.0.1:8545",
    from_block: Annotated[
        int,
        typer.Option(min=0, help="the contract's deployment block: events are read from here"),
    ] = 0,
    listen: Annotated[str, typer.Option(help="HOST:PORT to serve the explorer on")] = (
        "127.0.0.1:8080"
    ),
) -> None:
    """Serve a read-only web view of the consortium: members, measurements, tasks with
    their timelines and a Verify button (the audit checks); JSON at the same paths."""
    host, port = _listen(listen)
    from chronoseal.explorer import open_consortium, serve_explorer

    try:
        consortium = open_consortium(rpc, contract, from_block=from_block)
        shown = f"[{host}]" if ":" in host else host
        console.print(
            f"explorer for consortium {escape(consortium.address)} on {escape(rpc)}: "
            f"http://{escape(shown)}:{port}/  (read-only; Ctrl-C stops it)",
            highlight=False,
        )
        serve_explorer(consortium, host, port, from_block=from_block)
    except ChronosealError as exc:
        fail(exc)
