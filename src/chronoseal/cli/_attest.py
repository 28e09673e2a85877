"""``chronoseal attest verify`` and ``chronoseal measure``: the operator's view of attestation.

``verify`` answers "is this evidence authentic, and what does it claim?" offline, from files:
measurement approval comes from ``--measurement`` (not the chain) and the key binding is
checked only when ``--report-data`` is given, because an operator holding a quote usually
has neither the chain nor the peer's TLS key at hand. ``--measurement`` takes the chain
digest or the vendor's own registers (``measurement:HEX``, ``mrtd:HEX``, ``mrenclave:HEX``
...; see :mod:`chronoseal.attest._expected`); registers that do not cover the whole digest
are compared one by one and the verdict says which were not. ``measure`` says which 32-byte
digest to register on chain for a component, and how to obtain it for each TEE.
"""

from __future__ import annotations

import binascii
import json
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from types import MappingProxyType
from typing import Annotated, Any, Final

import typer
from cryptography import x509
from rich.markup import escape
from rich.table import Table

from chronoseal.attest import (
    Appraisal,
    AppraisalPolicy,
    AppraisalStatus,
    Appraiser,
    Collateral,
    CollateralProvider,
    Evidence,
    ExpectedMeasurement,
    PinnedMeasurements,
    code_measurement,
    csv_report_wrapper,
    parse_expected_measurement,
    tee_type,
    verify_csv_chain,
)
from chronoseal.errors import AttestationError, ConfigError
from chronoseal.spec import Component, Tee

from ._output import EXIT_ATTESTATION, console, err_console, fail

attest_app = typer.Typer(
    help="Verify TEE evidence offline and print its claims and verdict.", no_args_is_help=True
)

_ENVELOPE_MAGIC: Final = b"CSEV"
_PEM_CERT: Final = b"-----BEGIN CERTIFICATE-----"


@attest_app.command("verify")
def verify(
    evidence: Annotated[
        Path,
        typer.Argument(
            exists=True,
            dir_okay=False,
            help="raw quote/report/token (binary or hex text), a chronoseal evidence envelope, "
            "Trustee's CSV evidence JSON; with --chain-only the HSK || CEK certificates",
            show_default=False,
        ),
    ],
    tee: Annotated[Tee, typer.Option("--tee", help="what kind of evidence this is")],
    collateral: Annotated[
        list[Path] | None,
        typer.Option(
            "--collateral",
            metavar="PATH",
            exists=True,
            dir_okay=False,
            help="sgx/tdx: DCAP collateral JSON; sev-snp: the VCEK (DER) and the ASK/ARK "
            "chain (PEM), unless the envelope carries them; csv: HSK || CEK as Hygon's KDS "
            "serves them (or the HSK and the CEK as two files); cca: the CPAK, psa: the "
            "attestation key, as a PEM public key",
        ),
    ] = None,
    chain_only: Annotated[
        bool,
        typer.Option(
            "--chain-only",
            help="csv: EVIDENCE is HSK || CEK; check it against the built-in Hygon root only",
        ),
    ] = False,
    allow_migration: Annotated[
        bool,
        typer.Option(
            "--allow-migration",
            help="accept a guest whose policy lets the host migrate it (csv: NOSEND clear)",
        ),
    ] = False,
    now: Annotated[
        str | None,
        typer.Option(
            metavar="ISO8601", help="verify as of this time (UTC if no offset); default: now"
        ),
    ] = None,
    measurement: Annotated[
        list[str] | None,
        typer.Option(
            metavar="[REGISTER:]HEX",
            help="what the evidence must measure: the 32-byte chain digest (as `chronoseal "
            "measure` prints it), or the vendor's registers: sev-snp measurement:HEX (or bare "
            "48-byte HEX); tdx mrtd:HEX, rtmr0..3:HEX; sgx mrenclave:HEX, mrsigner:HEX, "
            "isvprodid:INT. Repeat for several registers; fewer than the digest covers are "
            "compared one by one and reported as a partial check, never as a match",
        ),
    ] = None,
    component: Annotated[
        Component | None,
        typer.Option(
            help="component the evidence must come from (default: the one an envelope "
            "names; raw quotes name none and default to analysis)"
        ),
    ] = None,
    report_data: Annotated[
        str | None,
        typer.Option("--report-data", metavar="HEX", help="REPORTDATA the evidence must bind"),
    ] = None,
    json_out: Annotated[bool, typer.Option("--json", help="print the EAR as JSON")] = False,
) -> None:
    """Verify EVIDENCE; exit 0 if it is authentic (and matches the given measurement)."""
    if chain_only:
        _verify_csv_chain_only(tee, evidence, json_out)
        return
    moment = _parse_now(now)
    expected = _expected_measurement(tee, measurement or [])
    expected_binding = _hex_option(report_data, "--report-data", 64)
    loaded = _load_evidence(evidence, tee_type(tee.value), component)
    provider = _collateral_provider(loaded, collateral or [])
    kind = component or loaded.component
    digest = expected.digest if expected is not None else None
    policy = AppraisalPolicy(
        measurements=(
            PinnedMeasurements([(kind, loaded.tee, digest)]) if digest is not None else None
        ),
        pinned={kind: digest} if digest is not None else None,
        allow_simulated=loaded.tee == "simulated",
        collateral=provider,
        registers=expected.registers if expected is not None and digest is None else None,
        allow_migration=allow_migration,
    )
    appraisal = Appraiser(policy).appraise(
        loaded, component=kind, expected_report_data=expected_binding, now=moment
    )
    if json_out:
        typer.echo(json.dumps(appraisal.to_ear(), indent=2))
    else:
        _print_appraisal(appraisal, expected)
    if not appraisal.accepted:
        err_console.print(
            "[bold red]refused[/] " + " ".join(appraisal.failures), highlight=False, soft_wrap=True
        )
        raise typer.Exit(EXIT_ATTESTATION)


def measure(
    component: Annotated[
        Component, typer.Option("--component", help="component whose measurement to print")
    ],
    tee: Annotated[Tee, typer.Option("--tee", help="TEE the component will run in")] = (
        Tee.SIMULATED
    ),
    register: Annotated[
        list[str] | None,
        typer.Option(
            "--register",
            metavar="NAME=HEX",
            help="NAME=HEX register value from the vendor tool (isvprodid=INT for sgx)",
        ),
    ] = None,
    json_out: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
) -> None:
    """Print the 32-byte digest to register on chain for COMPONENT in TEE."""
    if tee is Tee.SIMULATED:
        if register:
            raise typer.BadParameter("the simulated TEE measures the installed code itself")
        digest: bytes | None = code_measurement(component)
    else:
        digest = _digest_from_registers(tee, register or [])
    how = _HOW_TO_MEASURE[tee]
    if json_out:
        typer.echo(
            json.dumps(
                {
                    "component": component.value,
                    "tee": tee.value,
                    "digest": digest.hex() if digest is not None else None,
                    "registers": list(how["registers"]),
                    "tool": how["tool"],
                    "combination": how["combination"],
                },
                indent=2,
            )
        )
        return
    if digest is not None:
        typer.echo(digest.hex())
    if tee is not Tee.SIMULATED:
        err_console.print(
            f"[bold]{tee.value}[/]: register {how['combination']}\n"
            f"  registers: {', '.join(how['registers'])}\n  obtain them with: {how['tool']}",
            highlight=False,
        )
        if digest is None:
            err_console.print(
                "  pass them as --register NAME=HEX to compute the digest", highlight=False
            )


_HOW_TO_MEASURE: Final[Mapping[Tee, Mapping[str, Any]]] = MappingProxyType(
    {
        Tee.SIMULATED: {
            "registers": ("code",),
            "tool": "chronoseal itself: SHA-256 over the installed package files and the "
            "resolved runtime dependency versions",
            "combination": "the code measurement itself",
        },
        Tee.SGX: {
            "registers": ("mrenclave", "mrsigner", "isvprodid"),
            "tool": "gramine-sgx-sigstruct-view <app>.sig (mr_enclave, mr_signer, isv_prod_id)",
            "combination": 'SHA-256("chronoseal/measurement/sgx/v1\\0" || MRENCLAVE || '
            "MRSIGNER || ISVPRODID u16 little-endian)",
        },
        Tee.TDX: {
            "registers": ("mrtd", "rtmr0", "rtmr1", "rtmr2", "rtmr3"),
            "tool": "MRTD from the TDVF image (e.g. tdx-measure / the cloud's reference "
            "values); RTMR0-3 by replaying the firmware/boot event log (CCEL)",
            "combination": 'SHA-256("chronoseal/measurement/tdx/v1\\0" || MRTD || RTMR0 || '
            "RTMR1 || RTMR2 || RTMR3), 48 bytes each",
        },
        Tee.SEV_SNP: {
            "registers": ("measurement",),
            "tool": "sev-snp-measure --mode snp --vcpus N --vcpu-type T --ovmf OVMF.fd "
            "[--kernel --initrd --append]",
            "combination": 'SHA-256("chronoseal/measurement/sev-snp/v1\\0" || MEASUREMENT '
            "(48 bytes))",
        },
        Tee.CSV: {
            "registers": ("measure",),
            "tool": "the launch digest Hygon's hag / csv-rs tools compute for the guest image "
            "(MEASURE of the report)",
            "combination": 'SHA-256("chronoseal/measurement/csv/v1\\0" || MEASURE (32 bytes))',
        },
        Tee.CCA: {
            "registers": ("rim",),
            "tool": "the realm initial measurement from the realm's image (e.g. veraison's "
            "cca-realm-measurements / kvmtool's RIM calculation)",
            "combination": 'SHA-256("chronoseal/measurement/cca/v1\\0" || len(RIM) as one '
            "byte || RIM)",
        },
        Tee.PSA: {
            "registers": ("implementation_id", "sw_components"),
            "tool": "the device vendor's reference values: implementation id and the firmware "
            "images' measurements (e.g. from TF-M's build)",
            "combination": 'SHA-256("chronoseal/measurement/psa/v1\\0" || IMPLEMENTATION_ID '
            "|| SW_COMPONENTS digest)",
        },
    }
)


def _expected_measurement(tee: Tee, values: list[str]) -> ExpectedMeasurement | None:
    """``--measurement`` values as one expectation; bad input exits 2 with its stable id."""
    if not values:
        return None
    try:
        return parse_expected_measurement(tee.value, values)
    except ConfigError as exc:
        fail(exc)


def _digest_from_registers(tee: Tee, values: list[str]) -> bytes | None:
    """``measure --register NAME=HEX``: the parser of ``verify --measurement``, but only
    registers, and all of those the digest covers (a partial digest does not exist)."""
    if not values:
        return None
    expected = _expected_measurement(tee, values)
    if expected is None or not expected.registers:
        fail(
            ConfigError(
                f"--register takes NAME=HEX for {tee.value} "
                f"({', '.join(_HOW_TO_MEASURE[tee]['registers'])}), not a digest",
                id="config.measurement.unknown_form",
            )
        )
    if expected.digest is None:
        fail(
            ConfigError(
                f"the {tee.value} digest also needs {', '.join(expected.uncompared)}",
                id="config.measurement.incomplete",
            )
        )
    return expected.digest


def _parse_now(text: str | None) -> datetime:
    if text is None:
        return datetime.now(UTC)
    try:
        moment = datetime.fromisoformat(text)
    except ValueError as exc:
        raise typer.BadParameter(f"{text!r} is not an ISO 8601 time", param_hint="--now") from exc
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _hex_value(text: str, option: str) -> bytes:
    try:
        return bytes.fromhex(text.strip().removeprefix("0x"))
    except ValueError as exc:
        raise typer.BadParameter(f"{text!r} is not hex", param_hint=option) from exc


def _hex_option(text: str | None, option: str, size: int) -> bytes | None:
    if text is None:
        return None
    value = _hex_value(text, option)
    if len(value) != size:
        raise typer.BadParameter(f"expected {size} bytes, got {len(value)}", param_hint=option)
    return value


#: Quotes, reports and their collateral are kilobytes; a larger file is not evidence.
MAX_EVIDENCE_BYTES = 1 << 20


def _read_capped(path: Path, what: str) -> bytes:
    try:
        with path.open("rb") as f:
            data = f.read(MAX_EVIDENCE_BYTES + 1)
    except OSError as exc:
        raise typer.BadParameter(f"cannot read {path}: {exc.strerror}") from exc
    if len(data) > MAX_EVIDENCE_BYTES:
        raise typer.BadParameter(f"{path} is larger than {MAX_EVIDENCE_BYTES} bytes: not {what}")
    return data


def _verify_csv_chain_only(tee: Tee, path: Path, json_out: bool) -> None:
    """``--chain-only``: HSK || CEK against the pinned HRK, the check a KDS download needs."""
    if tee is not Tee.CSV:
        raise typer.BadParameter("--chain-only checks a Hygon HSK/CEK chain", param_hint="--tee")
    try:
        chain = verify_csv_chain(_read_capped(path, "HSK || CEK certificates"))
    except AttestationError as exc:
        if json_out:
            typer.echo(json.dumps({"accepted": False, "failures": [exc.id]}, indent=2))
        err_console.print(
            f"[bold red]refused[/] {escape(f'[{exc.id}] {exc.message}')}", highlight=False
        )
        raise typer.Exit(EXIT_ATTESTATION) from exc
    summary = {
        "accepted": True,
        "failures": [],
        "hrk_key_id": chain.hrk.key_id.hex(),
        "hsk_key_id": chain.hsk.key_id.hex(),
        "cek_firmware": f"{chain.cek.firmware[0]}.{chain.cek.firmware[1]}",
        "cek_public_key": chain.cek.public_xy.hex(),
    }
    if json_out:
        typer.echo(json.dumps(summary, indent=2))
        return
    table = Table(title="Hygon CSV chain HRK -> HSK -> CEK", show_header=False)
    table.add_column("field", style="bold")
    table.add_column("value", overflow="fold")
    for name, value in summary.items():
        if name not in ("accepted", "failures"):
            _row(table, name.replace("_", " "), str(value))
    console.print(table)
    console.print("verdict: [bold green]chain verified[/] (HRK pinned by hash)", highlight=False)


def _csv_from_json(data: bytes) -> bytes | None:
    """Trustee's CSV evidence JSON (``attestation_report`` {magic, flags, data}) -> wrapper."""
    try:
        document = json.loads(data)
        report = document["attestation_report"]
        return csv_report_wrapper(
            bytes(report["data"]), magic=bytes(report["magic"]), flags=int(report["flags"])
        )
    except (ValueError, KeyError, TypeError, AttestationError):
        return None


def _load_evidence(path: Path, tee: Tee, component: Component | None) -> Evidence:
    data = _read_capped(path, "evidence")
    if data.startswith(_ENVELOPE_MAGIC):
        try:
            envelope = Evidence.from_bytes(data)
        except AttestationError as exc:
            err_console.print(
                f"[bold red]refused[/] {escape(f'[{exc.id}] {exc.message}')}", highlight=False
            )
            raise typer.Exit(EXIT_ATTESTATION) from exc
        if envelope.tee != tee:
            raise typer.BadParameter(
                f"the envelope holds {envelope.tee} evidence", param_hint="--tee"
            )
        return envelope
    if tee == "simulated":
        raise typer.BadParameter(
            "simulated evidence is only meaningful in its chronoseal envelope", param_hint="--tee"
        )
    if tee == "csv" and data.lstrip().startswith(b"{"):
        wrapper = _csv_from_json(data)
        if wrapper is None:
            raise typer.BadParameter(f"{path} is not Trustee's CSV evidence JSON")
        return Evidence(tee, component or Component.ANALYSIS, wrapper)
    return Evidence(tee, component or Component.ANALYSIS, _maybe_hex(data))


def _maybe_hex(data: bytes) -> bytes:
    """Vectors and tools ship quotes as binary or as hex text; accept both."""
    text = b"".join(data.split())
    text = text.removeprefix(b"0x").removeprefix(b"0X")
    if text and len(text) % 2 == 0:
        try:
            return binascii.unhexlify(text)
        except binascii.Error:
            return data
    return data


def _collateral_provider(evidence: Evidence, paths: list[Path]) -> CollateralProvider | None:
    if evidence.tee == "simulated":
        if paths:
            raise typer.BadParameter("simulated evidence takes no collateral")
        return None
    if evidence.tee in ("sgx", "tdx"):
        if len(paths) != 1:
            raise typer.BadParameter(
                f"{evidence.tee} needs exactly one DCAP collateral JSON", param_hint="--collateral"
            )
        return _constant(_read_capped(paths[0], "DCAP collateral"))
    if evidence.tee == "csv":
        if not paths:
            return None
        if len(paths) > 2:
            raise typer.BadParameter(
                "csv takes HSK || CEK (one file) or the HSK and the CEK", param_hint="--collateral"
            )
        blobs = sorted((_read_capped(path, "a CSV certificate") for path in paths), key=len)
        return _constant(b"".join(blobs))
    if evidence.tee in ("cca", "psa"):
        if len(paths) != 1:
            what = "the CPAK" if evidence.tee == "cca" else "the PSA attestation key"
            raise typer.BadParameter(
                f"{evidence.tee} needs {what} as one PEM public key", param_hint="--collateral"
            )
        return _constant(_read_capped(paths[0], "a PEM public key"))
    if not paths:
        return None
    return _constant(_snp_collateral(paths))


def _snp_collateral(paths: list[Path]) -> Mapping[str, bytes]:
    chains = [path for path in paths if _read_capped(path, "a PEM file").count(_PEM_CERT) >= 2]
    leaves = [path for path in paths if path not in chains]
    if len(chains) != 1 or len(leaves) != 1:
        raise typer.BadParameter(
            "sev-snp needs the VCEK certificate and the ASK/ARK chain PEM (two files)",
            param_hint="--collateral",
        )
    chain = _read_capped(chains[0], "a PEM chain")
    try:
        x509.load_pem_x509_certificates(chain)
    except ValueError as exc:
        raise typer.BadParameter(f"{chains[0]} is not a PEM chain") from exc
    return {"vcek": _read_capped(leaves[0], "a VCEK certificate"), "chain": chain}


def _constant(collateral: Collateral) -> CollateralProvider:
    def provide(evidence: Evidence) -> Collateral:
        return collateral

    return provide


_STATUS_STYLE: Final = {
    AppraisalStatus.AFFIRMING: "bold green",
    AppraisalStatus.WARNING: "bold yellow",
    AppraisalStatus.CONTRAINDICATED: "bold red",
}


def _row(table: Table, name: str, value: str) -> None:
    """Evidence fields are attacker-controlled text: never let them act as rich markup."""
    table.add_row(escape(name), escape(value))


def _print_appraisal(appraisal: Appraisal, expected: ExpectedMeasurement | None) -> None:
    table = Table(title=f"{appraisal.tee} evidence", show_header=False)
    table.add_column("claim", style="bold")
    table.add_column("value", overflow="fold")
    _row(table, "tee", appraisal.tee)
    _row(table, "component", appraisal.component.value)
    claims = appraisal.claims
    if claims is not None:
        _row(table, "tcb status", claims.tcb_status)
        if claims.advisory_ids:
            _row(table, "advisories", ", ".join(claims.advisory_ids))
        _row(table, "debug", "yes" if claims.debug else "no")
        for name, value in sorted(claims.measurements.items()):
            _row(table, name, value.hex())
        _row(table, "report data", claims.report_data.hex())
        for name, number in sorted(claims.svn.items()):
            _row(table, name, str(number))
        for name, text in sorted(claims.platform.items()):
            _row(table, name, text)
    if appraisal.measurement is not None:
        _row(table, "measurement digest", appraisal.measurement.hex())
    if expected is not None:
        _row(table, "expected", expected.describe())
    if appraisal.compared_registers:
        _row(table, "compared registers", ", ".join(appraisal.compared_registers))
    console.print(table)
    style = _STATUS_STYLE[appraisal.status]
    console.print(f"verdict: [{style}]{appraisal.status.value}[/]", highlight=False)
    for label, ids in (("failure", appraisal.failures), ("warning", appraisal.warnings)):
        for item in ids:
            console.print(
                f"  {label} [bold]{item}[/]: {escape(appraisal.details.get(item, ''))}",
                highlight=False,
                soft_wrap=True,
            )
