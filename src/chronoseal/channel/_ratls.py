"""RA-TLS certificates: a fresh P-256 TLS key, self-signed, carrying evidence bound to it.

Why P-256: ``ecdsa_secp256r1_sha256`` is mandatory-to-implement in TLS 1.3 (RFC 8446 §9.1),
so every TLS stack a consortium member might run accepts it; Ed25519 is not mandatory.

The evidence travels in the IETF CMW extension (``id-pe-cmw``, 1.3.6.1.5.5.7.1.35,
RFC 9999 "RATS Conceptual Message Wrapper"), non-critical, as the JSON CMW choice: a DER
UTF8String holding ``["application/vnd.chronoseal.ra-tls.v1+json", base64url(claims)]``
where ``claims`` is compact JSON ``{"evidence": b64u, "nonce": b64u, "hpke_kem": name,
"hpke_public_key": b64u}``. JSON (not CBOR) because it needs only the standard library.

Binding: ``report_data = report_data_for(spki_der, binding_nonce)`` with ``binding_nonce =
SHA-256(label ‖ lp16(freshness nonce) ‖ lp16(kem) ‖ lp16(hpke public key))``, so the TLS key
*and* the HPKE key that data keys are sealed to both belong to the attested TEE, and the
caller's freshness value (a recent block hash, or task id ‖ block hash) makes it fresh.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import os
import secrets
import ssl
from collections.abc import Callable, Collection
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Final

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.asn1 import decode_der, encode_der
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from eth_utils.address import to_checksum_address

from chronoseal._decode import DocumentRefused, loads_json
from chronoseal.attest import Appraisal, Appraiser, Attester, Evidence, report_data_for
from chronoseal.channel._hpke import HpkeKem, HpkePrivateKey, HpkePublicKey
from chronoseal.channel._wire import lp16
from chronoseal.errors import AttestationError, ChannelError, PeerRefused
from chronoseal.spec import Component

CMW_OID: Final = x509.ObjectIdentifier("1.3.6.1.5.5.7.1.35")
CMW_MEDIA_TYPE: Final = "application/vnd.chronoseal.ra-tls.v1+json"
DEFAULT_VALIDITY: Final = timedelta(minutes=10)
"""Matches the appraisal policy's default ``max_evidence_age``: rotate identities as often."""
_BINDING_LABEL: Final = b"chronoseal.channel.binding.v1"
MIN_NONCE_SIZE: Final = 16
_MAX_EXTENSION: Final = 4 * 1024 * 1024
Clock = Callable[[], datetime]


def utc_now() -> datetime:
    """The default clock."""
    return datetime.now(UTC)


def binding_nonce(
    freshness: bytes, hpke_public_key: HpkePublicKey, chain_address: bytes = b""
) -> bytes:
    """The nonce given to ``report_data_for``: freshness, the HPKE key and the component's
    chain address (20 bytes, or empty for a component that acts on no chain), unambiguously."""
    return hashlib.sha256(
        _BINDING_LABEL
        + lp16(freshness)
        + lp16(hpke_public_key.kem.value.encode())
        + lp16(hpke_public_key.raw)
        + lp16(chain_address)
    ).digest()


def _address_bytes(address: str | None) -> bytes:
    if address is None:
        return b""
    raw = bytes.fromhex(address.removeprefix("0x"))
    if len(raw) != 20:
        raise ChannelError("a chain address is 20 bytes", id="channel.identity.bad_chain_address")
    return raw


def spki_der(key: ec.EllipticCurvePublicKey) -> bytes:
    return key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


class RaTlsIdentity:
    """One component's identity for this process run: TLS key, RA-TLS certificate, HPKE key.

    Made fresh at start and kept in memory only; ``repr`` never shows key material.
    """

    __slots__ = (
        "_tls_key",
        "certificate_der",
        "chain_address",
        "component",
        "evidence",
        "fingerprint",
        "hpke",
    )

    def __init__(
        self,
        *,
        tls_key: ec.EllipticCurvePrivateKey,
        certificate_der: bytes,
        hpke: HpkePrivateKey,
        component: Component,
        evidence: Evidence,
        chain_address: str | None = None,
    ) -> None:
        self._tls_key = tls_key
        self.chain_address = chain_address
        self.certificate_der = certificate_der
        self.fingerprint = hashlib.sha256(certificate_der).digest()
        self.hpke = hpke
        self.component = component
        self.evidence = evidence

    @classmethod
    def generate(
        cls,
        attester: Attester,
        freshness: bytes,
        *,
        hpke_kem: HpkeKem = HpkeKem.X25519,
        validity: timedelta = DEFAULT_VALIDITY,
        now: datetime | None = None,
        chain_address: str | None = None,
    ) -> RaTlsIdentity:
        """Make keys, ask ``attester`` for evidence binding them, and self-sign the cert.

        ``chain_address`` is the key the component acts with on chain: the evidence binds it,
        so the attestation record it posts cannot be taken over by another sender.

        ``freshness`` (a recent block hash, or task id ‖ block hash) must be at least
        ``MIN_NONCE_SIZE`` bytes, as ``report_data_for`` demands of any nonce: hashing it
        into the binding nonce must not hide a guessable value.
        """
        if len(freshness) < MIN_NONCE_SIZE:
            raise ChannelError(
                f"the freshness value must be at least {MIN_NONCE_SIZE} bytes",
                id="channel.identity.bad_freshness",
            )
        issued = now or utc_now()
        tls_key = ec.generate_private_key(ec.SECP256R1())
        hpke = HpkePrivateKey(hpke_kem)
        address = _address_bytes(chain_address)
        report_data = report_data_for(
            spki_der(tls_key.public_key()), binding_nonce(freshness, hpke.public_key, address)
        )
        evidence = attester.attest(report_data)
        name = x509.Name(
            [x509.NameAttribute(NameOID.COMMON_NAME, f"chronoseal {attester.component.value}")]
        )
        certificate = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(tls_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(issued - timedelta(minutes=1))
            .not_valid_after(issued + validity)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.UnrecognizedExtension(
                    CMW_OID, _encode_cmw(evidence, freshness, hpke.public_key, address)
                ),
                critical=False,
            )
            .sign(tls_key, hashes.SHA256())
        )
        return cls(
            tls_key=tls_key,
            certificate_der=certificate.public_bytes(serialization.Encoding.DER),
            hpke=hpke,
            component=attester.component,
            evidence=evidence,
            chain_address=_checksum(address),
        )

    def __repr__(self) -> str:
        return (
            f"RaTlsIdentity(component={self.component.value!r}, "
            f"fingerprint={self.fingerprint.hex()[:16]}...)"
        )

    def sign(self, message: bytes) -> bytes:
        """ECDSA-P256-SHA256 with the TLS key (the in-channel client proof)."""
        return self._tls_key.sign(message, ec.ECDSA(hashes.SHA256()))

    def load_into(self, context: ssl.SSLContext) -> None:
        """Install certificate and key in an ``ssl`` context without the key touching disk.

        ``ssl`` loads keys only from a path: the key goes through an anonymous memory file
        (``memfd_create``), PEM-encrypted under a one-time random password, and the fd is
        closed as soon as OpenSSL has read it.
        """
        if not hasattr(os, "memfd_create"):
            raise ChannelError(
                "loading an in-memory TLS key needs Linux memfd_create",
                id="channel.tls.no_memfd",
            )
        password = secrets.token_bytes(32)
        certificate_pem = x509.load_der_x509_certificate(self.certificate_der).public_bytes(
            serialization.Encoding.PEM
        )
        key_pem = self._tls_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(password),
        )
        fd = os.memfd_create("chronoseal-ra-tls", os.MFD_CLOEXEC)
        try:
            pending = memoryview(certificate_pem + key_pem)
            while pending:
                pending = pending[os.write(fd, pending) :]
            context.load_cert_chain(f"/proc/self/fd/{fd}", password=password)
        finally:
            os.close(fd)


@dataclass(frozen=True, slots=True)
class AttestedPeer:
    """A peer whose RA-TLS certificate appraised for the expected component kind."""

    component: Component
    certificate_der: bytes
    fingerprint: bytes
    hpke_public_key: HpkePublicKey
    evidence: Evidence
    appraisal: Appraisal
    public_key: ec.EllipticCurvePublicKey
    chain_address: str | None = None
    """The chain key the peer's evidence binds (checksummed), if it claims one."""


def appraise_certificate(
    certificate_der: bytes,
    *,
    appraiser: Appraiser,
    component: Component,
    fresh_nonces: Collection[bytes],
    now: datetime,
) -> AttestedPeer:
    """Accept a peer certificate only if its evidence binds its keys and appraises.

    Raises :class:`PeerRefused` with ids ``channel.peer.bad_certificate``,
    ``.certificate_expired``, ``.no_evidence``, ``.bad_evidence``, ``.stale_nonce``,
    ``.wrong_component`` or ``.evidence_refused`` (the appraisal's failure ids in context).
    """
    certificate, public_key = _parse_certificate(certificate_der, now)
    evidence, freshness, hpke_public_key, address = _claims_of(certificate)
    # tuple() snapshots a set another thread may be refreshing (one C-level step in CPython).
    if not any(hmac.compare_digest(freshness, nonce) for nonce in tuple(fresh_nonces)):
        raise PeerRefused(
            "the peer's evidence is bound to a nonce that is not (or no longer) fresh",
            id="channel.peer.stale_nonce",
        )
    if evidence.component != component:
        raise PeerRefused(
            f"expected a {component.value} peer, its evidence says {evidence.component}",
            id="channel.peer.wrong_component",
            context={"expected": component.value, "presented": str(evidence.component)},
        )
    expected = report_data_for(
        spki_der(public_key), binding_nonce(freshness, hpke_public_key, address)
    )
    try:
        appraisal = appraiser.appraise(
            evidence, component=component, expected_report_data=expected, now=now
        )
        appraisal.require_accepted()
    except AttestationError as exc:
        raise PeerRefused(
            f"the peer's evidence did not appraise as {component.value}: {exc.message}",
            id="channel.peer.evidence_refused",
            context={"attestation_id": exc.id, **exc.context},
        ) from exc
    return AttestedPeer(
        component=component,
        certificate_der=certificate_der,
        fingerprint=hashlib.sha256(certificate_der).digest(),
        hpke_public_key=hpke_public_key,
        evidence=evidence,
        appraisal=appraisal,
        public_key=public_key,
        chain_address=_checksum(address),
    )


def certificate_appraiser(
    appraiser: Appraiser,
    component: Component,
    fresh_nonces: Collection[bytes],
    clock: Clock = utc_now,
) -> Callable[[bytes], AttestedPeer]:
    """:func:`appraise_certificate` with its policy bound, for a side that admits peers by
    their certificate before they connect (the ``ratls://`` Dask backend's admission)."""

    def appraise(certificate_der: bytes) -> AttestedPeer:
        return appraise_certificate(
            certificate_der,
            appraiser=appraiser,
            component=component,
            fresh_nonces=fresh_nonces,
            now=clock(),
        )

    return appraise


def _checksum(address: bytes) -> str | None:
    """The EIP-55 form of a bound chain address, as the chain reports senders."""
    return str(to_checksum_address("0x" + address.hex())) if address else None


def _parse_certificate(
    certificate_der: bytes, now: datetime
) -> tuple[x509.Certificate, ec.EllipticCurvePublicKey]:
    try:
        certificate = x509.load_der_x509_certificate(certificate_der)
        public_key = certificate.public_key()
        if not isinstance(public_key, ec.EllipticCurvePublicKey) or not isinstance(
            public_key.curve, ec.SECP256R1
        ):
            raise PeerRefused(
                "an RA-TLS certificate key must be P-256", id="channel.peer.bad_certificate"
            )
        certificate.verify_directly_issued_by(certificate)
    except (ValueError, TypeError, InvalidSignature) as exc:
        raise PeerRefused(
            "the peer certificate is not a valid self-signed certificate",
            id="channel.peer.bad_certificate",
        ) from exc
    if not certificate.not_valid_before_utc <= now <= certificate.not_valid_after_utc:
        raise PeerRefused(
            "the peer certificate is outside its validity window",
            id="channel.peer.certificate_expired",
        )
    return certificate, public_key


def _encode_cmw(
    evidence: Evidence, freshness: bytes, hpke_public_key: HpkePublicKey, address: bytes
) -> bytes:
    claims = {
        "evidence": _b64u(evidence.to_bytes()),
        "nonce": _b64u(freshness),
        "hpke_kem": hpke_public_key.kem.value,
        "hpke_public_key": _b64u(hpke_public_key.raw),
    }
    if address:
        claims["chain_address"] = _b64u(address)
    payload = json.dumps(claims, separators=(",", ":"), sort_keys=True).encode()
    record = json.dumps([CMW_MEDIA_TYPE, _b64u(payload)], separators=(",", ":"))
    return encode_der(record)


def _claims_of(certificate: x509.Certificate) -> tuple[Evidence, bytes, HpkePublicKey, bytes]:
    try:
        extension = certificate.extensions.get_extension_for_oid(CMW_OID).value
    except x509.ExtensionNotFound as exc:
        raise PeerRefused(
            "the peer certificate carries no attestation evidence", id="channel.peer.no_evidence"
        ) from exc
    if not isinstance(extension, x509.UnrecognizedExtension) or len(extension.value) > (
        _MAX_EXTENSION
    ):
        raise PeerRefused("the CMW extension is unusable", id="channel.peer.bad_evidence")
    try:
        media_type, value = loads_json(
            decode_der(str, extension.value), max_bytes=_MAX_EXTENSION, what="CMW"
        )
        if media_type != CMW_MEDIA_TYPE:
            raise ValueError(f"unexpected CMW media type {media_type!r}")
        claims = loads_json(_unb64u(value), max_bytes=_MAX_EXTENSION, what="CMW claims")
        hpke_public_key = HpkePublicKey(
            HpkeKem(claims["hpke_kem"]), _unb64u(claims["hpke_public_key"])
        )
        address = _unb64u(claims["chain_address"]) if "chain_address" in claims else b""
        if address and len(address) != 20:
            raise ValueError("a chain address is 20 bytes")
        return (
            Evidence.from_bytes(_unb64u(claims["evidence"])),
            _unb64u(claims["nonce"]),
            hpke_public_key,
            address,
        )
    except (ValueError, TypeError, KeyError, AttestationError, ChannelError) as exc:
        # A decoder refusal is told without its own id (an appraisal's keeps its own).
        why = exc.message if isinstance(exc, DocumentRefused) else exc
        raise PeerRefused(
            f"the peer's CMW evidence extension does not parse: {why}",
            id="channel.peer.bad_evidence",
        ) from exc


def _b64u(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64u(text: object) -> bytes:
    if not isinstance(text, str):
        raise TypeError("expected a base64url string")
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except binascii.Error as exc:
        raise ValueError("invalid base64url") from exc
