"""Produce SGX DCAP quotes inside a Gramine enclave through its ``/dev/attestation`` files.

Public surface::

    generate_gramine_quote(report_data: bytes, *, root: Path = GRAMINE_ATTESTATION_ROOT,
                           fs: PseudoFilesystem | None = None) -> bytes

Gramine (``Documentation/attestation.rst``) exposes ``attestation_type`` (``none``|``dcap``),
``user_report_data`` (write 64 bytes) and ``quote`` (read: a DCAP quote over the last report
data). Gramine silently zero-pads a short ``user_report_data`` and truncates a long one, so a
binding that is not exactly 64 bytes would be weakened without any error: it is refused here.
The quote's REPORTDATA is checked against what was written, so a quote left over from another
thread's request is never returned as ours. The quote is returned raw; verify it with
``verify_dcap_quote`` and collateral.

Failure ids (``AttestationError.id``):

* ``attest.report_data.size``         report data is not exactly 64 bytes
* ``attest.gramine.unavailable``      no ``/dev/attestation`` (not inside Gramine-SGX)
* ``attest.gramine.not_dcap``         the manifest does not enable DCAP remote attestation
* ``attest.gramine.failed``           Gramine refused a read or write (errno in context)
* ``attest.gramine.report_data_mismatch`` the quote does not carry the written report data
* plus the ``attest.quote.*`` ids of ``parse_quote`` when the returned bytes are not a quote
"""

from __future__ import annotations

import hmac
from pathlib import Path
from typing import Final

from chronoseal.attest._configfs import OsFilesystem, PseudoFilesystem
from chronoseal.attest._dcap import SgxQuote, parse_quote
from chronoseal.errors import AttestationError

__all__ = ["GRAMINE_ATTESTATION_ROOT", "generate_gramine_quote"]

GRAMINE_ATTESTATION_ROOT: Final = Path("/dev/attestation")
REPORT_DATA_SIZE: Final = 64
ATTESTATION_TYPE_DCAP: Final = "dcap"


def _failed(action: str, path: Path, exc: OSError) -> AttestationError:
    return AttestationError(
        f"Gramine refused to {action} {path}: {exc.strerror or exc}",
        id="attest.gramine.failed",
        context={"path": str(path), "errno": exc.errno},
    )


def generate_gramine_quote(
    report_data: bytes,
    *,
    root: Path = GRAMINE_ATTESTATION_ROOT,
    fs: PseudoFilesystem | None = None,
) -> bytes:
    """Return a DCAP quote whose REPORTDATA is ``report_data`` (exactly 64 bytes).

    Raises :class:`AttestationError` with an id from the module docstring.
    """
    if len(report_data) != REPORT_DATA_SIZE:
        raise AttestationError(
            f"report data must be exactly {REPORT_DATA_SIZE} bytes, got {len(report_data)}: "
            "Gramine would silently pad or truncate it",
            id="attest.report_data.size",
            context={"length": len(report_data)},
        )
    report_data = bytes(report_data)
    fs = fs or OsFilesystem()
    type_path = root / "attestation_type"
    if not type_path.exists():
        raise AttestationError(
            f"{type_path} does not exist: not running inside a Gramine SGX enclave",
            id="attest.gramine.unavailable",
            context={"root": str(root)},
        )
    try:
        attestation_type = fs.read(type_path).decode("ascii", "replace").strip()
    except OSError as exc:
        raise _failed("read", type_path, exc) from exc
    if attestation_type != ATTESTATION_TYPE_DCAP:
        raise AttestationError(
            f"Gramine attestation_type is {attestation_type!r}, not 'dcap': set "
            'sgx.remote_attestation = "dcap" in the manifest',
            id="attest.gramine.not_dcap",
            context={"attestation_type": attestation_type},
        )
    user_report_data = root / "user_report_data"
    try:
        fs.write(user_report_data, report_data)
    except OSError as exc:
        raise _failed("write", user_report_data, exc) from exc
    try:
        raw = fs.read(root / "quote")
    except OSError as exc:
        raise _failed("read", root / "quote", exc) from exc
    quote = parse_quote(raw)
    if not isinstance(quote, SgxQuote) or not hmac.compare_digest(
        quote.body.report_data, report_data
    ):
        raise AttestationError(
            "the quote Gramine returned does not carry the report data we wrote",
            id="attest.gramine.report_data_mismatch",
        )
    return raw[: quote.length]
