"""Hygon CSV attestation: binary certificates, the SM2 chain HRK -> HSK -> CEK -> PEK, reports.

Public surface::

    parse_ca_certificate(raw: bytes) -> CaCertificate        # HRK, HSK: 832 bytes
    parse_csv_certificate(raw: bytes) -> CsvCertificate      # CEK, PEK: 2,084 bytes
    parse_csv_report(raw: bytes) -> CsvReport                # V1 or V2 (ATTESTATION_EXT)
    verify_csv_chain(hsk_cek: bytes, *, hrk: bytes | None = None) -> CsvChain
    verify_csv_report(raw: bytes, hsk_cek: bytes, *, pek: bytes | None = None,
                      hrk: bytes | None = None) -> VerifiedClaims
    csv_report_wrapper(data: bytes, *, magic: bytes = V1_MAGIC, flags: int = 0) -> bytes

Formats follow openanolis/csv-rs and Trustee's CSV verifier (read, not copied). Certificates
are packed little-endian C structs, not X.509. Every key is an SM2 point whose coordinates
are the first 32 bytes of 72-byte little-endian fields (likewise r and s), and every
signature is SM2 with SM3 where the distinguishing id is the *signer's* user id
(``HYGON-SSD-HRK``, ``-HSK``, ``-CEK``, ``-PEK``), verified through libcrypto
(:mod:`chronoseal.attest._sm2`). The chain: the HRK (Hygon Root Key, self-signed) is pinned
by the SHA-256 of its 832 bytes (``roots/hygon_hrk.cert``); it signs the HSK; the HSK signs
the chip's CEK (HSK || CEK is what Hygon's key distribution service serves per chip serial,
offline collateral here); the CEK signs the PEK, which travels in the report; the PEK signs
the report. Issuer links are checked by key id as well: HSK.sid == HRK.kid, CEK.sid ==
HSK.kid. A PEK's second signature slot holds the platform owner's (OCA) signature; it is
parsed but not verified, since nothing here holds an owner OCA to verify it against, and
nothing the appraisal trusts depends on it.

Reports are the 4,096-byte page ``/dev/csv-guest`` fills, after the guest restored the
PEK and serial (as csv-rs does), optionally behind the 20-byte wrapper header (16-byte
magic, u32 flags) that tells V1 from V2: all-zero magic, or ``ATTESTATION_EXT``, with flags
0 is V1 (csv-rs ignores the flags under a zero magic; here they must be 0, so that a report
has one encoding); ``ATTESTATION_EXT`` with flags 1 is V2. V1 signs only its first 180 bytes, and
its fields are XOR-masked with the 4-byte ANONCE, which is *not* signed: changing ANONCE
changes every unmasked field by the same pattern, so V1 claims are meaningful only together
with the report-data binding and measurement checks (which the appraisal makes; a verdict
without them is at best a warning). V2 signs its first 1,024 bytes, unmasked, including
RTMR0..4. The chip serial is not signed by anything: it names which chip's HSK/CEK to use,
and it is right only in that the CEK found for it signed the PEK.

Failure ids (``AttestationError.id``):

* ``attest.csv.cert_malformed``        a certificate of the wrong size, unsigned bytes not zero
* ``attest.report.malformed``          not a 4,096-byte report (or wrapper), padding not zero
* ``attest.report.unsupported_version`` unknown wrapper magic/flags, or not SM2 signed by a PEK
* ``attest.chain.untrusted_root``      the HRK is not the pinned Hygon root
* ``attest.chain.invalid``             a chain signature, usage, user id or key id is wrong
* ``attest.csv.cek_mismatch``          the CEK did not sign this PEK (another chip's CEK)
* ``attest.csv.pek_mismatch``          a PEK given beside the report differs from the report's
* ``attest.signature.invalid``         the report is not signed by the PEK
* ``attest.collateral.missing``        no HSK/CEK for the chip
* ``attest.sm2.unavailable``           no OpenSSL 3 libcrypto with SM2 here
"""

from __future__ import annotations

import hashlib
import hmac
import struct
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Final

from chronoseal.attest._claims import VerifiedClaims
from chronoseal.attest._sm2 import sm2_verify
from chronoseal.errors import AttestationError
from chronoseal.spec import Tee

__all__ = [
    "CA_CERT_SIZE",
    "CSV_CERT_SIZE",
    "EXT_MAGIC",
    "REPORT_SIZE",
    "TCB_STATUS_CSV_CHAIN_VERIFIED",
    "V1_MAGIC",
    "WARN_TCB_NOT_CHECKED",
    "CaCertificate",
    "CsvCertificate",
    "CsvChain",
    "CsvPolicy",
    "CsvReport",
    "csv_report_wrapper",
    "parse_ca_certificate",
    "parse_csv_certificate",
    "parse_csv_report",
    "verify_csv_chain",
    "verify_csv_report",
]

CA_CERT_SIZE: Final = 832
CSV_CERT_SIZE: Final = 2084
HSK_CEK_SIZE: Final = CA_CERT_SIZE + CSV_CERT_SIZE
REPORT_SIZE: Final = 4096
WRAPPER_HEADER: Final = 20
V1_MAGIC: Final = bytes(16)
EXT_MAGIC: Final = b"ATTESTATION_EXT\x00"

FIELD: Final = 72  # key coordinates and signature scalars: 72-byte little-endian fields
COORD: Final = 32  # of which SM2 uses the first 32
SIG_SIZE: Final = 2 * FIELD
CURVE_SM2_256: Final = 3
ALGO_SM2_SA: Final = 4

USAGE_HRK: Final = 0x0000
USAGE_HSK: Final = 0x0013
USAGE_OCA: Final = 0x1001
USAGE_PEK: Final = 0x1002
USAGE_CEK: Final = 0x1004
USER_IDS: Final = MappingProxyType(
    {
        USAGE_HRK: b"HYGON-SSD-HRK",
        USAGE_HSK: b"HYGON-SSD-HSK",
        USAGE_CEK: b"HYGON-SSD-CEK",
        USAGE_PEK: b"HYGON-SSD-PEK",
        USAGE_OCA: b"HYGON-SSD-OCA",
    }
)

# CA certificate (HRK, HSK): 576-byte signed body, signature, 112 reserved bytes.
CA_KID: Final = slice(4, 20)
CA_SID: Final = slice(20, 36)
CA_USAGE: Final = 36
CA_CURVE: Final = 64
CA_X: Final = 68
CA_Y: Final = 140
CA_UID_SIZE: Final = 212
CA_UID: Final = 214
CA_BODY: Final = 576
# CSV certificate (CEK, PEK): 1,044-byte signed body, two 520-byte signature slots.
CSV_FIRMWARE: Final = 4
CSV_USAGE: Final = 8
CSV_ALGO: Final = 12
CSV_CURVE: Final = 16
CSV_X: Final = 20
CSV_Y: Final = 92
CSV_UID_SIZE: Final = 164
CSV_UID: Final = 166
CSV_SID: Final = slice(420, 436)
CSV_BODY: Final = 1044
SLOT_SIZE: Final = 520
UID_FIELD: Final = 254

# Report TEE info, V1 (0x150 bytes) and V2 (0x490 bytes); the signer block follows it.
R_USER_PUBKEY_DIGEST: Final = slice(0, 32)
R_VM_ID: Final = slice(32, 48)
R_VM_VERSION: Final = slice(48, 64)
R_REPORT_DATA: Final = slice(64, 128)
R_MNONCE: Final = slice(128, 144)
R_MEASURE: Final = slice(144, 176)
R_POLICY: Final = 176
R_SIG_USAGE: Final = 180
R_SIG_ALGO: Final = 184
V1_ANONCE: Final = 188
V1_SIGNED: Final = 180
V1_SIG: Final = 192
V1_TEE_INFO: Final = 0x150
V2_BUILD: Final = 188
V2_RTMR_VERSION: Final = 192
V2_RTMR0: Final = 208
V2_SIGNED: Final = 1024
V2_SIG: Final = 1024
V2_TEE_INFO: Final = 0x490
RTMR_SIZE: Final = 32
RTMR_COUNT: Final = 5
SIGNER_SIZE: Final = CSV_CERT_SIZE + 64 + 32 + 32
SERIAL_SIZE: Final = 64

POLICY_NODBG: Final = 1 << 0
POLICY_NOKS: Final = 1 << 1
POLICY_ES: Final = 1 << 2
POLICY_NOSEND: Final = 1 << 3
POLICY_DOMAIN: Final = 1 << 4
POLICY_CSV: Final = 1 << 5
POLICY_CSV3: Final = 1 << 6

ROOTS_DIR: Final = Path(__file__).with_name("roots")
HRK_RESOURCE: Final = "hygon_hrk.cert"
HRK_SHA256: Final = "296efa97580464aca0ab5eefe42199ee05862182508d1629f29cf4dc175b10cd"
"""SHA-256 of the 832-byte HRK (csv-rs ``src/certs/builtin/hrk.cert`` = Trustee's copy)."""

TCB_STATUS_CSV_CHAIN_VERIFIED: Final = "CsvChainVerified"
"""The report chains to Hygon's root: what was checked, not that the firmware is current."""
WARN_TCB_NOT_CHECKED: Final = "attest.csv.firmware_not_checked_against_latest"


def _malformed(message: str, **context: object) -> AttestationError:
    return AttestationError(message, id="attest.csv.cert_malformed", context=context)


def _chain(message: str, **context: object) -> AttestationError:
    return AttestationError(message, id="attest.chain.invalid", context=context)


def _u16(raw: bytes, offset: int) -> int:
    return int(struct.unpack_from("<H", raw, offset)[0])


def _u32(raw: bytes, offset: int) -> int:
    return int(struct.unpack_from("<I", raw, offset)[0])


def _le_scalar(field: bytes, what: str) -> bytes:
    """The big-endian 32-byte value of a 72-byte little-endian field whose tail must be zero."""
    if any(field[COORD:FIELD]):
        raise _malformed(f"{what} has non-zero bytes beyond the 32 SM2 uses")
    return field[:COORD][::-1]


def _signature(raw: bytes, offset: int, what: str) -> bytes:
    return _le_scalar(raw[offset : offset + FIELD], f"{what} r") + _le_scalar(
        raw[offset + FIELD : offset + SIG_SIZE], f"{what} s"
    )


def _user_id(raw: bytes, size_offset: int, uid_offset: int, what: str) -> bytes:
    size = _u16(raw, size_offset)
    if size > UID_FIELD:
        raise _malformed(f"{what} user id length {size} exceeds its {UID_FIELD}-byte field")
    return raw[uid_offset : uid_offset + size]


@dataclass(frozen=True, slots=True)
class CaCertificate:
    """An HRK or HSK certificate; ``body`` is the 576 signed bytes."""

    raw: bytes
    version: int
    key_id: bytes
    signer_id: bytes
    usage: int
    public_xy: bytes
    user_id: bytes
    body: bytes
    signature: bytes


@dataclass(frozen=True, slots=True)
class CsvSignature:
    """One signature slot of a CEK/PEK certificate."""

    usage: int
    algo: int
    signature: bytes


@dataclass(frozen=True, slots=True)
class CsvCertificate:
    """A CEK or PEK certificate; ``body`` is the 1,044 signed bytes."""

    raw: bytes
    version: int
    firmware: tuple[int, int]
    usage: int
    algo: int
    public_xy: bytes
    user_id: bytes
    signer_id: bytes
    body: bytes
    signatures: tuple[CsvSignature, ...]

    def signature_by(self, usage: int) -> bytes | None:
        for slot in self.signatures:
            if slot.usage == usage and slot.algo == ALGO_SM2_SA:
                return slot.signature
        return None


def parse_ca_certificate(raw: bytes) -> CaCertificate:
    """Parse an 832-byte HRK/HSK certificate (no signature check)."""
    raw = bytes(raw)
    if len(raw) != CA_CERT_SIZE:
        raise _malformed(
            f"an HRK/HSK certificate is {CA_CERT_SIZE} bytes, got {len(raw)}", length=len(raw)
        )
    if _u32(raw, CA_CURVE) != CURVE_SM2_256:
        raise _malformed("the certificate key is not on the SM2 curve")
    if any(raw[CA_BODY + SIG_SIZE :]):
        raise _malformed("the certificate's reserved tail is not zero")
    return CaCertificate(
        raw=raw,
        version=_u32(raw, 0),
        key_id=raw[CA_KID],
        signer_id=raw[CA_SID],
        usage=_u32(raw, CA_USAGE),
        public_xy=_le_scalar(raw[CA_X : CA_X + FIELD], "key x")
        + _le_scalar(raw[CA_Y : CA_Y + FIELD], "key y"),
        user_id=_user_id(raw, CA_UID_SIZE, CA_UID, "certificate"),
        body=raw[:CA_BODY],
        signature=_signature(raw, CA_BODY, "signature"),
    )


def parse_csv_certificate(raw: bytes) -> CsvCertificate:
    """Parse a 2,084-byte CEK/PEK certificate (no signature check)."""
    raw = bytes(raw)
    if len(raw) != CSV_CERT_SIZE:
        raise _malformed(
            f"a CEK/PEK certificate is {CSV_CERT_SIZE} bytes, got {len(raw)}", length=len(raw)
        )
    if _u32(raw, CSV_CURVE) != CURVE_SM2_256:
        raise _malformed("the certificate key is not on the SM2 curve")
    slots = []
    for index in range(2):
        offset = CSV_BODY + index * SLOT_SIZE
        if any(raw[offset + 8 + SIG_SIZE : offset + SLOT_SIZE]):
            raise _malformed(f"signature slot {index}'s reserved bytes are not zero")
        slots.append(
            CsvSignature(
                usage=_u32(raw, offset),
                algo=_u32(raw, offset + 4),
                signature=_signature(raw, offset + 8, f"signature {index}"),
            )
        )
    return CsvCertificate(
        raw=raw,
        version=_u32(raw, 0),
        firmware=(raw[CSV_FIRMWARE], raw[CSV_FIRMWARE + 1]),
        usage=_u32(raw, CSV_USAGE),
        algo=_u32(raw, CSV_ALGO),
        public_xy=_le_scalar(raw[CSV_X : CSV_X + FIELD], "key x")
        + _le_scalar(raw[CSV_Y : CSV_Y + FIELD], "key y"),
        user_id=_user_id(raw, CSV_UID_SIZE, CSV_UID, "certificate"),
        signer_id=raw[CSV_SID],
        body=raw[:CSV_BODY],
        signatures=tuple(slots),
    )


def _expect_role(user_id: bytes, usage: int, expected: int, role: str) -> None:
    if usage != expected:
        raise _chain(
            f"the {role} certificate has usage {usage:#x}, not {expected:#x}",
            role=role,
            usage=usage,
        )
    if user_id != USER_IDS[expected]:
        raise _chain(
            f"the {role} certificate's user id is {user_id!r}, not {USER_IDS[expected]!r}",
            role=role,
        )


def _verified(public_xy: bytes, signature: bytes, body: bytes, user_id: bytes) -> bool:
    return sm2_verify(public_xy, signature, body, user_id=user_id)


@dataclass(frozen=True, slots=True)
class CsvChain:
    """An HSK and CEK verified up to the HRK."""

    hrk: CaCertificate
    hsk: CaCertificate
    cek: CsvCertificate


def _pinned_hrk() -> bytes:
    return (ROOTS_DIR / HRK_RESOURCE).read_bytes()


def _check_hrk(raw: bytes, *, pinned: bool) -> CaCertificate:
    if pinned and not hmac.compare_digest(hashlib.sha256(raw).hexdigest(), HRK_SHA256):
        raise AttestationError(
            "the HRK is not Hygon's pinned root key",
            id="attest.chain.untrusted_root",
            context={"hrk_sha256": hashlib.sha256(raw).hexdigest()},
        )
    hrk = parse_ca_certificate(raw)
    _expect_role(hrk.user_id, hrk.usage, USAGE_HRK, "HRK")
    if hrk.signer_id != hrk.key_id or not _verified(
        hrk.public_xy, hrk.signature, hrk.body, hrk.user_id
    ):
        raise _chain("the HRK is not self-signed")
    return hrk


def verify_csv_chain(hsk_cek: bytes, *, hrk: bytes | None = None) -> CsvChain:
    """Check HRK -> HSK -> CEK for ``hsk_cek`` (HSK || CEK, 2,916 bytes, as Hygon serves it).

    ``hrk`` replaces the pinned root only for chains built in tests; the backend and CLI
    always use the pinned one.
    """
    hsk_cek = bytes(hsk_cek)
    if len(hsk_cek) != HSK_CEK_SIZE:
        raise _malformed(
            f"HSK || CEK is {HSK_CEK_SIZE} bytes, got {len(hsk_cek)}", length=len(hsk_cek)
        )
    root = _check_hrk(_pinned_hrk() if hrk is None else hrk, pinned=hrk is None)
    hsk = parse_ca_certificate(hsk_cek[:CA_CERT_SIZE])
    cek = parse_csv_certificate(hsk_cek[CA_CERT_SIZE:])
    _expect_role(hsk.user_id, hsk.usage, USAGE_HSK, "HSK")
    _expect_role(cek.user_id, cek.usage, USAGE_CEK, "CEK")
    if not hmac.compare_digest(hsk.signer_id, root.key_id):
        raise _chain("the HSK names another issuer than the HRK (key id differs)")
    if not _verified(root.public_xy, hsk.signature, hsk.body, root.user_id):
        raise _chain("the HSK is not signed by the HRK")
    if cek.algo != ALGO_SM2_SA or not hmac.compare_digest(cek.signer_id, hsk.key_id):
        raise _chain("the CEK names another issuer than the HSK, or is not an SM2 key")
    signature = cek.signature_by(USAGE_HSK)
    if signature is None or not _verified(hsk.public_xy, signature, cek.body, hsk.user_id):
        raise _chain("the CEK is not signed by the HSK")
    return CsvChain(hrk=root, hsk=hsk, cek=cek)


@dataclass(frozen=True, slots=True)
class CsvPolicy:
    """The guest policy the firmware enforces (csv-rs GuestPolicy bit layout)."""

    value: int

    @property
    def debug(self) -> bool:
        """NODBG clear: the host may debug the guest (read and write its memory)."""
        return not self.value & POLICY_NODBG

    @property
    def migratable(self) -> bool:
        """NOSEND clear: the host may send the guest (its memory key) to another platform."""
        return not self.value & POLICY_NOSEND

    def names(self) -> str:
        bits = (
            (POLICY_NODBG, "nodbg"),
            (POLICY_NOKS, "noks"),
            (POLICY_ES, "es"),
            (POLICY_NOSEND, "nosend"),
            (POLICY_DOMAIN, "domain"),
            (POLICY_CSV, "csv"),
            (POLICY_CSV3, "csv3"),
        )
        return ",".join(name for bit, name in bits if self.value & bit) or "none"


@dataclass(frozen=True, slots=True)
class CsvReport:
    """A CSV attestation report with its fields unmasked; ``signed`` is what the PEK signed."""

    version: int
    user_pubkey_digest: bytes
    vm_id: bytes
    vm_version: bytes
    report_data: bytes
    mnonce: bytes
    measure: bytes
    policy: CsvPolicy
    sig_usage: int
    sig_algo: int
    anonce: int
    build: int
    rtmr_version: int
    rtmrs: tuple[bytes, ...]
    signed: bytes
    signature: bytes
    pek: bytes
    serial: bytes

    @property
    def chip_id(self) -> str:
        return self.serial.rstrip(b"\x00").decode("ascii", "replace")


def csv_report_wrapper(data: bytes, *, magic: bytes = V1_MAGIC, flags: int = 0) -> bytes:
    """The canonical evidence bytes: magic (16) || flags (u32 LE) || the 4,096-byte report."""
    if len(data) != REPORT_SIZE or len(magic) != 16:
        raise AttestationError(
            f"a CSV report is {REPORT_SIZE} bytes behind a 16-byte magic",
            id="attest.report.malformed",
        )
    return magic + struct.pack("<I", flags) + data


def _unmask(data: bytes, anonce: bytes) -> bytes:
    return bytes(byte ^ anonce[index % 4] for index, byte in enumerate(data))


def parse_csv_report(raw: bytes) -> CsvReport:
    """Parse a report (4,096 bytes: V1; or the 4,116-byte wrapper: V1 or V2)."""
    raw = bytes(raw)
    if len(raw) == REPORT_SIZE:
        magic, flags, data = V1_MAGIC, 0, raw
    elif len(raw) == REPORT_SIZE + WRAPPER_HEADER:
        magic, flags, data = raw[:16], _u32(raw, 16), raw[WRAPPER_HEADER:]
    else:
        raise AttestationError(
            f"a CSV report is {REPORT_SIZE} bytes (or {REPORT_SIZE + WRAPPER_HEADER} with its "
            f"header), got {len(raw)}",
            id="attest.report.malformed",
            context={"length": len(raw)},
        )
    if flags == 0 and magic in (V1_MAGIC, EXT_MAGIC):
        version, info_size, signed_size, sig_offset = 1, V1_TEE_INFO, V1_SIGNED, V1_SIG
        anonce = data[V1_ANONCE : V1_ANONCE + 4]
    elif magic == EXT_MAGIC and flags == 1:
        version, info_size, signed_size, sig_offset = 2, V2_TEE_INFO, V2_SIGNED, V2_SIG
        anonce = bytes(4)
    else:
        raise AttestationError(
            f"unknown CSV report header (magic {magic!r}, flags {flags})",
            id="attest.report.unsupported_version",
            context={"flags": flags},
        )
    signer = data[info_size : info_size + SIGNER_SIZE]
    if any(data[info_size + SIGNER_SIZE :]):
        # Outside the signature and the signer block: non-zero bytes would give byte-different
        # copies of one report, and evidence is identified by its hash.
        raise AttestationError("the CSV report's padding is not zero", id="attest.report.malformed")
    try:
        signature = _signature(data, sig_offset, "report signature")
    except AttestationError as exc:
        raise AttestationError(exc.message, id="attest.report.malformed") from exc

    def field(part: slice) -> bytes:
        return _unmask(data[part], anonce)

    def word(offset: int) -> int:
        return _u32(_unmask(data[offset : offset + 4], anonce), 0)

    rtmrs: tuple[bytes, ...] = ()
    build = rtmr_version = 0
    if version == 2:
        build = _u32(data, V2_BUILD)
        rtmr_version = _u16(data, V2_RTMR_VERSION)
        rtmrs = tuple(
            data[V2_RTMR0 + i * RTMR_SIZE : V2_RTMR0 + (i + 1) * RTMR_SIZE]
            for i in range(RTMR_COUNT)
        )
    return CsvReport(
        version=version,
        user_pubkey_digest=field(R_USER_PUBKEY_DIGEST),
        vm_id=field(R_VM_ID),
        vm_version=field(R_VM_VERSION),
        report_data=field(R_REPORT_DATA),
        mnonce=field(R_MNONCE),
        measure=field(R_MEASURE),
        policy=CsvPolicy(word(R_POLICY)),
        sig_usage=word(R_SIG_USAGE),
        sig_algo=word(R_SIG_ALGO),
        anonce=_u32(anonce, 0),
        build=build,
        rtmr_version=rtmr_version,
        rtmrs=rtmrs,
        signed=data[:signed_size],
        signature=signature,
        pek=signer[:CSV_CERT_SIZE],
        serial=signer[CSV_CERT_SIZE : CSV_CERT_SIZE + SERIAL_SIZE],
    )


def verify_csv_report(
    raw: bytes,
    hsk_cek: bytes,
    *,
    pek: bytes | None = None,
    hrk: bytes | None = None,
) -> VerifiedClaims:
    """Verify a report and its chain; return its claims or raise :class:`AttestationError`.

    ``pek`` is the PEK a wrapper (e.g. Trustee's JSON evidence) carries beside the report;
    it must be the report's own. ``hrk`` is for chains built in tests (see
    :func:`verify_csv_chain`).
    """
    report = parse_csv_report(raw)
    if pek is not None and not hmac.compare_digest(bytes(pek), report.pek):
        raise AttestationError(
            "the PEK given beside the report is not the report's own PEK",
            id="attest.csv.pek_mismatch",
        )
    if report.sig_usage != USAGE_PEK or report.sig_algo != ALGO_SM2_SA:
        raise AttestationError(
            f"the report says it is signed by usage {report.sig_usage:#x} with algorithm "
            f"{report.sig_algo}; only PEK ({USAGE_PEK:#x}) SM2 signatures exist",
            id="attest.report.unsupported_version",
            context={"sig_usage": report.sig_usage, "sig_algo": report.sig_algo},
        )
    chain = verify_csv_chain(hsk_cek, hrk=hrk)
    try:
        certificate = parse_csv_certificate(report.pek)
    except AttestationError as exc:
        raise AttestationError(
            f"the report's PEK is malformed: {exc.message}", id="attest.report.malformed"
        ) from exc
    _expect_role(certificate.user_id, certificate.usage, USAGE_PEK, "PEK")
    if certificate.algo != ALGO_SM2_SA:
        raise _chain("the PEK is not an SM2 signing key")
    by_cek = certificate.signature_by(USAGE_CEK)
    if by_cek is None or not _verified(
        chain.cek.public_xy, by_cek, certificate.body, chain.cek.user_id
    ):
        raise AttestationError(
            f"the CEK given for chip {report.chip_id!r} did not sign the report's PEK: the "
            "HSK/CEK are another chip's (fetch them for this chip's serial), or the PEK was "
            "altered",
            id="attest.csv.cek_mismatch",
            context={"chip_id": report.chip_id},
        )
    if not _verified(certificate.public_xy, report.signature, report.signed, certificate.user_id):
        raise AttestationError(
            "the CSV report signature does not verify under its PEK",
            id="attest.signature.invalid",
        )
    return _claims(report, certificate)


def _claims(report: CsvReport, pek: CsvCertificate) -> VerifiedClaims:
    measurements = {"measure": report.measure}
    measurements.update({f"rtmr{index}": value for index, value in enumerate(report.rtmrs)})
    measurements["user_pubkey_digest"] = report.user_pubkey_digest
    platform = {
        "report_version": str(report.version),
        "policy": f"0x{report.policy.value:08x} ({report.policy.names()})",
        "chip_id": report.chip_id,
        "vm_id": report.vm_id.hex(),
        "vm_version": report.vm_version.hex(),
        "firmware": f"{pek.firmware[0]}.{pek.firmware[1]}",
        "signing_key": "PEK",
    }
    if report.version == 2:
        platform["build"] = str(report.build)
        platform["rtmr_version"] = str(report.rtmr_version)
    else:
        platform["anonce"] = f"0x{report.anonce:08x}"
    return VerifiedClaims(
        tee=Tee.CSV,
        measurements=MappingProxyType(measurements),
        report_data=report.report_data,
        debug=report.policy.debug,
        tcb_status=TCB_STATUS_CSV_CHAIN_VERIFIED,
        migratable=report.policy.migratable,
        platform=MappingProxyType(platform),
        warnings=MappingProxyType(
            {
                WARN_TCB_NOT_CHECKED: (
                    f"the report chains to Hygon's root through chip {report.chip_id!r}'s "
                    f"CEK; its firmware ({pek.firmware[0]}.{pek.firmware[1]}) was not compared "
                    "with Hygon's latest (no offline source for it)"
                )
            }
        ),
    )
