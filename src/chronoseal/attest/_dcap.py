"""Intel SGX and TDX DCAP quotes (v3, v4, v5): parse them and verify them offline.

Public surface::

    parse_quote(raw: bytes) -> SgxQuote | TdxQuote
    verify_dcap_quote(raw: bytes, collateral: bytes | Mapping[str, Any], *, now: datetime)
        -> VerifiedClaims

Parsing is ours (typed frozen dataclasses, named offsets, ``signature_data_len`` honoured so
padding after the signature data is ignored). Intel's certificate chain, CRL, TCB-info and
QE-identity logic is delegated to the ``dcap-qvl`` wheel, called with an injected ``now`` and
the pinned Intel SGX Root CA; its errors are mapped to the stable ids below. Claims are then
read from our own parsed structure. No network access happens here: the caller supplies the
collateral (the JSON shape ``dcap-qvl`` and ``../shared/vectors`` use).

Failure ids (``AttestationError.id``):

* ``attest.quote.malformed``           bytes are not a DCAP quote (truncated, bad sizes)
* ``attest.quote.unsupported_version`` version not 3/4/5, or an unknown v5 body type
* ``attest.quote.unsupported_key_type`` attestation key type is not ECDSA-256-with-P-256
* ``attest.quote.unknown_vendor``      the QE vendor id is not Intel's
* ``attest.signature.invalid``         the quote signature does not verify (body or sig altered)
* ``attest.qe.signature_invalid``      the QE report is not signed by the PCK key
* ``attest.qe.binding_invalid``        the QE report does not bind the attestation key
* ``attest.qe.identity_mismatch``      the QE is not the one Intel's QE identity describes
* ``attest.chain.invalid``             no usable PCK chain, or it does not chain up
* ``attest.chain.untrusted_root``      the chain ends in a root other than the pinned Intel root
* ``attest.collateral.invalid``        collateral unreadable, badly signed or for another FMSPC
* ``attest.collateral.expired``        ``now`` is outside a certificate, CRL or collateral window
* ``attest.crl.revoked``               a certificate in the chain is revoked
* ``attest.tcb.no_matching_level``     no TCB level of the TCB info matches the platform
* ``attest.tcb.revoked``               the platform's TCB level is revoked
* ``attest.tdx.module_mismatch``       the TDX module identity does not match the TCB info
* ``attest.tdx.service_td_not_allowed`` a TD1.5 quote binds a service TD (MRSERVICETD non-zero)
* ``attest.tdx.attributes_refused``    TDATTRIBUTES has reserved bits set or SEPT_VE_DISABLE off
* ``attest.debug.enabled``             SGX ATTRIBUTES.DEBUG / TDATTRIBUTES.DEBUG is set
* ``attest.crl.unknown_status``        no CRL given covers a chain certificate (another CA's?)
* ``attest.dcap.failed``               any other verifier refusal (message carries the detail)
"""

from __future__ import annotations

import hashlib
import hmac
import json
import struct
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from types import MappingProxyType
from typing import Any, Final

import dcap_qvl
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from chronoseal.attest._claims import VerifiedClaims
from chronoseal.errors import AttestationError
from chronoseal.spec import Tee

__all__ = [
    "INTEL_SGX_ROOT_CA_SHA256",
    "QuoteAuthData",
    "QuoteHeader",
    "SgxQuote",
    "SgxReportBody",
    "TdReportBody",
    "TdxQuote",
    "parse_quote",
    "verify_dcap_quote",
]

INTEL_SGX_ROOT_CA_SHA256: Final = "44a0196b2b99f889b8e149e95b807a350e7424964399e885a7cbb8ccfab674d3"
"""SHA-256 of the DER Intel SGX Root CA (production), the only DCAP trust anchor accepted."""

_ROOT_RESOURCE: Final = "intel_sgx_root_ca.der"
ROOTS_DIR: Final = Path(__file__).with_name("roots")

# Header (48 bytes), offsets from the quote start.
HEADER_SIZE: Final = 48
HDR_VERSION: Final = 0
HDR_ATT_KEY_TYPE: Final = 2
HDR_TEE_TYPE: Final = 4
HDR_QE_SVN: Final = 8
HDR_PCE_SVN: Final = 10
HDR_QE_VENDOR_ID: Final = 12
HDR_USER_DATA: Final = 28
QE_VENDOR_ID_SIZE: Final = 16
USER_DATA_SIZE: Final = 20

ATT_KEY_TYPE_ECDSA_P256: Final = 2
TEE_TYPE_SGX: Final = 0x00
TEE_TYPE_TDX: Final = 0x81
INTEL_QE_VENDOR_ID: Final = bytes.fromhex("939a7233f79c4ca9940a0db3957f0607")
SUPPORTED_VERSIONS: Final = frozenset({3, 4, 5})

# Quote v5 carries a body descriptor between header and body.
V5_BODY_TYPE: Final = 48
V5_BODY_SIZE: Final = 50
V5_BODY_OFFSET: Final = 54
V5_BODY_SGX: Final = 1
V5_BODY_TD10: Final = 2
V5_BODY_TD15: Final = 3

# SGX report body (384 bytes), offsets from the body start.
SGX_REPORT_BODY_SIZE: Final = 384
SGX_CPUSVN: Final = 0
SGX_MISCSELECT: Final = 16
SGX_ISVEXTPRODID: Final = 32
SGX_ATTRIBUTES: Final = 48
SGX_MRENCLAVE: Final = 64
SGX_MRSIGNER: Final = 128
SGX_CONFIGID: Final = 192
SGX_ISVPRODID: Final = 256
SGX_ISVSVN: Final = 258
SGX_CONFIGSVN: Final = 260
SGX_ISVFAMILYID: Final = 304
SGX_REPORTDATA: Final = 320
SGX_ATTRIBUTE_DEBUG: Final = 1 << 1

# TD report body: 584 bytes for TD1.0, 648 for TD1.5; offsets from the body start.
TD10_BODY_SIZE: Final = 584
TD15_BODY_SIZE: Final = 648
TD_TEE_TCB_SVN: Final = 0
TD_MRSEAM: Final = 16
TD_MRSIGNERSEAM: Final = 64
TD_SEAMATTRIBUTES: Final = 112
TD_TDATTRIBUTES: Final = 120
TD_XFAM: Final = 128
TD_MRTD: Final = 136
TD_MRCONFIGID: Final = 184
TD_MROWNER: Final = 232
TD_MROWNERCONFIG: Final = 280
TD_RTMR0: Final = 328
TD_REPORTDATA: Final = 520
TD_TEE_TCB_SVN2: Final = 584
TD_MRSERVICETD: Final = 600
TD_ATTRIBUTE_DEBUG: Final = 1 << 0
SHA384_SIZE: Final = 48
RTMR_COUNT: Final = 4

# Signature data, offsets from its start (just after the u32 signature_data_len).
SIG_DATA_LEN_SIZE: Final = 4
SIG_QUOTE_SIGNATURE: Final = 0
SIG_ATTESTATION_KEY: Final = 64
SIG_V3_QE_CERT_DATA: Final = 128
SIG_V4_CERT_TYPE: Final = 128
SIG_V4_CERT_SIZE: Final = 130
SIG_V4_QE_CERT_DATA: Final = 134
ECDSA_P256_SIG_SIZE: Final = 64
ECDSA_P256_KEY_SIZE: Final = 64
CERT_TYPE_PCK_CHAIN: Final = 5
CERT_TYPE_QE_REPORT: Final = 6
REPORT_DATA_SIZE: Final = 64


@dataclass(frozen=True, slots=True)
class QuoteHeader:
    """The 48-byte quote header; ``tee_type`` is 0 for v3 (its field is reserved there)."""

    version: int
    att_key_type: int
    tee_type: int
    qe_svn: int
    pce_svn: int
    qe_vendor_id: bytes
    user_data: bytes


@dataclass(frozen=True, slots=True)
class SgxReportBody:
    """An SGX enclave report body (the attested enclave's, or the QE's own)."""

    cpu_svn: bytes
    miscselect: int
    isv_ext_prod_id: bytes
    attributes: bytes
    mrenclave: bytes
    mrsigner: bytes
    config_id: bytes
    isv_prod_id: int
    isv_svn: int
    config_svn: int
    isv_family_id: bytes
    report_data: bytes

    @property
    def debug(self) -> bool:
        """ATTRIBUTES.DEBUG (flags bit 1): a debugger can read the enclave's memory."""
        flags = int.from_bytes(self.attributes[:8], "little")
        return bool(flags & SGX_ATTRIBUTE_DEBUG)


@dataclass(frozen=True, slots=True)
class TdReportBody:
    """A TDX TD report body; ``tee_tcb_svn2`` and ``mrservicetd`` exist only for TD1.5."""

    tee_tcb_svn: bytes
    mrseam: bytes
    mrsignerseam: bytes
    seam_attributes: bytes
    td_attributes: int
    xfam: bytes
    mrtd: bytes
    mrconfigid: bytes
    mrowner: bytes
    mrownerconfig: bytes
    rtmrs: tuple[bytes, bytes, bytes, bytes]
    report_data: bytes
    tee_tcb_svn2: bytes | None = None
    mrservicetd: bytes | None = None

    @property
    def debug(self) -> bool:
        """TDATTRIBUTES.DEBUG (bit 0): the host VMM can read and change the TD's state."""
        return bool(self.td_attributes & TD_ATTRIBUTE_DEBUG)


@dataclass(frozen=True, slots=True)
class QuoteAuthData:
    """The signature data: quote signature, attestation key, QE report and certification."""

    quote_signature: bytes
    attestation_key: bytes
    qe_report: SgxReportBody
    qe_report_signature: bytes
    qe_auth_data: bytes
    cert_type: int
    cert_data: bytes


@dataclass(frozen=True, slots=True)
class SgxQuote:
    """An SGX quote; ``length`` is where the signature data ends (padding excluded)."""

    header: QuoteHeader
    body: SgxReportBody
    auth: QuoteAuthData
    signed_length: int
    length: int


@dataclass(frozen=True, slots=True)
class TdxQuote:
    """A TDX quote; ``body_type`` uses the v5 numbering (2 = TD1.0, 3 = TD1.5)."""

    header: QuoteHeader
    body_type: int
    body: TdReportBody
    auth: QuoteAuthData
    signed_length: int
    length: int


def _malformed(message: str, **context: Any) -> AttestationError:
    return AttestationError(message, id="attest.quote.malformed", context=context)


class _Cursor:
    """Bounds-checked sequential reader so a short buffer fails as malformed, never IndexError."""

    def __init__(self, data: bytes, offset: int, end: int) -> None:
        self._data = data
        self.offset = offset
        self._end = end

    def take(self, size: int, what: str) -> bytes:
        if self.offset + size > self._end:
            raise _malformed(
                f"quote truncated while reading {what}", offset=self.offset, needed=size
            )
        chunk = self._data[self.offset : self.offset + size]
        self.offset += size
        return chunk

    def u16(self, what: str) -> int:
        return int.from_bytes(self.take(2, what), "little")

    def u32(self, what: str) -> int:
        return int.from_bytes(self.take(4, what), "little")


def _field(body: bytes, offset: int, size: int) -> bytes:
    return body[offset : offset + size]


def _u16(body: bytes, offset: int) -> int:
    return int.from_bytes(body[offset : offset + 2], "little")


def _parse_header(raw: bytes) -> QuoteHeader:
    if len(raw) < HEADER_SIZE:
        raise _malformed("quote shorter than its 48-byte header", length=len(raw))
    version, key_type, tee_type, qe_svn, pce_svn = struct.unpack_from("<HHIHH", raw, HDR_VERSION)
    if version not in SUPPORTED_VERSIONS:
        raise AttestationError(
            f"DCAP quote version {version} is not supported (3, 4 or 5 expected)",
            id="attest.quote.unsupported_version",
            context={"version": version},
        )
    if key_type != ATT_KEY_TYPE_ECDSA_P256:
        raise AttestationError(
            f"attestation key type {key_type} is not ECDSA-256-with-P-256 (2)",
            id="attest.quote.unsupported_key_type",
            context={"att_key_type": key_type},
        )
    return QuoteHeader(
        version=version,
        att_key_type=key_type,
        tee_type=TEE_TYPE_SGX if version == 3 else tee_type,
        qe_svn=qe_svn,
        pce_svn=pce_svn,
        qe_vendor_id=_field(raw, HDR_QE_VENDOR_ID, QE_VENDOR_ID_SIZE),
        user_data=_field(raw, HDR_USER_DATA, USER_DATA_SIZE),
    )


def _parse_sgx_body(body: bytes) -> SgxReportBody:
    return SgxReportBody(
        cpu_svn=_field(body, SGX_CPUSVN, 16),
        miscselect=int.from_bytes(_field(body, SGX_MISCSELECT, 4), "little"),
        isv_ext_prod_id=_field(body, SGX_ISVEXTPRODID, 16),
        attributes=_field(body, SGX_ATTRIBUTES, 16),
        mrenclave=_field(body, SGX_MRENCLAVE, 32),
        mrsigner=_field(body, SGX_MRSIGNER, 32),
        config_id=_field(body, SGX_CONFIGID, 64),
        isv_prod_id=_u16(body, SGX_ISVPRODID),
        isv_svn=_u16(body, SGX_ISVSVN),
        config_svn=_u16(body, SGX_CONFIGSVN),
        isv_family_id=_field(body, SGX_ISVFAMILYID, 16),
        report_data=_field(body, SGX_REPORTDATA, REPORT_DATA_SIZE),
    )


def _parse_td_body(body: bytes) -> TdReportBody:
    rtmrs = tuple(_field(body, TD_RTMR0 + i * SHA384_SIZE, SHA384_SIZE) for i in range(RTMR_COUNT))
    td15 = len(body) >= TD15_BODY_SIZE
    return TdReportBody(
        tee_tcb_svn=_field(body, TD_TEE_TCB_SVN, 16),
        mrseam=_field(body, TD_MRSEAM, SHA384_SIZE),
        mrsignerseam=_field(body, TD_MRSIGNERSEAM, SHA384_SIZE),
        seam_attributes=_field(body, TD_SEAMATTRIBUTES, 8),
        td_attributes=int.from_bytes(_field(body, TD_TDATTRIBUTES, 8), "little"),
        xfam=_field(body, TD_XFAM, 8),
        mrtd=_field(body, TD_MRTD, SHA384_SIZE),
        mrconfigid=_field(body, TD_MRCONFIGID, SHA384_SIZE),
        mrowner=_field(body, TD_MROWNER, SHA384_SIZE),
        mrownerconfig=_field(body, TD_MROWNERCONFIG, SHA384_SIZE),
        rtmrs=(rtmrs[0], rtmrs[1], rtmrs[2], rtmrs[3]),
        report_data=_field(body, TD_REPORTDATA, REPORT_DATA_SIZE),
        tee_tcb_svn2=_field(body, TD_TEE_TCB_SVN2, 16) if td15 else None,
        mrservicetd=_field(body, TD_MRSERVICETD, SHA384_SIZE) if td15 else None,
    )


def _body_layout(raw: bytes, header: QuoteHeader) -> tuple[int, int, int]:
    """Return (body offset, body size, v5-style body type) for the quote's version."""
    if header.version == 5:
        if len(raw) < V5_BODY_OFFSET:
            raise _malformed("quote v5 truncated before its body descriptor", length=len(raw))
        body_type = _u16(raw, V5_BODY_TYPE)
        body_size = int.from_bytes(raw[V5_BODY_SIZE : V5_BODY_SIZE + 4], "little")
        expected = {
            V5_BODY_SGX: SGX_REPORT_BODY_SIZE,
            V5_BODY_TD10: TD10_BODY_SIZE,
            V5_BODY_TD15: TD15_BODY_SIZE,
        }
        if body_type not in expected:
            raise AttestationError(
                f"quote v5 body type {body_type} is not supported (1 SGX, 2 TD1.0, 3 TD1.5)",
                id="attest.quote.unsupported_version",
                context={"body_type": body_type},
            )
        if body_size != expected[body_type]:
            raise _malformed(
                f"quote v5 body type {body_type} declares {body_size} bytes, "
                f"expected {expected[body_type]}",
                body_size=body_size,
            )
        return V5_BODY_OFFSET, body_size, body_type
    if header.tee_type == TEE_TYPE_SGX:
        return HEADER_SIZE, SGX_REPORT_BODY_SIZE, V5_BODY_SGX
    if header.tee_type == TEE_TYPE_TDX:
        return HEADER_SIZE, TD10_BODY_SIZE, V5_BODY_TD10
    raise _malformed(f"unknown TEE type 0x{header.tee_type:x}", tee_type=header.tee_type)


def _parse_auth_data(raw: bytes, version: int, start: int, end: int) -> QuoteAuthData:
    cursor = _Cursor(raw, start, end)
    quote_signature = cursor.take(ECDSA_P256_SIG_SIZE, "quote signature")
    attestation_key = cursor.take(ECDSA_P256_KEY_SIZE, "attestation key")
    qe_end = end
    if version >= 4:
        outer_type = cursor.u16("certification data type")
        outer_size = cursor.u32("certification data size")
        if outer_type != CERT_TYPE_QE_REPORT:
            raise _malformed(
                f"v{version} certification data type {outer_type}, expected 6 (QE report)",
                cert_type=outer_type,
            )
        qe_end = cursor.offset + outer_size
        if qe_end > end:
            raise _malformed("QE report certification data runs past the signature data")
        cursor = _Cursor(raw, cursor.offset, qe_end)
    qe_report = _parse_sgx_body(cursor.take(SGX_REPORT_BODY_SIZE, "QE report"))
    qe_report_signature = cursor.take(ECDSA_P256_SIG_SIZE, "QE report signature")
    qe_auth_data = cursor.take(cursor.u16("QE auth data size"), "QE auth data")
    cert_type = cursor.u16("PCK certification data type")
    cert_data = cursor.take(cursor.u32("PCK certification data size"), "PCK certification data")
    return QuoteAuthData(
        quote_signature=quote_signature,
        attestation_key=attestation_key,
        qe_report=qe_report,
        qe_report_signature=qe_report_signature,
        qe_auth_data=qe_auth_data,
        cert_type=cert_type,
        cert_data=cert_data,
    )


def parse_quote(raw: bytes) -> SgxQuote | TdxQuote:
    """Parse a DCAP quote; raises only :class:`AttestationError` whatever the input bytes."""
    raw = bytes(raw)
    header = _parse_header(raw)
    body_offset, body_size, body_type = _body_layout(raw, header)
    signed_length = body_offset + body_size
    if len(raw) < signed_length + SIG_DATA_LEN_SIZE:
        raise _malformed("quote truncated before its signature data", length=len(raw))
    body = raw[body_offset:signed_length]
    sig_len = int.from_bytes(raw[signed_length : signed_length + SIG_DATA_LEN_SIZE], "little")
    sig_start = signed_length + SIG_DATA_LEN_SIZE
    end = sig_start + sig_len
    if end > len(raw):
        raise _malformed(
            f"signature_data_len {sig_len} runs past the end of the quote ({len(raw)} bytes)",
            signature_data_len=sig_len,
        )
    if raw[end:].strip(b"\0"):
        # Nothing signs what follows the quote, so only the zero padding of a fixed-size
        # quote buffer (what configfs-tsm and the DCAP libraries hand out) may follow it.
        raise _malformed(
            f"{len(raw) - end} bytes that are not zero padding follow the quote's signature "
            "data; nothing signs them",
            trailing=len(raw) - end,
        )
    auth = _parse_auth_data(raw, header.version, sig_start, end)
    if body_type == V5_BODY_SGX:
        return SgxQuote(header, _parse_sgx_body(body), auth, signed_length, end)
    return TdxQuote(header, body_type, _parse_td_body(body), auth, signed_length, end)


def _pinned_root_der() -> bytes:
    der = (ROOTS_DIR / _ROOT_RESOURCE).read_bytes()
    digest = hashlib.sha256(der).hexdigest()
    if not hmac.compare_digest(digest, INTEL_SGX_ROOT_CA_SHA256):
        raise AttestationError(
            "the bundled Intel SGX Root CA does not match its pinned SHA-256; reinstall chronoseal",
            id="attest.chain.untrusted_root",
            context={"sha256": digest},
        )
    return der


def _check_pck_root(quote: SgxQuote | TdxQuote) -> None:
    """Check the embedded PCK chain ends at the pinned root before handing it to dcap-qvl."""
    if quote.auth.cert_type != CERT_TYPE_PCK_CHAIN:
        raise AttestationError(
            f"quote carries certification data type {quote.auth.cert_type}, not a PCK "
            "certificate chain (5); fetch the PCK certificate from a PCCS first",
            id="attest.chain.invalid",
            context={"cert_type": quote.auth.cert_type},
        )
    try:
        chain = x509.load_pem_x509_certificates(quote.auth.cert_data.rstrip(b"\0"))
        root_digest = hashlib.sha256(chain[-1].public_bytes(Encoding.DER)).hexdigest()
    except (ValueError, x509.InvalidVersion) as exc:
        raise AttestationError(
            f"the quote's PCK certificate chain is not readable PEM: {exc}",
            id="attest.chain.invalid",
        ) from exc
    if len(chain) < 2:
        raise AttestationError(
            "the quote's PCK certificate chain has fewer than two certificates",
            id="attest.chain.invalid",
            context={"certificates": len(chain)},
        )
    if not hmac.compare_digest(root_digest, INTEL_SGX_ROOT_CA_SHA256):
        raise AttestationError(
            "the quote's certificate chain ends in a root that is not the Intel SGX Root CA",
            id="attest.chain.untrusted_root",
            context={"root_sha256": root_digest},
        )


def _collateral(collateral: bytes | Mapping[str, Any]) -> Any:
    try:
        text = (
            collateral.decode("utf-8")
            if isinstance(collateral, bytes)
            else json.dumps(dict(collateral))
        )
        return dcap_qvl.QuoteCollateralV3.from_json(text)
    except (ValueError, TypeError) as exc:
        raise AttestationError(
            f"DCAP collateral is not usable: {exc}", id="attest.collateral.invalid"
        ) from exc


# dcap-qvl 0.7 exposes no error types or codes to Python: every refusal is a plain
# ValueError whose text is "Verification failed: " + the Rust anyhow error in its Debug form,
# i.e. the outermost context, then "Caused by:" and the inner errors (webpki's error variant
# names such as CertExpired, CrlExpired or UnknownIssuer are the nearest thing to types it
# shows). So the mapping is by substring, in this one table, checked in order: the first
# fragment found in the text decides, hence more specific fragments come before broader ones
# (e.g. "InvalidCrlSignatureForPublicKey" before "certificate chain", every expiry before
# "CRL"). tests/attest/test_dcap.py has a sample per entry, checks every fragment still occurs
# in the installed extension module (a reworded release fails there, not in production) and
# produces as many refusals as the real vectors allow by mutating them.
_DCAP_ERROR_IDS: Final[tuple[tuple[str, str], ...]] = (
    # TCB level matching (after every signature passed).
    ("No matching TCB level", "attest.tcb.no_matching_level"),
    ("TCB status is invalid: Revoked", "attest.tcb.revoked"),
    # Revocation and time windows (webpki variants inside "Caused by", dcap-qvl's own texts).
    ("CertRevoked", "attest.crl.revoked"),
    ("UnknownRevocationStatus", "attest.crl.unknown_status"),
    ("CrlExpired", "attest.collateral.expired"),
    ("CertExpired", "attest.collateral.expired"),
    ("CertNotValidYet", "attest.collateral.expired"),
    ("Collateral expired", "attest.collateral.expired"),
    ("certificate expired", "attest.collateral.expired"),
    ("revocation list expired", "attest.collateral.expired"),
    ("TCBInfo expired", "attest.collateral.expired"),
    ("QE Identity expired", "attest.collateral.expired"),
    ("issue date is in the future", "attest.collateral.expired"),
    # Collateral that is badly signed, malformed, or for another platform or TEE.
    ("InvalidCrlSignatureForPublicKey", "attest.collateral.invalid"),
    ("Signature is invalid for tcb_info", "attest.collateral.invalid"),
    ("Signature is invalid for qe_identity", "attest.collateral.invalid"),
    ("Fmspc mismatch", "attest.collateral.invalid"),
    ("TCB info in the collateral", "attest.collateral.invalid"),
    ("missing tdxModule", "attest.collateral.invalid"),
    ("component count mismatch", "attest.collateral.invalid"),
    ("No TCB levels found in QE Identity", "attest.collateral.invalid"),
    ("Failed to decode TcbInfo", "attest.collateral.invalid"),
    ("Failed to decode QeIdentity", "attest.collateral.invalid"),
    ("Unsupported QE Identity", "attest.collateral.invalid"),
    ("CRL", "attest.collateral.invalid"),
    # The quoting enclave.
    ("Signature is invalid for qe_report", "attest.qe.signature_invalid"),
    ("QE report hash mismatch", "attest.qe.binding_invalid"),
    ("Invalid QE auth data length", "attest.qe.binding_invalid"),
    ("QE MRSIGNER mismatch", "attest.qe.identity_mismatch"),
    ("QE ISVPRODID mismatch", "attest.qe.identity_mismatch"),
    ("QE ATTRIBUTES mismatch", "attest.qe.identity_mismatch"),
    ("QE MISCSELECT mismatch", "attest.qe.identity_mismatch"),
    ("QE ISVSVN", "attest.qe.identity_mismatch"),
    # The quote itself and the attested TD's attributes (checked last by dcap-qvl).
    ("ISV enclave report signature is invalid", "attest.signature.invalid"),
    ("TDX module", "attest.tdx.module_mismatch"),
    ("Invalid MR service TD", "attest.tdx.service_td_not_allowed"),
    ("SEPT_VE_DISABLE is not enabled", "attest.tdx.attributes_refused"),
    ("Reserved bits in TD attributes", "attest.tdx.attributes_refused"),
    ("Debug mode is enabled", "attest.debug.enabled"),
    # Certificate chains (PCK, TCB signing).
    ("Failed to load root ca", "attest.chain.untrusted_root"),
    ("UnknownIssuer", "attest.chain.invalid"),
    ("InvalidSignatureForPublicKey", "attest.chain.invalid"),
    ("certificate chain", "attest.chain.invalid"),
    ("Certificate chain", "attest.chain.invalid"),
    ("PCK certificate", "attest.chain.invalid"),
    ("PCK cert format", "attest.chain.invalid"),
    # Quote structure (our parser refuses these first; kept for defence in depth).
    ("Unknown QE vendor", "attest.quote.unknown_vendor"),
    ("Unsupported DCAP quote version", "attest.quote.unsupported_version"),
    ("must have version", "attest.quote.unsupported_version"),
    ("Unsupported DCAP attestation key type", "attest.quote.unsupported_key_type"),
    ("Unsupported TEE type", "attest.quote.malformed"),
    ("Invalid TEE type", "attest.quote.malformed"),
    ("Failed to decode quote", "attest.quote.malformed"),
)
DCAP_FAILED: Final = "attest.dcap.failed"


def _dcap_refusal(detail: str) -> tuple[str, str] | None:
    """The table entry (fragment, id) that decides for dcap-qvl's text, or None."""
    return next((entry for entry in _DCAP_ERROR_IDS if entry[0] in detail), None)


def _map_dcap_error(exc: ValueError) -> AttestationError:
    detail = str(exc)
    entry = _dcap_refusal(detail)
    failure_id = entry[1] if entry is not None else DCAP_FAILED
    return AttestationError(
        f"DCAP quote did not verify: {detail}", id=failure_id, context={"detail": detail}
    )


def _unix_seconds(now: datetime) -> int:
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware (UTC); collateral windows are absolute")
    return int(now.timestamp())


def _sgx_claims(quote: SgxQuote) -> tuple[dict[str, bytes], dict[str, int]]:
    body = quote.body
    measurements = {"mrenclave": body.mrenclave, "mrsigner": body.mrsigner}
    svn = {
        "isvprodid": body.isv_prod_id,
        "isvsvn": body.isv_svn,
        "configsvn": body.config_svn,
    }
    return measurements, svn


def _tdx_claims(quote: TdxQuote) -> tuple[dict[str, bytes], dict[str, int]]:
    body = quote.body
    measurements = {
        "mrtd": body.mrtd,
        "rtmr0": body.rtmrs[0],
        "rtmr1": body.rtmrs[1],
        "rtmr2": body.rtmrs[2],
        "rtmr3": body.rtmrs[3],
        "mrconfigid": body.mrconfigid,
        "mrowner": body.mrowner,
        "mrownerconfig": body.mrownerconfig,
        "mrseam": body.mrseam,
    }
    if body.mrservicetd is not None:
        measurements["mrservicetd"] = body.mrservicetd
    svn = {"tdx_module_svn": body.tee_tcb_svn[0], "tdx_module_major": body.tee_tcb_svn[1]}
    return measurements, svn


def verify_dcap_quote(
    raw: bytes, collateral: bytes | Mapping[str, Any], *, now: datetime
) -> VerifiedClaims:
    """Verify an SGX or TDX DCAP quote against ``collateral`` as of ``now``.

    Returns the claims of an authentic quote (whatever its TCB status: the appraisal policy
    decides which statuses to accept). Raises :class:`AttestationError` with one of the ids
    in the module docstring, or ``ValueError`` if ``now`` is naive.
    """
    quote = parse_quote(raw)
    now_secs = _unix_seconds(now)
    if not hmac.compare_digest(quote.header.qe_vendor_id, INTEL_QE_VENDOR_ID):
        raise AttestationError(
            "the quote's QE vendor id is not Intel's",
            id="attest.quote.unknown_vendor",
            context={"qe_vendor_id": quote.header.qe_vendor_id.hex()},
        )
    _check_pck_root(quote)
    root_der = _pinned_root_der()
    qvl_collateral = _collateral(collateral)
    try:
        report = dcap_qvl.verify_with_root_ca(
            bytes(raw[: quote.length]), qvl_collateral, root_der, now_secs
        )
        summary = json.loads(report.to_json())
        pck = dcap_qvl.parse_pck_extension_from_pem(quote.auth.cert_data.rstrip(b"\0"))
        pck_ca = str(dcap_qvl.parse_quote(bytes(raw[: quote.length])).ca())
    except ValueError as exc:
        raise _map_dcap_error(exc) from exc
    tee: Tee
    if isinstance(quote, SgxQuote):
        measurements, svn = _sgx_claims(quote)
        tee = Tee.SGX
    else:
        measurements, svn = _tdx_claims(quote)
        tee = Tee.TDX
    svn["pcesvn"] = int(pck.pce_svn)
    platform = {
        "quote_version": str(quote.header.version),
        "fmspc": bytes(pck.fmspc).hex(),
        "pce_id": bytes(pck.pce_id).hex(),
        "pck_ca": pck_ca,
        "qe_tcb_status": str(summary.get("qe_status", {}).get("status", "")),
        "platform_tcb_status": str(summary.get("platform_status", {}).get("status", "")),
    }
    return VerifiedClaims(
        tee=tee,
        measurements=MappingProxyType(measurements),
        report_data=quote.body.report_data,
        debug=quote.body.debug,
        tcb_status=str(report.status),
        advisory_ids=tuple(str(a) for a in report.advisory_ids),
        svn=MappingProxyType(svn),
        platform=MappingProxyType(platform),
    )
