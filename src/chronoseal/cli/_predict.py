"""``chronoseal predict serve | query | verify-receipt``: the prediction runtime as its own
process, a party's forecast request through its gateway identity, and the check of an audit
receipt against the chain alone."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from chronoseal.errors import ChronosealError, ConfigError
from chronoseal.node import query_forecast, serve_prediction
from chronoseal.prediction import read_receipts, verify_receipt

from ._output import console, fail, output_path, write_json
from ._serve import (
    Chain,
    Contract,
    HealthAt,
    KeyFile,
    LogFormat,
    Spec,
    Timeout,
    _endpoint,
    agent_io,
    attach_consortium,
)

predict_app = typer.Typer(help="The attested prediction runtime and its clients.")


@predict_app.command("serve")
def predict_serve(
    spec: Spec,
    chain: Chain,
    contract: Contract,
    key_file: KeyFile,
    listen: Annotated[
        str,
        typer.Option(help="HOST:PORT of the hand-over; feeds on PORT+1, forecasts on PORT+2"),
    ] = "127.0.0.1:7543",
    timeout: Timeout = 600.0,
    serve_for: Annotated[
        float, typer.Option(help="seconds to serve forecasts before posting the last batch")
    ] = 3600.0,
    audit_max_age: Annotated[
        float, typer.Option(help="seconds an audit record may wait before its batch is posted")
    ] = 5.0,
    recheck_interval: Annotated[
        float,
        typer.Option(
            min=0.0,
            help="seconds between re-reads of both ends' measurements from the chain: a "
            "revoked one ends open sessions at their next request",
        ),
    ] = 5.0,
    state_dir: Annotated[
        Path | None,
        typer.Option(
            help="keep the model, feeds and audit journal here, sealed to this TEE, so a "
            "restarted runtime resumes serving"
        ),
    ] = None,
    health: HealthAt = None,
    log_format: LogFormat = "text",
) -> None:
    """Wait for Trained, attest, take the model over, serve the recipients' forecasts
    (restarted with the same key and --state-dir while Serving: resume)."""
    log, probes = agent_io("prediction", health, log_format, spec)
    try:
        runtime = serve_prediction(
            spec_path=spec,
            chain_url=chain,
            contract=contract,
            key_path=key_file,
            listen=_endpoint(listen, "--listen"),
            timeout=timeout,
            serve_for=serve_for,
            log=log,
            health=probes,
            state_dir=state_dir,
            recheck_interval=recheck_interval,
            audit_max_age=audit_max_age,
        )
    except ChronosealError as exc:
        fail(exc)
    stats = runtime.stats
    refusals = ", ".join(f"{k} x{v}" for k, v in sorted(stats.refusals.items())) or "none"
    console.print(
        f"{stats.served} forecasts served, {stats.refused} refused ({refusals}); "
        f"{runtime.audit.leaves} audit records in {runtime.audit.batches} batches on chain",
        highlight=False,
    )


@predict_app.command("query")
def predict_query(
    spec: Spec,
    party: Annotated[str, typer.Option(help="this party's org name")],
    chain: Chain,
    contract: Contract,
    key_file: KeyFile,
    prediction: Annotated[
        str, typer.Option(help="HOST:PORT the prediction runtime serves forecasts on")
    ],
    series: Annotated[
        list[str] | None, typer.Option("--series", help="a series id (repeat); default all")
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option(help="write the forecast to FILE.csv or FILE.parquet", callback=output_path),
    ] = None,
    receipt_path: Annotated[
        Path | None,
        typer.Option(
            "--receipt", help="write the audit receipt (JSON) to PATH", callback=output_path
        ),
    ] = None,
    input_path: Annotated[
        str | None,
        typer.Option(
            "--input",
            help="this party's own rows since the training window (FILE.csv, FILE.parquet or "
            "a source URL), desensitized under the task's policy: the forecast starts after them",
        ),
    ] = None,
    horizon: Annotated[
        int | None, typer.Option(help="periods to forecast (at most the task's horizon)")
    ] = None,
) -> None:
    """Ask for the next horizon's forecast; print it, keep the receipt (checked on chain)."""
    if out is not None and out.suffix not in (".csv", ".parquet"):
        fail(ConfigError("--out must end in .csv or .parquet", id="config.output.format"))
    try:
        answer, receipt = query_forecast(
            spec_path=spec,
            chain_url=chain,
            contract=contract,
            key_path=key_file,
            party=party,
            prediction=_endpoint(prediction, "--prediction"),
            series=series or [],
            observations=input_path,
            horizon=horizon,
        )
    except ChronosealError as exc:
        fail(exc)
    if receipt_path is not None:
        write_json(receipt_path, receipt.to_json())
    if answer.forecast is None:
        console.print(
            f"[red]refused[/] {escape(f'[{answer.refused}] {answer.message}')} (audit record "
            f"{receipt.batch}/{receipt.index}, checked on chain)",
            highlight=False,
        )
        raise typer.Exit(2)
    frame = answer.forecast
    table = Table(title=f"forecast for {party} (audit batch {receipt.batch}, checked on chain)")
    for column in frame.columns:
        table.add_column(str(column), justify="left" if column in ("unique_id", "ds") else "right")
    for row in frame.itertuples(index=False):
        table.add_row(*[f"{v:.4g}" if isinstance(v, float) else str(v) for v in row])
    console.print(table)
    if out is not None:
        if out.suffix == ".csv":
            frame.to_csv(out, index=False)
        else:
            frame.to_parquet(out, index=False)
        console.print(f"forecast written to {out}")


@predict_app.command("verify-receipt")
def predict_verify_receipt(
    receipt: Annotated[Path, typer.Argument(help="a receipt JSON file from `predict query`")],
    chain: Chain,
    contract: Contract,
) -> None:
    """Check an audit receipt against the chain alone; exit 0 if it is there, 1 if not."""
    try:
        receipts = read_receipts(receipt)
    except OSError as exc:
        fail(ConfigError(f"cannot read {receipt}: {exc}", id="prediction.receipt.malformed"))
    except ChronosealError as exc:
        console.print(
            f"[red]not verified[/] {escape(f'[{exc.id}] {exc.message}')}", highlight=False
        )
        raise typer.Exit(1) from None
    if len(receipts) != 1:
        fail(ConfigError(f"{receipt} holds no single receipt", id="prediction.receipt.malformed"))
    parsed = receipts[0]
    try:
        verify_receipt(parsed, attach_consortium(chain, contract))
    except ChronosealError as exc:
        console.print(
            f"[red]not verified[/] {escape(f'[{exc.id}] {exc.message}')}", highlight=False
        )
        raise typer.Exit(1) from None
    leaf = parsed.leaf
    console.print(
        f"verified: {leaf.requester or 'an unknown requester'} · {leaf.outcome} · audit batch "
        f"{parsed.batch}, record {parsed.index} of {parsed.count} · root 0x{parsed.root.hex()}",
        highlight=False,
    )
