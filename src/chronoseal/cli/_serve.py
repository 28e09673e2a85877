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
from chronoseal.node import (
    AgentLog,
    ComputeOptions,
    Health,
    load_task,
    new_keystore,
    serve_analysis,
    serve_gateway,
    serve_party,
)
from chronoseal.spec import task_id

from ._output import console, fail, output_path, write_json

gateway_app = typer.Typer(help="A party's trusted data gateway.")
analysis_app = typer.Typer(help="The attested analysis runtime.")
party_app = typer.Typer(help="A party's own reviewer of the tasks that name it.")
key_app = typer.Typer(
    help="Chain keys in encrypted keystores (passphrase: CHRONOSEAL_KEY_PASSWORD)."
)

# The values a deployment (not the component's code) decides may also come from the
# environment: a Gramine enclave's argv is fixed in its measured manifest, so these reach it
# as environment variables (see docs/deployment.md).
Chain = Annotated[
    str,
    typer.Option(
        help="JSON-RPC URL of an EVM node (anvil, Besu, ...)", envvar="CHRONOSEAL_CHAIN_URL"
    ),
]
Contract = Annotated[
    str,
    typer.Option(help="address of the deployed consortium contract", envvar="CHRONOSEAL_CONTRACT"),
]
Spec = Annotated[Path, typer.Option("--spec", help="the task spec this party approved")]
KeyFile = Annotated[Path, typer.Option("--key-file", help="encrypted keystore of the chain key")]
Timeout = Annotated[float, typer.Option(help="seconds to wait for the chain before giving up")]
HealthAt = Annotated[
    str | None,
    typer.Option("--health", help="HOST:PORT to answer /healthz and /readyz on (0 = any port)"),
]
LogFormat = Annotated[
    str, typer.Option("--log-format", help="text, or json (one JSON object per line)")
]


def attach_consortium(chain: str, contract: str) -> Consortium:
    return Consortium.at(JsonRpcChain(chain), contract)


def _endpoint(text: str, option: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) < 65536:
        fail(ConfigError(f"{option} must be HOST:PORT, got {text!r}", id="config.endpoint"))
    return host.strip("[]"), int(port)


def _log(message: str, *, event: str = "agent.info") -> None:
    console.print(f"  [dim]•[/] {escape(message)}")  # ids in brackets are not markup


def agent_io(
    component: str, health: str | None, log_format: str, spec: Path | None = None
) -> tuple[AgentLog, Health]:
    """The log and the probes every agent command shares, labelled with the task id."""
    if log_format not in ("text", "json"):
        fail(ConfigError(f"--log-format is text or json, not {log_format!r}", id="config.option"))
    task = None
    if spec is not None:
        try:
            task = "0x" + task_id(load_task(spec)).hex()
        except ChronosealError:
            task = None  # the command itself reports an unusable spec, with its id
    log = AgentLog(component, task=task, json_lines=log_format == "json")
    probes = Health(component)
    probes.task = task
    if health is not None:
        host, port = probes.serve(*_endpoint(health, "--health"))
        log(f"probes on http://{host}:{port}/healthz and /readyz", event="agent.health")
    return log, probes


@gateway_app.command("serve")
def gateway_serve(
    party: Annotated[str, typer.Option(help="this party's org name", envvar="CHRONOSEAL_PARTY")],
    config: Annotated[Path, typer.Option(help="this party's config TOML")],
    spec: Spec,
    chain: Chain,
    contract: Contract,
    key_file: KeyFile,
    runtime: Annotated[
        str, typer.Option(help="HOST:PORT of the analysis runtime", envvar="CHRONOSEAL_RUNTIME")
    ],
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
        typer.Option(
            help="HOST:PORT of the prediction runtime's hand-over: feed it (PORT+1)",
            envvar="CHRONOSEAL_PREDICTION",
        ),
    ] = None,
    summary_out: Annotated[
        Path | None,
        typer.Option(help="also write what was streamed and the release received (JSON) to PATH"),
    ] = None,
    health: HealthAt = None,
    log_format: LogFormat = "text",
) -> None:
    """Wait for an Approved (or, after a restart, Running) task with an attested runtime,
    verify it, stream (resuming from what the runtime holds), then fetch the release."""
    log, probes = agent_io(f"gateway:{party}", health, log_format, spec)
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
            log=log,
            health=probes,
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
    if summary_out is not None:
        stream = {
            "party": report.party,
            "rows_sent": report.rows_sent,
            "bytes_sent": report.bytes_sent,
            "batches": report.batches,
            "commitment": "0x" + report.commitment.hex(),
            "earlier": report.earlier,
        }
        write_json(summary_out, {"stream": stream, "release": release})


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
        typer.Option(
            help="HOST:PORT of the prediction runtime's hand-over: hand the model over",
            envvar="CHRONOSEAL_PREDICTION",
        ),
    ] = None,
    health: HealthAt = None,
    log_format: LogFormat = "text",
    workers: Annotated[
        int,
        typer.Option(
            help="attested Dask worker processes to run the back-test on (the task must pin "
            "measurements.analysis_worker)",
            min=0,
        ),
    ] = 0,
    worker_at: Annotated[
        list[str] | None,
        typer.Option(
            help="HOST:PORT of an attested worker in a TEE of its own (`chronoseal analysis "
            "worker`); repeat for each",
        ),
    ] = None,
    dask_listen: Annotated[
        str | None,
        typer.Option(help="HOST:PORT the Dask scheduler listens on (ratls://) for --worker-at"),
    ] = None,
    dask_contact: Annotated[
        str | None,
        typer.Option(help="the host name --worker-at workers reach the scheduler at"),
    ] = None,
    workers_out: Annotated[
        Path | None,
        typer.Option(
            help="write each worker's attestation and fits (JSON) here", callback=output_path
        ),
    ] = None,
) -> None:
    """Wait for the task to be Approved, attest on chain, and take every party's stream."""
    log, probes = agent_io("analysis", health, log_format, spec)
    try:
        runtime = serve_analysis(
            spec_path=spec,
            chain_url=chain,
            contract=contract,
            key_path=key_file,
            listen=_endpoint(listen, "--listen"),
            timeout=timeout,
            log=log,
            health=probes,
            io_timeout=io_timeout,
            prediction=_endpoint(prediction, "--prediction") if prediction else None,
            workers=workers,
            compute_options=ComputeOptions(tuple(worker_at or ()), dask_listen, dask_contact),
        )
    except ChronosealError as exc:
        fail(exc)
    if workers_out is not None and runtime.compute is not None:
        write_json(workers_out, {"workers": runtime.compute.to_json()})
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


@analysis_app.command("worker")
def analysis_worker(
    listen: Annotated[
        str, typer.Option(help="HOST:PORT to wait for the analysis runtime's admission on")
    ] = "0.0.0.0:7643",
    dask_port: Annotated[
        int, typer.Option(help="the port this worker's Dask endpoint (ratls://) listens on")
    ] = 7644,
    contact: Annotated[
        str | None,
        typer.Option(help="the host name the scheduler reaches this worker at (its pod's DNS)"),
    ] = None,
) -> None:
    """One attested Dask worker in this TEE: present its RA-TLS certificate to the analysis
    runtime that connects, and serve it once admitted (exits when the runtime is done)."""
    from chronoseal.analysis import WorkerEndpoint, serve_worker

    host, port = _endpoint(listen, "--listen")
    endpoint = WorkerEndpoint(host=host, port=dask_port, contact=contact)
    try:
        code = serve_worker((host, port), endpoint)
    except ChronosealError as exc:
        fail(exc)
    raise typer.Exit(code)


@party_app.command("serve")
def party_serve(
    party: Annotated[str, typer.Option(help="this party's org name", envvar="CHRONOSEAL_PARTY")],
    config: Annotated[Path, typer.Option(help="this party's config TOML")],
    specs: Annotated[
        Path,
        typer.Option(help="the task specs this party holds: a TOML file or a directory of them"),
    ],
    chain: Chain,
    contract: Contract,
    key_file: KeyFile,
    state_dir: Annotated[
        Path, typer.Option(help="where the block cursor and decisions are kept")
    ] = Path(".chronoseal"),
    serve_for: Annotated[
        float | None, typer.Option(help="seconds to watch (default: until SIGTERM)")
    ] = None,
    relay_key_file: Annotated[
        Path | None,
        typer.Option(
            help="approve by an EIP-712 signature that this keystore's account submits "
            "(this party's own key then sends no transaction)"
        ),
    ] = None,
    health: HealthAt = None,
    log_format: LogFormat = "text",
) -> None:
    """Review every task that names this party against its own config and specs: approve,
    or refuse and abort with the refusal ids; abort tasks it is in whose pinned measurement
    is revoked before the model exists or that are left past their deadline."""
    log, probes = agent_io(f"party:{party}", health, log_format)
    try:
        agent = serve_party(
            party_name=party,
            party_config=config,
            specs=specs,
            chain_url=chain,
            contract=contract,
            key_path=key_file,
            state_dir=state_dir,
            log=log,
            health=probes,
            serve_for=serve_for,
            relay_key_path=relay_key_file,
        )
    except ChronosealError as exc:
        fail(exc)
    finally:
        probes.close()
    for d in agent.decisions.values():
        ids = ", ".join(i for i, _ in d.problems)
        console.print(f"{d.task}: {d.action}{f' ({ids})' if ids else ''}", highlight=False)


@key_app.command("new")
def key_new(path: Annotated[Path, typer.Argument(help="where to write the keystore")]) -> None:
    """Create a chain key in an encrypted keystore and print its address (register it on chain)."""
    try:
        address = new_keystore(path)
    except ChronosealError as exc:
        fail(exc)
    typer.echo(address)
