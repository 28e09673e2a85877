"""``chronoseal gateway serve``, ``chronoseal analysis serve``, ``chronoseal key new``: each
component as its own process, coordinated only through a JSON-RPC chain node."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape

from chronoseal.errors import ChronosealError, ConfigError
from chronoseal.ledger import Consortium, JsonRpcChain
from chronoseal.node import new_keystore, serve_analysis, serve_gateway

from ._output import console, fail

gateway_app = typer.Typer(help="A party's trusted data gateway.")
analysis_app = typer.Typer(help="The attested analysis runtime.")
key_app = typer.Typer(
    help="Chain keys in encrypted keystores (passphrase: CHRONOSEAL_KEY_PASSWORD)."
)

Chain = Annotated[str, typer.Option(help="JSON-RPC URL of an EVM node (anvil, Besu, ...)")]
Contract = Annotated[str, typer.Option(help="address of the deployed consortium contract")]
Spec = Annotated[Path, typer.Option("--spec", help="the task spec this party approved")]
KeyFile = Annotated[Path, typer.Option("--key-file", help="encrypted keystore of the chain key")]
Timeout = Annotated[float, typer.Option(help="seconds to wait for the chain before giving up")]


def attach_consortium(chain: str, contract: str) -> Consortium:
    return Consortium.at(JsonRpcChain(chain), contract)


def _endpoint(text: str, option: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) < 65536:
        fail(ConfigError(f"{option} must be HOST:PORT, got {text!r}", id="config.endpoint"))
    return host.strip("[]"), int(port)


def _log(message: str) -> None:
    console.print(f"  [dim]•[/] {escape(message)}")  # ids in brackets are not markup


@gateway_app.command("serve")
def gateway_serve(
    party: Annotated[str, typer.Option(help="this party's org name")],
    config: Annotated[Path, typer.Option(help="this party's config TOML")],
    spec: Spec,
    chain: Chain,
    contract: Contract,
    key_file: KeyFile,
    runtime: Annotated[str, typer.Option(help="HOST:PORT of the analysis runtime")],
    state_dir: Annotated[Path, typer.Option(help="party-local state (privacy budget)")] = Path(
        ".chronoseal"
    ),
    timeout: Timeout = 600.0,
    batch_rows: Annotated[
        int, typer.Option(min=1, max=10_000_000, help="rows per encrypted batch")
    ] = 65_536,
    progress: Annotated[
        bool, typer.Option(help="print one line per batch sent (rows and bytes so far)")
    ] = False,
    prediction: Annotated[
        str | None,
        typer.Option(help="HOST:PORT of the prediction runtime's hand-over: feed it (PORT+1)"),
    ] = None,
) -> None:
    """Wait for an Approved (or, after a restart, Running) task with an attested runtime,
    verify it, stream (resuming from what the runtime holds), then fetch the release."""
    try:
        report, release = serve_gateway(
            party_name=party,
            party_config=config,
            spec_path=spec,
            chain_url=chain,
            contract=contract,
            key_path=key_file,
            runtime=_endpoint(runtime, "--runtime"),
            state_dir=state_dir,
            timeout=timeout,
            log=_log,
            batch_rows=batch_rows,
            progress=_print_progress if progress else None,
            prediction=_endpoint(prediction, "--prediction") if prediction else None,
        )
    except ChronosealError as exc:
        fail(exc)
    if report.earlier:
        console.print(
            f"{report.party}: stream sent before this restart; commitment "
            f"0x{report.commitment.hex()} matched on chain · tee: {report.tee}"
        )
    else:
        console.print(
            f"{report.party}: {report.rows_sent:,} rows in {report.batches} batches, "
            f"{report.bytes_sent:,} bytes; commitment 0x{report.commitment.hex()} posted "
            f"(runtime's: 0x{report.runtime_commitment.hex()}) · tee: {report.tee}"
        )
    _print_release(report.party, release)


@analysis_app.command("serve")
def analysis_serve(
    spec: Spec,
    chain: Chain,
    contract: Contract,
    key_file: KeyFile,
    listen: Annotated[str, typer.Option(help="HOST:PORT to serve gateways on")] = "127.0.0.1:7443",
    timeout: Timeout = 600.0,
    io_timeout: Annotated[
        float, typer.Option(help="seconds a read or write on a gateway channel may wait")
    ] = 120.0,
    prediction: Annotated[
        str | None,
        typer.Option(help="HOST:PORT of the prediction runtime's hand-over: hand the model over"),
    ] = None,
) -> None:
    """Wait for the task to be Approved, attest on chain, and take every party's stream."""
    try:
        runtime = serve_analysis(
            spec_path=spec,
            chain_url=chain,
            contract=contract,
            key_path=key_file,
            listen=_endpoint(listen, "--listen"),
            timeout=timeout,
            log=_log,
            io_timeout=io_timeout,
            prediction=_endpoint(prediction, "--prediction") if prediction else None,
        )
    except ChronosealError as exc:
        fail(exc)
    if runtime.trained is not None:
        result = runtime.trained.result
        console.print(
            f"model {result.family} committed: 0x{runtime.trained.commitment.hex()} · "
            f"joint MASE {result.joint.metrics.get('mase')} vs best single-party "
            f"({result.best_single.name}) {result.best_single.metrics.get('mase')} · "
            f"released to {', '.join(sorted(runtime.released_to)) or 'nobody yet'}"
        )
    for name, intake in sorted(runtime.state.parties.items()):
        console.print(
            f"{name}: {intake.rows:,} rows in {len(intake.batches)} batches; commitment "
            f"0x{intake.commitment.root().hex()} posted"
        )
    for error in runtime.state.errors:
        console.print(
            f"[yellow]refused[/] {escape(f'[{error.id}] {error.message}')}", highlight=False
        )


def _print_progress(rows: int, sent_bytes: int) -> None:
    print(f"sent {rows} rows, {sent_bytes} bytes", flush=True)


def _print_release(party: str, release: dict[str, Any]) -> None:
    """What the party received, checked against the chain's release digest."""
    console.print(f"{party} received its release (checked against the chain):")
    for key in ("model", "baseline", "contribution"):
        if key in release:
            console.print(f"  {key}: {json.dumps(release[key], sort_keys=True)}", highlight=False)
    for key in sorted(set(release) - {"model", "baseline", "contribution", "task_id", "party"}):
        if key != "nonce":
            console.print(f"  {key}: released", highlight=False)


@key_app.command("new")
def key_new(path: Annotated[Path, typer.Argument(help="where to write the keystore")]) -> None:
    """Create a chain key in an encrypted keystore and print its address (register it on chain)."""
    try:
        address = new_keystore(path)
    except ChronosealError as exc:
        fail(exc)
    typer.echo(address)
