"""AMD SEV-SNP attestation reports: parse them and verify them offline with ``cryptography``.

Public surface::

    parse_snp_report(raw: bytes) -> SnpReport
    verify_snp_report(raw: bytes, vcek_der: bytes, chain_pem: bytes, *, now: datetime)
        -> VerifiedClaims

No maintained wheel verifies SNP reports, so this is written against AMD's ABI (spec 56860,
Table 22) and go-sev-guest's ``abi``/``kds`` packages. Verification checks, in order: the
chain VCEK <- ASK <- ARK (RSASSA-PSS/SHA-384, salt 48) with the ARK pinned per product from
``roots/``; every certificate's validity at ``now``; CHIP_ID == the VCEK's HWID extension and
REPORTED_TCB == the VCEK's SPL extensions (before the signature, so a VCEK of another chip or
TCB is named as such); the report signature (ECDSA P-384/SHA-384, little-endian r and s).
The VCEK and chain come from the caller (configfs auxblob or a cached AMD KDS fetch): nothing
here touches the network, and no AMD CRL is consulted yet. Only VCEK-signed Milan and Genoa
reports are supported; VLEK-signed reports and Turin's TCB layout are refused with a clear id.

Failure ids (``AttestationError.id``):

* ``attest.report.malformed``           not a 0x4A0-byte SNP report, or signature padding not zero
* ``attest.report.unsupported_version`` report version outside 2..5 or signature algo not 1
* ``attest.snp.unsupported_signer``     signed by a VLEK or by no key (only VCEK is supported)
* ``attest.snp.unsupported_product``    the chain is for a product whose TCB layout is not known
* ``attest.chain.invalid``              VCEK or chain unreadable or altered, or a signature fails
* ``attest.chain.untrusted_root``       the chain's ARK is none of the pinned AMD roots
* ``attest.collateral.expired``         ``now`` is outside a certificate's validity
* ``attest.signature.invalid``          the report signature does not verify under the VCEK
* ``attest.snp.chip_id_mismatch``       CHIP_ID differs from the VCEK's HWID
* ``attest.snp.tcb_mismatch``           REPORTED_TCB differs from the VCEK's SPL extensions

TCB status: ``VcekMatched`` (:data:`TCB_STATUS_VCEK_MATCHED`), never ``UpToDate``. The check
above shows REPORTED_TCB is the TCB AMD issued this VCEK for, but AMD KDS issues VCEKs for old
TCBs too, and nothing here knows AMD's latest TCB for the product; so the claims always carry
the warning ``attest.snp.tcb_not_checked_against_latest`` (:data:`WARN_TCB_NOT_LATEST`).
"""

from __future__ import annotations

import hashlib
import hmac
import warnings
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from types import MappingProxyType
from typing import Final

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.utils import CryptographyDeprecationWarning

from chronoseal.attest._claims import VerifiedClaims
from chronoseal.errors import AttestationError
from chronoseal.spec import Tee

__all__ = [
    "TCB_STATUS_VCEK_MATCHED",
    "WARN_TCB_NOT_LATEST",
    "SnpReport",
    "SnpTcb",
    "parse_snp_report",
    "verify_snp_report",
]

REPORT_SIZE: Final = 0x4A0
OFF_VERSION: Final = 0x00
OFF_GUEST_SVN: Final = 0x04
OFF_POLICY: Final = 0x08
OFF_FAMILY_ID: Final = 0x10
OFF_IMAGE_ID: Final = 0x20
OFF_VMPL: Final = 0x30
OFF_SIGNATURE_ALGO: Final = 0x34
OFF_CURRENT_TCB: Final = 0x38
OFF_PLATFORM_INFO: Final = 0x40
OFF_SIGNER_INFO: Final = 0x48
OFF_REPORT_DATA: Final = 0x50
OFF_MEASUREMENT: Final = 0x90
OFF_HOST_DATA: Final = 0xC0
OFF_ID_KEY_DIGEST: Final = 0xE0
OFF_AUTHOR_KEY_DIGEST: Final = 0x110
OFF_REPORT_ID: Final = 0x140
OFF_REPORT_ID_MA: Final = 0x160
OFF_REPORTED_TCB: Final = 0x180
OFF_CHIP_ID: Final = 0x1A0
OFF_COMMITTED_TCB: Final = 0x1E0
OFF_LAUNCH_TCB: Final = 0x1F0
OFF_SIGNATURE: Final = 0x2A0
SIG_R_OFFSET: Final = 0x00
SIG_S_OFFSET: Final = 0x48
SIG_COMPONENT_SIZE: Final = 72
P384_SCALAR_SIZE: Final = 48
SIG_USED_SIZE: Final = SIG_S_OFFSET + SIG_COMPONENT_SIZE
TCB_SIZE: Final = 8
CHIP_ID_SIZE: Final = 64

SUPPORTED_VERSIONS: Final = range(2, 6)
SIGNATURE_ALGO_ECDSA_P384_SHA384: Final = 1
POLICY_DEBUG: Final = 1 << 19
SIGNER_INFO_KEY_SHIFT: Final = 2
SIGNER_INFO_KEY_MASK: Final = 0b111
SIGNING_KEY_VCEK: Final = 0
SIGNING_KEY_NAMES: Final = {0: "VCEK", 1: "VLEK", 7: "none"}

# Milan/Genoa TCB_VERSION byte positions.
TCB_BOOTLOADER: Final = 0
TCB_TEE: Final = 1
TCB_SNP: Final = 6
TCB_MICROCODE: Final = 7

OID_AMD: Final = "1.3.6.1.4.1.3704.1."
OID_BL_SPL: Final = x509.ObjectIdentifier(OID_AMD + "3.1")
OID_TEE_SPL: Final = x509.ObjectIdentifier(OID_AMD + "3.2")
OID_SNP_SPL: Final = x509.ObjectIdentifier(OID_AMD + "3.3")
OID_UCODE_SPL: Final = x509.ObjectIdentifier(OID_AMD + "3.8")
OID_HWID: Final = x509.ObjectIdentifier(OID_AMD + "4")

PSS_SALT_LENGTH: Final = 48
ROOTS_DIR: Final = Path(__file__).with_name("roots")
SUPPORTED_TCB_PRODUCTS: Final = frozenset({"Milan", "Genoa"})
KNOWN_PRODUCTS: Final = ("Milan", "Genoa", "Turin")

TCB_STATUS_VCEK_MATCHED: Final = "VcekMatched"
"""REPORTED_TCB equals the VCEK's SPLs: what was checked, not that the TCB is AMD's latest."""
WARN_TCB_NOT_LATEST: Final = "attest.snp.tcb_not_checked_against_latest"


@dataclass(frozen=True, slots=True)
class SnpTcb:
    """A TCB_VERSION in the Milan/Genoa layout (security patch levels per component)."""

    raw: bytes
    bootloader: int
    tee: int
    snp: int
    microcode: int

    @classmethod
    def from_bytes(cls, raw: bytes) -> SnpTcb:
        return cls(
            raw=raw,
            bootloader=raw[TCB_BOOTLOADER],
            tee=raw[TCB_TEE],
            snp=raw[TCB_SNP],
            microcode=raw[TCB_MICROCODE],
        )


@dataclass(frozen=True, slots=True)
class SnpReport:
    """An SEV-SNP ATTESTATION_REPORT; ``signed`` is the byte range the signature covers."""

    version: int
    guest_svn: int
    policy: int
    family_id: bytes
    image_id: bytes
    vmpl: int
    signature_algo: int
    current_tcb: SnpTcb
    platform_info: int
    signer_info: int
    report_data: bytes
    measurement: bytes
    host_data: bytes
    id_key_digest: bytes
    author_key_digest: bytes
    report_id: bytes
    report_id_ma: bytes
    reported_tcb: SnpTcb
    chip_id: bytes
    committed_tcb: SnpTcb
    launch_tcb: SnpTcb
    signature_r: int
    signature_s: int
    signed: bytes

    @property
    def debug(self) -> bool:
        """POLICY.DEBUG (bit 19): the hypervisor may debug the guest and read its memory."""
        return bool(self.policy & POLICY_DEBUG)

    @property
    def signing_key(self) -> int:
        """SIGNER_INFO.SIGNING_KEY: 0 VCEK, 1 VLEK, 7 none."""
        return (self.signer_info >> SIGNER_INFO_KEY_SHIFT) & SIGNER_INFO_KEY_MASK


def _u32(raw: bytes, offset: int) -> int:
    return int.from_bytes(raw[offset : offset + 4], "little")


def _u64(raw: bytes, offset: int) -> int:
    return int.from_bytes(raw[offset : offset + 8], "little")


def _bytes(raw: bytes, offset: int, size: int) -> bytes:
    return raw[offset : offset + size]


def parse_snp_report(raw: bytes) -> SnpReport:
    """Parse a raw 0x4A0-byte report; raises only :class:`AttestationError`."""
    raw = bytes(raw)
    if len(raw) != REPORT_SIZE:
        raise AttestationError(
            f"an SEV-SNP report is {REPORT_SIZE} bytes, got {len(raw)}",
            id="attest.report.malformed",
            context={"length": len(raw)},
        )
    version = _u32(raw, OFF_VERSION)
    algo = _u32(raw, OFF_SIGNATURE_ALGO)
    if version not in SUPPORTED_VERSIONS or algo != SIGNATURE_ALGO_ECDSA_P384_SHA384:
        raise AttestationError(
            f"SEV-SNP report version {version} / signature algorithm {algo} is not supported "
            "(versions 2..5 with ECDSA P-384 SHA-384 expected)",
            id="attest.report.unsupported_version",
            context={"version": version, "signature_algo": algo},
        )
    signature = raw[OFF_SIGNATURE:]
    padding_ranges = (
        signature[SIG_R_OFFSET + P384_SCALAR_SIZE : SIG_R_OFFSET + SIG_COMPONENT_SIZE],
        signature[SIG_S_OFFSET + P384_SCALAR_SIZE : SIG_S_OFFSET + SIG_COMPONENT_SIZE],
        signature[SIG_USED_SIZE:],
    )
    if any(any(chunk) for chunk in padding_ranges):
        # The signature area is not itself signed: non-zero padding would let anyone make
        # byte-different copies of one report, and evidence is identified by its hash.
        raise AttestationError(
            "SEV-SNP report signature padding is not zero",
            id="attest.report.malformed",
        )
    return SnpReport(
        version=version,
        guest_svn=_u32(raw, OFF_GUEST_SVN),
        policy=_u64(raw, OFF_POLICY),
        family_id=_bytes(raw, OFF_FAMILY_ID, 16),
        image_id=_bytes(raw, OFF_IMAGE_ID, 16),
        vmpl=_u32(raw, OFF_VMPL),
        signature_algo=algo,
        current_tcb=SnpTcb.from_bytes(_bytes(raw, OFF_CURRENT_TCB, TCB_SIZE)),
        platform_info=_u64(raw, OFF_PLATFORM_INFO),
        signer_info=_u32(raw, OFF_SIGNER_INFO),
        report_data=_bytes(raw, OFF_REPORT_DATA, 64),
        measurement=_bytes(raw, OFF_MEASUREMENT, 48),
        host_data=_bytes(raw, OFF_HOST_DATA, 32),
        id_key_digest=_bytes(raw, OFF_ID_KEY_DIGEST, 48),
        author_key_digest=_bytes(raw, OFF_AUTHOR_KEY_DIGEST, 48),
        report_id=_bytes(raw, OFF_REPORT_ID, 32),
        report_id_ma=_bytes(raw, OFF_REPORT_ID_MA, 32),
        reported_tcb=SnpTcb.from_bytes(_bytes(raw, OFF_REPORTED_TCB, TCB_SIZE)),
        chip_id=_bytes(raw, OFF_CHIP_ID, CHIP_ID_SIZE),
        committed_tcb=SnpTcb.from_bytes(_bytes(raw, OFF_COMMITTED_TCB, TCB_SIZE)),
        launch_tcb=SnpTcb.from_bytes(_bytes(raw, OFF_LAUNCH_TCB, TCB_SIZE)),
        signature_r=int.from_bytes(_bytes(signature, SIG_R_OFFSET, SIG_COMPONENT_SIZE), "little"),
        signature_s=int.from_bytes(_bytes(signature, SIG_S_OFFSET, SIG_COMPONENT_SIZE), "little"),
        signed=raw[:OFF_SIGNATURE],
    )


def _chain_error(message: str, **context: object) -> AttestationError:
    return AttestationError(message, id="attest.chain.invalid", context=context)


def _load_vcek(vcek: bytes) -> x509.Certificate:
    # AMD issues VCEKs with serial number 0, which RFC 5280 forbids; cryptography 48 loads
    # them but warns, and the suite runs with warnings as errors. Only that warning is allowed.
    with warnings.catch_warnings():
        warnings.filterwarnings(
            "ignore",
            message="Parsed a serial number which wasn't positive",
            category=CryptographyDeprecationWarning,
        )
        try:
            if vcek.lstrip().startswith(b"-----BEGIN"):
                return x509.load_pem_x509_certificate(vcek)
            return x509.load_der_x509_certificate(vcek)
        except (ValueError, x509.InvalidVersion) as exc:
            raise _chain_error(f"the VCEK certificate is unreadable: {exc}") from exc


def _load_chain(chain_pem: bytes) -> tuple[x509.Certificate, x509.Certificate]:
    try:
        certs = x509.load_pem_x509_certificates(chain_pem)
    except (ValueError, x509.InvalidVersion) as exc:
        raise _chain_error(f"the ASK/ARK chain is not readable PEM: {exc}") from exc
    if len(certs) != 2:
        raise _chain_error(
            f"expected the ASK then the ARK, got {len(certs)} certificates", count=len(certs)
        )
    return certs[0], certs[1]


def _der_sha256(cert: x509.Certificate) -> str:
    return hashlib.sha256(cert.public_bytes(Encoding.DER)).hexdigest()


def _pinned_ark_product(ark: x509.Certificate) -> str:
    """Return the product whose pinned ARK is exactly ``ark``; refuse any other root."""
    digest = _der_sha256(ark)
    for product in KNOWN_PRODUCTS:
        pinned = x509.load_pem_x509_certificate(
            (ROOTS_DIR / f"amd_ark_{product.lower()}.pem").read_bytes()
        )
        if hmac.compare_digest(digest, _der_sha256(pinned)):
            return product
    raise AttestationError(
        "the chain's ARK is not one of AMD's pinned ARKs (Milan, Genoa, Turin)",
        id="attest.chain.untrusted_root",
        context={"ark_sha256": digest},
    )


def _der_element(der: bytes, pos: int) -> tuple[int, int]:
    """Return (content start, end) of the DER element at ``pos``; ValueError if it is broken."""
    if pos + 2 > len(der):
        raise ValueError("truncated DER element")
    first = der[pos + 1]
    if first < 0x80:
        header, length = 2, first
    else:
        count = first & 0x7F
        if not 0 < count <= 4 or pos + 2 + count > len(der):
            raise ValueError("unsupported DER length")
        header, length = 2 + count, int.from_bytes(der[pos + 2 : pos + 2 + count], "big")
    end = pos + header + length
    if end > len(der):
        raise ValueError("DER element runs past its container")
    return pos + header, end


def _signature_algorithms_agree(cert_der: bytes) -> bool:
    """RFC 5280 4.1.1.2: the unsigned outer signatureAlgorithm must equal the signed copy.

    cryptography does not compare them, and the signature is verified with AMD's fixed PSS
    parameters, so without this check the outer field could be rewritten freely.
    """
    content, _ = _der_element(cert_der, 0)
    tbs_content, tbs_end = _der_element(cert_der, content)
    position = tbs_content
    if position < len(cert_der) and cert_der[position] == 0xA0:
        position = _der_element(cert_der, position)[1]
    position = _der_element(cert_der, position)[1]
    inner = cert_der[position : _der_element(cert_der, position)[1]]
    outer = cert_der[tbs_end : _der_element(cert_der, tbs_end)[1]]
    return inner == outer


def _verify_pss(subject: x509.Certificate, issuer: x509.Certificate, role: str) -> None:
    """Check ``issuer`` signed ``subject`` with RSASSA-PSS SHA-384 salt 48, AMD's only scheme."""
    key = issuer.public_key()
    if not isinstance(key, rsa.RSAPublicKey):
        raise _chain_error(f"the {role} issuer key is not RSA")
    if subject.signature_algorithm_oid != x509.SignatureAlgorithmOID.RSASSA_PSS:
        raise _chain_error(f"the {role} certificate is not signed with RSASSA-PSS")
    if not isinstance(subject.signature_hash_algorithm, hashes.SHA384):
        raise _chain_error(f"the {role} certificate is not signed with SHA-384")
    if not _signature_algorithms_agree(subject.public_bytes(Encoding.DER)):
        raise _chain_error(f"the {role} certificate's outer signature algorithm was altered")
    if subject.issuer != issuer.subject:
        raise _chain_error(
            f"the {role} certificate was issued by {subject.issuer.rfc4514_string()}, "
            f"not by {issuer.subject.rfc4514_string()}"
        )
    try:
        key.verify(
            subject.signature,
            subject.tbs_certificate_bytes,
            padding.PSS(mgf=padding.MGF1(hashes.SHA384()), salt_length=PSS_SALT_LENGTH),
            hashes.SHA384(),
        )
    except InvalidSignature as exc:
        raise _chain_error(f"the {role} certificate signature does not verify") from exc


def _check_validity(certs: dict[str, x509.Certificate], now: datetime) -> None:
    for role, cert in certs.items():
        if not cert.not_valid_before_utc <= now <= cert.not_valid_after_utc:
            raise AttestationError(
                f"the {role} certificate is valid {cert.not_valid_before_utc:%Y-%m-%d} .. "
                f"{cert.not_valid_after_utc:%Y-%m-%d}, not at {now:%Y-%m-%d %H:%M}",
                id="attest.collateral.expired",
                context={"certificate": role},
            )


def _extension_bytes(cert: x509.Certificate, oid: x509.ObjectIdentifier) -> bytes:
    try:
        ext = cert.extensions.get_extension_for_oid(oid)
    except x509.ExtensionNotFound as exc:
        raise _chain_error(f"the VCEK lacks extension {oid.dotted_string}") from exc
    value = ext.value
    if not isinstance(value, x509.UnrecognizedExtension):
        raise _chain_error(f"unexpected VCEK extension type for {oid.dotted_string}")
    return value.value


def _spl(cert: x509.Certificate, oid: x509.ObjectIdentifier) -> int:
    """Decode an SPL extension: a DER INTEGER of one or two content bytes (0..255)."""
    der = _extension_bytes(cert, oid)
    if len(der) < 3 or der[0] != 0x02 or der[1] != len(der) - 2 or der[1] > 2:
        raise _chain_error(f"VCEK extension {oid.dotted_string} is not a small INTEGER")
    value = int.from_bytes(der[2:], "big", signed=True)
    if not 0 <= value <= 0xFF:
        raise _chain_error(f"VCEK extension {oid.dotted_string} is out of range: {value}")
    return value


def _hwid(cert: x509.Certificate) -> bytes:
    der = _extension_bytes(cert, OID_HWID)
    # AMD encodes the HWID as 64 raw bytes; some KDS versions wrap it in an OCTET STRING.
    if len(der) == CHIP_ID_SIZE + 2 and der[0] == 0x04 and der[1] == CHIP_ID_SIZE:
        return der[2:]
    return der


def _verify_signature(report: SnpReport, vcek: x509.Certificate) -> None:
    key = vcek.public_key()
    if not isinstance(key, ec.EllipticCurvePublicKey) or not isinstance(key.curve, ec.SECP384R1):
        raise _chain_error("the VCEK key is not an ECDSA P-384 key")
    signature = encode_dss_signature(report.signature_r, report.signature_s)
    try:
        key.verify(signature, report.signed, ec.ECDSA(hashes.SHA384()))
    except InvalidSignature as exc:
        raise AttestationError(
            "the SEV-SNP report signature does not verify under the VCEK",
            id="attest.signature.invalid",
        ) from exc


def _check_chip_and_tcb(report: SnpReport, vcek: x509.Certificate) -> None:
    hwid = _hwid(vcek)
    if not hmac.compare_digest(hwid, report.chip_id):
        raise AttestationError(
            "the report's CHIP_ID is not the VCEK's HWID: the VCEK belongs to another chip",
            id="attest.snp.chip_id_mismatch",
            context={"chip_id": report.chip_id.hex(), "hwid": hwid.hex()},
        )
    expected = {
        "bootloader": _spl(vcek, OID_BL_SPL),
        "tee": _spl(vcek, OID_TEE_SPL),
        "snp": _spl(vcek, OID_SNP_SPL),
        "microcode": _spl(vcek, OID_UCODE_SPL),
    }
    tcb = report.reported_tcb
    reported = {
        "bootloader": tcb.bootloader,
        "tee": tcb.tee,
        "snp": tcb.snp,
        "microcode": tcb.microcode,
    }
    if reported != expected:
        raise AttestationError(
            "the report's REPORTED_TCB differs from the VCEK's security patch levels",
            id="attest.snp.tcb_mismatch",
            context={"reported": reported, "vcek": expected},
        )


def verify_snp_report(
    raw: bytes, vcek_der: bytes, chain_pem: bytes, *, now: datetime
) -> VerifiedClaims:
    """Verify a VCEK-signed SEV-SNP report and return its claims.

    ``vcek_der`` is the VCEK certificate (DER, PEM accepted); ``chain_pem`` is ASK then ARK
    in PEM, as AMD KDS ``cert_chain`` returns them. Raises :class:`AttestationError` with an
    id from the module docstring, or ``ValueError`` if ``now`` is naive.
    """
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware (UTC); certificate windows are absolute")
    report = parse_snp_report(raw)
    if report.signing_key != SIGNING_KEY_VCEK:
        name = SIGNING_KEY_NAMES.get(report.signing_key, str(report.signing_key))
        raise AttestationError(
            f"not supported yet: the report is signed by {name}; only VCEK-signed reports "
            "are verified (VLEK needs the ASVK chain and a VLEK certificate)",
            id="attest.snp.unsupported_signer",
            context={"signing_key": report.signing_key},
        )
    vcek = _load_vcek(vcek_der)
    ask, ark = _load_chain(chain_pem)
    product = _pinned_ark_product(ark)
    try:
        _verify_pss(ark, ark, "ARK")
        _verify_pss(ask, ark, "ASK")
        _verify_pss(vcek, ask, "VCEK")
    except (ValueError, KeyError, UnsupportedAlgorithm) as exc:
        # cryptography decodes names, algorithms and extensions lazily and reports damaged
        # ones with ValueError, KeyError (unknown string tags) or UnsupportedAlgorithm.
        raise _chain_error(f"a certificate in the chain is malformed: {exc!r}") from exc
    _check_validity({"VCEK": vcek, "ASK": ask, "ARK": ark}, now)
    if product not in SUPPORTED_TCB_PRODUCTS:
        raise AttestationError(
            f"not supported yet: {product} reports use a different REPORTED_TCB layout; "
            "supporting them needs that layout (FMC SPL first) and a real report to test with",
            id="attest.snp.unsupported_product",
            context={"product": product},
        )
    # CHIP_ID/TCB first: a VCEK for another chip or TCB then gets the precise id instead of
    # a bare signature failure. Every check must pass, so the order does not weaken anything.
    try:
        _check_chip_and_tcb(report, vcek)
        _verify_signature(report, vcek)
    except (ValueError, KeyError, UnsupportedAlgorithm) as exc:
        raise _chain_error(f"the VCEK is malformed: {exc!r}") from exc
    tcb = report.reported_tcb
    return VerifiedClaims(
        tee=Tee.SEV_SNP,
        measurements=MappingProxyType(
            {"measurement": report.measurement, "host_data": report.host_data}
        ),
        report_data=report.report_data,
        debug=report.debug,
        tcb_status=TCB_STATUS_VCEK_MATCHED,
        svn=MappingProxyType(
            {
                "guest_svn": report.guest_svn,
                "vmpl": report.vmpl,
                "bootloader": tcb.bootloader,
                "tee": tcb.tee,
                "snp": tcb.snp,
                "microcode": tcb.microcode,
            }
        ),
        platform=MappingProxyType(
            {
                "product": product,
                "report_version": str(report.version),
                "policy": f"0x{report.policy:x}",
                "chip_id": report.chip_id.hex(),
                "reported_tcb": tcb.raw.hex(),
                "current_tcb": report.current_tcb.raw.hex(),
                "committed_tcb": report.committed_tcb.raw.hex(),
                "launch_tcb": report.launch_tcb.raw.hex(),
                "signing_key": "VCEK",
                "family_id": report.family_id.hex(),
                "image_id": report.image_id.hex(),
            }
        ),
        warnings=MappingProxyType({WARN_TCB_NOT_LATEST: _not_latest_message(product, tcb)}),
    )


def _not_latest_message(product: str, tcb: SnpTcb) -> str:
    """Say exactly what the TCB check covered, so an operator knows what is left to do."""
    return (
        f"REPORTED_TCB (bootloader {tcb.bootloader}, TEE {tcb.tee}, SNP {tcb.snp}, microcode "
        f"{tcb.microcode}) equals the SPLs of the VCEK AMD issued for it; it was not compared "
        f"with AMD's latest {product} TCB (AMD also issues VCEKs for old TCBs), so a platform "
        "behind on SEV firmware or microcode is not detected"
    )
