"""Produce Hygon CSV attestation reports inside a CSV guest through ``/dev/csv-guest``.

Public surface::

    generate_csv_report(report_data: bytes, *, device: CsvGuestDevice | None = None,
                        mnonce: bytes | None = None) -> bytes       # the wrapper bytes
    CsvGuestAttester(component, *, path=CSV_GUEST_DEVICE, device=None)

The kernel interface (csv-guest driver, as csv-rs drives it): ``_IOWR('D', 1, {u64 addr;
u32 len})`` on a 4,096-byte page whose first 112 bytes are the request: REPORT_DATA (64),
MNONCE (16), SM3(REPORT_DATA || MNONCE) (32). The firmware overwrites the page with the V1
report: TEE info (fields XOR-masked with ANONCE, first 180 bytes signed by the PEK), then the
signer block: the PEK certificate and chip serial (masked) and an HMAC-SM3 over them keyed
with MNONCE. That MAC is what tells the guest the page came from the firmware answering *its*
request (the host can read the page but not the MNONCE the guest chose); it is checked here,
then the PEK and serial are unmasked and the reserved bytes zeroed, giving the canonical form
the verifier takes (the same form Trustee's evidence carries). Extended (V2) reports need the
RTMR support probe and are not requested yet.

File access goes through :class:`CsvGuestDevice` so tests put a firmware fake behind the same
code; production uses ``fcntl.ioctl``.

Failure ids (``AttestationError.id``):

* ``attest.report_data.size``           report data is not exactly 64 bytes
* ``attest.csv_guest.unavailable``      no ``/dev/csv-guest`` (not a CSV guest)
* ``attest.csv_guest.failed``           the ioctl failed (errno in context)
* ``attest.csv_guest.mac_invalid``      the signer block's HMAC-SM3 does not verify with our MNONCE
* ``attest.csv_guest.report_data_mismatch`` the report does not carry our report data or MNONCE
"""

from __future__ import annotations

import ctypes
import fcntl
import hmac
import os
import re
import secrets
import struct
from pathlib import Path
from typing import Final, Protocol

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives import hmac as crypto_hmac

from chronoseal.attest._csv import (
    CSV_CERT_SIZE,
    R_MNONCE,
    R_REPORT_DATA,
    REPORT_SIZE,
    SERIAL_SIZE,
    V1_ANONCE,
    V1_TEE_INFO,
    csv_report_wrapper,
    parse_csv_report,
)
from chronoseal.attest._evidence import Evidence
from chronoseal.errors import AttestationError
from chronoseal.spec import Component, Tee

__all__ = [
    "CSV_GET_REPORT",
    "CSV_GUEST_DEVICE",
    "HSK_CEK_DIR",
    "CsvGuestAttester",
    "CsvGuestDevice",
    "OsCsvGuest",
    "csv_request",
    "generate_csv_report",
]

CSV_GUEST_DEVICE: Final = Path("/dev/csv-guest")
HSK_CEK_DIR: Final = Path("/opt/hygon/csv/hsk_cek")
_CHIP_ID: Final = re.compile(r"[A-Za-z0-9]{1,64}")
_IOC_READ_WRITE: Final = 3
_REQUEST_STRUCT: Final = struct.Struct("<QI4x")  # {u64 addr; u32 len;} with C padding
CSV_GET_REPORT: Final = (
    (_IOC_READ_WRITE << 30) | (_REQUEST_STRUCT.size << 16) | (ord("D") << 8) | 0x1
)
REPORT_DATA_SIZE: Final = 64
MNONCE_SIZE: Final = 16
SIGNER: Final = V1_TEE_INFO
SIGNER_MASKED_END: Final = SIGNER + CSV_CERT_SIZE + SERIAL_SIZE
SIGNER_RESERVED_END: Final = SIGNER_MASKED_END + 32
SIGNER_MAC_END: Final = SIGNER_RESERVED_END + 32


class CsvGuestDevice(Protocol):
    """One call: hand the firmware the 4,096-byte page (request in, report out)."""

    def get_report(self, page: bytearray) -> None: ...


class OsCsvGuest:
    """The real device: ``CSV_GET_REPORT`` on ``/dev/csv-guest``."""

    def __init__(self, path: Path = CSV_GUEST_DEVICE) -> None:
        self._path = path

    def get_report(self, page: bytearray) -> None:
        buffer = (ctypes.c_char * len(page)).from_buffer(page)
        request = bytearray(_REQUEST_STRUCT.pack(ctypes.addressof(buffer), len(page)))
        fd = os.open(self._path, os.O_RDWR)
        try:
            fcntl.ioctl(fd, CSV_GET_REPORT, request, True)
        finally:
            os.close(fd)
            del buffer


def _sm3(data: bytes) -> bytes:
    digest = hashes.Hash(hashes.SM3())
    digest.update(data)
    return digest.finalize()


def _mask(data: bytes, anonce: bytes) -> bytes:
    return bytes(byte ^ anonce[index % 4] for index, byte in enumerate(data))


def csv_request(report_data: bytes, mnonce: bytes) -> bytes:
    """The 112-byte request: REPORT_DATA, MNONCE, SM3 of both (the firmware checks the hash)."""
    return report_data + mnonce + _sm3(report_data + mnonce)


def generate_csv_report(
    report_data: bytes,
    *,
    device: CsvGuestDevice | None = None,
    mnonce: bytes | None = None,
) -> bytes:
    """Ask the firmware for a V1 report binding ``report_data``; return the wrapper bytes."""
    if len(report_data) != REPORT_DATA_SIZE:
        raise AttestationError(
            f"report data must be exactly {REPORT_DATA_SIZE} bytes, got {len(report_data)}",
            id="attest.report_data.size",
            context={"length": len(report_data)},
        )
    if device is None:
        if not CSV_GUEST_DEVICE.exists():
            raise AttestationError(
                f"{CSV_GUEST_DEVICE} does not exist: this is not a Hygon CSV guest",
                id="attest.csv_guest.unavailable",
            )
        device = OsCsvGuest()
    nonce = secrets.token_bytes(MNONCE_SIZE) if mnonce is None else bytes(mnonce)
    page = bytearray(REPORT_SIZE)
    request = csv_request(bytes(report_data), nonce)
    page[: len(request)] = request
    try:
        device.get_report(page)
    except OSError as exc:
        raise AttestationError(
            f"the CSV_GET_REPORT ioctl failed: {exc.strerror or exc}",
            id="attest.csv_guest.failed",
            context={"errno": exc.errno},
        ) from exc
    anonce = bytes(page[V1_ANONCE : V1_ANONCE + 4])
    masked_mnonce = bytes(page[R_MNONCE])
    if not hmac.compare_digest(_mask(masked_mnonce, anonce), nonce) or not hmac.compare_digest(
        _mask(bytes(page[R_REPORT_DATA]), anonce), report_data
    ):
        raise AttestationError(
            "the CSV report does not carry the report data and MNONCE we sent",
            id="attest.csv_guest.report_data_mismatch",
        )
    mac = crypto_hmac.HMAC(nonce, hashes.SM3())
    mac.update(bytes(page[SIGNER:SIGNER_RESERVED_END]))
    if not hmac.compare_digest(mac.finalize(), bytes(page[SIGNER_RESERVED_END:SIGNER_MAC_END])):
        raise AttestationError(
            "the CSV report's signer block fails its HMAC-SM3 under our MNONCE: it was not "
            "produced by the firmware for this request",
            id="attest.csv_guest.mac_invalid",
        )
    page[SIGNER:SIGNER_MASKED_END] = _mask(bytes(page[SIGNER:SIGNER_MASKED_END]), anonce)
    page[SIGNER_MASKED_END:SIGNER_RESERVED_END] = bytes(32)
    return csv_report_wrapper(bytes(page))


class CsvGuestAttester:
    """A component inside a Hygon CSV guest.

    When the host provisioned this chip's HSK || CEK where Trustee's verifier looks for
    them offline (``/opt/hygon/csv/hsk_cek/<chip serial>/hsk_cek.cert``), they travel with
    the evidence (as SEV-SNP's VCEK does in the auxblob); otherwise the verifier's
    collateral provider must fetch them from Hygon's KDS. Either way the verifier checks
    them against the pinned HRK: carrying them gives a host nothing to forge.
    """

    def __init__(
        self,
        component: Component,
        *,
        device: CsvGuestDevice | None = None,
        hsk_cek_dir: Path | None = None,
    ) -> None:
        self._component = component
        self._device = device
        self._hsk_cek_dir = HSK_CEK_DIR if hsk_cek_dir is None else hsk_cek_dir

    @property
    def tee(self) -> Tee:
        return Tee.CSV

    @property
    def component(self) -> Component:
        return self._component

    def attest(self, report_data: bytes) -> Evidence:
        report = generate_csv_report(report_data, device=self._device)
        chip = parse_csv_report(report).chip_id
        certificates: tuple[bytes, ...] = ()
        # The serial is unsigned: use it as a path component only when it is plainly one.
        if _CHIP_ID.fullmatch(chip):
            cached = self._hsk_cek_dir / chip / "hsk_cek.cert"
            if cached.is_file():
                certificates = (cached.read_bytes(),)
        return Evidence(Tee.CSV, self._component, report, certificates)
