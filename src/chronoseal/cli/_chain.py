"""``chronoseal chain``: a member's own validator node (what its deployed pod runs)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from chronoseal.errors import ChronosealError, ConfigError
from chronoseal.ledger import new_validator_keys, validator_node_command

from ._output import fail

chain_app = typer.Typer(help="A member's validator node of the consortium chain.")


def _host_port(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError(f"--rpc-listen must be HOST:PORT, got {text!r}", id="config.endpoint")
    return host, int(port)


@chain_app.command("validator")
def validator(
    genesis: Annotated[Path, typer.Option(help="the members' Clique genesis (NAME.json)")],
    data_dir: Annotated[Path, typer.Option(help="the node's chain data (a persistent volume)")],
    signer_key_file: Annotated[
        Path, typer.Option(help="the member's signer key: 64 hex digits (from a Secret)")
    ],
    node_key_file: Annotated[
        Path, typer.Option(help="the node key behind its node id: 64 hex digits (a Secret)")
    ],
    static_peer: Annotated[
        list[str] | None,
        typer.Option(help="NODE_ID@HOST:PORT of a validator this node dials (repeatable)"),
    ] = None,
    p2p_port: Annotated[int, typer.Option(help="RLPx port (the peers' links)")] = 30303,
    rpc_listen: Annotated[str, typer.Option(help="JSON-RPC HOST:PORT")] = "127.0.0.1:8545",
    ext_ip: Annotated[str, typer.Option(help="address this node announces")] = "127.0.0.1",
    log_level: Annotated[str, typer.Option(help="the client's log level")] = "info",
) -> None:
    """Run one Clique validator of the EthereumJS client in the foreground (it replaces this
    process), with the network's gossip patch: what a member's validator pod runs."""
    try:
        rpc_addr, rpc_port = _host_port(rpc_listen)
        command, env = validator_node_command(
            genesis=genesis,
            data_dir=data_dir,
            signer_key_file=signer_key_file,
            node_key_file=node_key_file,
            static_peers=static_peer or [],
            p2p_port=p2p_port,
            rpc_addr=rpc_addr,
            rpc_port=rpc_port,
            ext_ip=ext_ip,
            log_level=log_level,
        )
    except ChronosealError as exc:
        fail(exc)
    # exec: the container's signals (SIGTERM on a pod's deletion) reach the client itself
    os.chdir(data_dir)
    os.execvpe(command[0], command, {**os.environ, **env})


@chain_app.command("validator-key")
def validator_key(
    out: Annotated[Path, typer.Argument(help="directory for signer.key and node.key")],
) -> None:
    """Make a validator's signer key and node key (owner-only files) and print the public
    values the validators file needs (``deploy render --validators``)."""
    try:
        keys = new_validator_keys(out)
    except ChronosealError as exc:
        fail(exc)
    typer.echo(f'signer = "{keys.signer}"')
    typer.echo(f'node_id = "{keys.node_id}"')
