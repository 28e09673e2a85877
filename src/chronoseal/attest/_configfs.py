"""Produce TDX quotes, SEV-SNP reports and Arm CCA tokens through Linux configfs-tsm, and read
SNP cert tables.

Public surface::

    generate_tsm_report(report_data: bytes, *, root: Path = TSM_REPORT_ROOT,
                        fs: PseudoFilesystem | None = None) -> TsmReport
    parse_snp_cert_table(auxblob: bytes) -> SnpCertTable

The kernel interface (``Documentation/ABI/testing/configfs-tsm-report``): ``mkdir`` an entry
under ``/sys/kernel/config/tsm/report``, write ``inblob``, read ``outblob``, ``provider`` and
(SEV-SNP) ``auxblob``, ``rmdir``. Every write bumps ``generation``, and entries are visible to
every process with access, so one fresh directory is used per request and ``generation`` must
have advanced by exactly our own writes, else another writer raced us and the outblob may not
be ours. ``tdx_guest`` and ``sev_guest`` reject an inblob that is not exactly 64 bytes with
EINVAL, so anything else is refused here first. The outblob's own REPORTDATA is checked
against what was written. File access goes through :class:`PseudoFilesystem` so tests can put
a kernel-like fake behind the same code; production uses plain syscalls.

Failure ids (``AttestationError.id``):

* ``attest.report_data.size``        report data is not exactly 64 bytes
* ``attest.configfs.unavailable``    no configfs-tsm here (no directory, mkdir refused)
* ``attest.configfs.failed``         the kernel refused a write or read (errno in context)
* ``attest.configfs.race``           ``generation`` moved by other than our writes
* ``attest.configfs.unknown_provider`` the provider is not ``tdx_guest``, ``sev_guest`` or
  ``arm_cca_guest``
* ``attest.configfs.report_data_mismatch`` the evidence does not carry the written report data
* ``attest.snp.cert_table_malformed`` the auxblob is not a well-formed GHCB certificate table
"""

from __future__ import annotations

import contextlib
import errno
import hmac
import os
import secrets
import uuid
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Final, Protocol

from chronoseal.attest._arm import cca_realm_challenge
from chronoseal.attest._dcap import parse_quote
from chronoseal.attest._snp import parse_snp_report
from chronoseal.errors import AttestationError

__all__ = [
    "TSM_REPORT_ROOT",
    "OsFilesystem",
    "PseudoFilesystem",
    "SnpCertTable",
    "TsmReport",
    "generate_tsm_report",
    "parse_snp_cert_table",
]

TSM_REPORT_ROOT: Final = Path("/sys/kernel/config/tsm/report")
REPORT_DATA_SIZE: Final = 64
OUTBLOB_MAX: Final = 32 * 1024
PROVIDER_TDX: Final = "tdx_guest"
PROVIDER_SEV: Final = "sev_guest"
#: drivers/virt/coco/arm-cca-guest registers under its module name; the outblob is the CCA
#: token (tag 399) whose realm challenge is the inblob.
PROVIDER_CCA: Final = "arm_cca_guest"
ENTRY_PREFIX: Final = "chronoseal-"

CERT_ENTRY_SIZE: Final = 24
CERT_ENTRY_GUID: Final = 0
CERT_ENTRY_OFFSET: Final = 16
CERT_ENTRY_LENGTH: Final = 20
GUID_VCEK: Final = uuid.UUID("63da758d-e664-4564-adc5-f4b93be8accd")
GUID_VLEK: Final = uuid.UUID("a8074bc2-a25a-483e-aae6-39c045a0b8a1")
GUID_ASK: Final = uuid.UUID("4ab7b379-bbac-4fe4-a02f-05aef327c782")
GUID_ARK: Final = uuid.UUID("c0b406a4-a803-4952-9743-3fb6014cd0ae")


class PseudoFilesystem(Protocol):
    """The four operations a kernel pseudo-filesystem interface needs (one syscall each)."""

    def mkdir(self, path: Path) -> None: ...

    def rmdir(self, path: Path) -> None: ...

    def read(self, path: Path) -> bytes: ...

    def write(self, path: Path, data: bytes) -> None: ...


class OsFilesystem:
    """The real thing: configfs and Gramine's /dev/attestation need whole, single writes."""

    def mkdir(self, path: Path) -> None:
        os.mkdir(path)

    def rmdir(self, path: Path) -> None:
        os.rmdir(path)

    def read(self, path: Path) -> bytes:
        with open(path, "rb") as handle:
            return handle.read()

    def write(self, path: Path, data: bytes) -> None:
        fd = os.open(path, os.O_WRONLY)
        try:
            written = os.write(fd, data)
        finally:
            os.close(fd)
        if written != len(data):
            raise OSError(errno.EIO, f"short write to {path}: {written} of {len(data)} bytes")


@dataclass(frozen=True, slots=True)
class TsmReport:
    """What configfs-tsm returned: ``outblob`` is a DCAP quote (TDX), an SNP report or a CCA
    token."""

    provider: str
    outblob: bytes
    auxblob: bytes
    generation: int


@dataclass(frozen=True, slots=True)
class SnpCertTable:
    """Certificates from an SEV-SNP auxblob, DER-encoded; ``None`` where the host gave none."""

    vcek: bytes | None
    vlek: bytes | None
    ask: bytes | None
    ark: bytes | None
    entries: MappingProxyType[uuid.UUID, bytes]


def _require_report_data(report_data: bytes) -> bytes:
    if len(report_data) != REPORT_DATA_SIZE:
        raise AttestationError(
            f"report data must be exactly {REPORT_DATA_SIZE} bytes, got {len(report_data)}; "
            "hash the binding (e.g. SHA-512) instead of padding it",
            id="attest.report_data.size",
            context={"length": len(report_data)},
        )
    return bytes(report_data)


def _failed(action: str, path: Path, exc: OSError) -> AttestationError:
    return AttestationError(
        f"configfs-tsm refused to {action} {path}: {exc.strerror or exc}",
        id="attest.configfs.failed",
        context={"path": str(path), "errno": exc.errno},
    )


def _read_generation(fs: PseudoFilesystem, entry: Path) -> int:
    try:
        text = fs.read(entry / "generation").decode("ascii").strip()
        return int(text)
    except OSError as exc:
        raise _failed("read", entry / "generation", exc) from exc
    except (UnicodeDecodeError, ValueError) as exc:
        raise AttestationError(
            "configfs-tsm generation is not a number",
            id="attest.configfs.failed",
            context={"path": str(entry / "generation")},
        ) from exc


def _embedded_report_data(provider: str, outblob: bytes) -> bytes:
    if provider == PROVIDER_TDX:
        return parse_quote(outblob).body.report_data
    if provider == PROVIDER_CCA:
        return cca_realm_challenge(outblob)
    return parse_snp_report(outblob).report_data


def _collect(fs: PseudoFilesystem, entry: Path, report_data: bytes) -> TsmReport:
    before = _read_generation(fs, entry)
    try:
        fs.write(entry / "inblob", report_data)
    except OSError as exc:
        raise _failed("write", entry / "inblob", exc) from exc
    try:
        outblob = fs.read(entry / "outblob")
        provider = fs.read(entry / "provider").decode("ascii", "replace").strip()
        auxblob = fs.read(entry / "auxblob") if provider == PROVIDER_SEV else b""
    except OSError as exc:
        raise _failed("read", entry, exc) from exc
    after = _read_generation(fs, entry)
    if after - before != 1:
        raise AttestationError(
            f"configfs-tsm generation went from {before} to {after} around our single write: "
            "another process used the entry, so the outblob may not be ours",
            id="attest.configfs.race",
            context={"before": before, "after": after},
        )
    if provider not in (PROVIDER_TDX, PROVIDER_SEV, PROVIDER_CCA):
        raise AttestationError(
            f"configfs-tsm provider {provider!r} is not supported (tdx_guest, sev_guest or "
            "arm_cca_guest)",
            id="attest.configfs.unknown_provider",
            context={"provider": provider},
        )
    if len(outblob) > OUTBLOB_MAX:
        raise AttestationError(
            f"configfs-tsm outblob is {len(outblob)} bytes, more than the kernel's 32 KiB",
            id="attest.configfs.failed",
            context={"length": len(outblob)},
        )
    if not hmac.compare_digest(_embedded_report_data(provider, outblob), report_data):
        raise AttestationError(
            "the evidence configfs-tsm returned does not carry the report data we wrote",
            id="attest.configfs.report_data_mismatch",
            context={"provider": provider},
        )
    return TsmReport(provider=provider, outblob=outblob, auxblob=auxblob, generation=after)


def generate_tsm_report(
    report_data: bytes,
    *,
    root: Path = TSM_REPORT_ROOT,
    fs: PseudoFilesystem | None = None,
) -> TsmReport:
    """Ask the kernel for a quote/report binding ``report_data`` (exactly 64 bytes).

    Raises :class:`AttestationError` with an id from the module docstring; the configfs
    entry is removed in every case (a failed removal after a refusal is ignored).
    """
    report_data = _require_report_data(report_data)
    fs = fs or OsFilesystem()
    if not root.is_dir():
        raise AttestationError(
            f"configfs-tsm is not available at {root} (no TDX/SEV-SNP guest, or configfs "
            "not mounted)",
            id="attest.configfs.unavailable",
            context={"root": str(root)},
        )
    entry = root / f"{ENTRY_PREFIX}{secrets.token_hex(8)}"
    try:
        fs.mkdir(entry)
    except OSError as exc:
        raise AttestationError(
            f"cannot create a configfs-tsm entry in {root}: {exc.strerror or exc}",
            id="attest.configfs.unavailable",
            context={"root": str(root), "errno": exc.errno},
        ) from exc
    try:
        report = _collect(fs, entry, report_data)
    except AttestationError:
        # The refusal matters more than a leftover entry; the kernel frees it on reboot.
        with contextlib.suppress(OSError):
            fs.rmdir(entry)
        raise
    try:
        fs.rmdir(entry)
    except OSError as exc:
        raise _failed("remove", entry, exc) from exc
    return report


def _cert_table_error(message: str, **context: int) -> AttestationError:
    return AttestationError(message, id="attest.snp.cert_table_malformed", context=context)


def parse_snp_cert_table(auxblob: bytes) -> SnpCertTable:
    """Split a GHCB certificate table (24-byte entries, zero-terminated) into DER blobs."""
    auxblob = bytes(auxblob)
    entries: dict[uuid.UUID, bytes] = {}
    offsets: list[int] = []
    position = 0
    while True:
        header = auxblob[position : position + CERT_ENTRY_SIZE]
        if len(header) < CERT_ENTRY_SIZE:
            if not auxblob:
                break
            raise _cert_table_error(
                "certificate table ends without a zero entry", position=position
            )
        position += CERT_ENTRY_SIZE
        guid_bytes = header[CERT_ENTRY_GUID:CERT_ENTRY_OFFSET]
        offset = int.from_bytes(header[CERT_ENTRY_OFFSET:CERT_ENTRY_LENGTH], "little")
        length = int.from_bytes(header[CERT_ENTRY_LENGTH:CERT_ENTRY_SIZE], "little")
        if not any(guid_bytes) and offset == 0 and length == 0:
            break
        guid = uuid.UUID(bytes=guid_bytes)
        if offset + length > len(auxblob):
            raise _cert_table_error(
                "certificate table entry runs past the blob", offset=offset, length=length
            )
        if guid in entries:
            raise _cert_table_error("certificate table repeats a GUID", position=position)
        entries[guid] = auxblob[offset : offset + length]
        offsets.append(offset)
    for offset in offsets:
        if offset < position:
            raise _cert_table_error(
                "certificate table entry points into the table itself", offset=offset
            )
    return SnpCertTable(
        vcek=entries.get(GUID_VCEK),
        vlek=entries.get(GUID_VLEK),
        ask=entries.get(GUID_ASK),
        ark=entries.get(GUID_ARK),
        entries=MappingProxyType(entries),
    )
