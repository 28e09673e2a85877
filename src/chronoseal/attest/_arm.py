"""Arm attestation tokens: CCA (realm + platform) and PSA, COSE_Sign1 through cbor2 + cryptography.

Public surface::

    verify_cose_sign1(token: bytes, key: EllipticCurvePublicKey) -> dict[int, object]
    verify_cca_token(token: bytes, cpak_pem: bytes) -> VerifiedClaims
    verify_psa_token(token: bytes, key_pem: bytes) -> VerifiedClaims
    cca_token(platform: bytes, realm: bytes) -> bytes        # tag 399 collection

Formats: Arm CCA Security Model / RMM spec (A7.2) and the PSA attestation token (RFC 9783 and
its draft predecessors), cross-read with veraison's ccatoken and psatoken (not copied).

A CCA token is CBOR tag 399 over a map {44234: platform token, 44241: realm token}, each a
COSE_Sign1. The realm token is signed by the Realm Attestation Key (RAK), whose public key the
realm token itself carries (claim 44237, a raw EC point); the platform token is signed by the
CPAK, which the verifier must already trust (here: ``cpak_pem``, from the silicon vendor's
endorsement, as collateral). What ties the two together is the platform token's nonce: it must
equal the hash of the RAK under the realm token's RAK hash algorithm (claim 44240). Without
that check any realm token could be paired with any genuine platform token, so a mismatch is
refused (``attest.cca.rak_not_bound``), never tolerated.

PSA tokens come in profile ``http://arm.com/psa/2.0.0`` (claim keys 10, 256, 2394..2400) and
the legacy ``PSA_IOT_PROFILE_1`` (keys -75000..-75010); both are reduced to one set of claims.
Only COSE_Sign1 with ECDSA (ES256/384/512) is accepted: MAC'd tokens (COSE_Mac0) need a
shared key no remote verifier should hold.

The security lifecycle is the "debug" claim: anything but SECURED (0x3000..0x30ff) means the
platform is in a debug, provisioning or decommissioned state.

Failure ids (``AttestationError.id``):

* ``attest.token.malformed``       not CBOR of the expected shape, or a claim of the wrong type
* ``attest.token.unsupported``     an unknown profile, algorithm or hash algorithm
* ``attest.signature.invalid``     a COSE signature does not verify under its key
* ``attest.cca.rak_not_bound``     the platform nonce is not the hash of the realm's RAK
* ``attest.collateral.invalid``    the CPAK / PSA key is not an EC public key in PEM
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, Final

import cbor2
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from chronoseal.attest._claims import VerifiedClaims
from chronoseal.errors import AttestationError
from chronoseal.spec import Tee

__all__ = [
    "CCA_TAG",
    "TCB_STATUS_CCA_VERIFIED",
    "TCB_STATUS_PSA_VERIFIED",
    "WARN_CCA_FIRMWARE",
    "WARN_PSA_FIRMWARE",
    "cca_realm_challenge",
    "cca_token",
    "load_ec_public_key",
    "token_instance_id",
    "verify_cca_token",
    "verify_cose_sign1",
    "verify_psa_token",
]

CCA_TAG: Final = 399
COSE_SIGN1_TAG: Final = 18
CCA_PLATFORM: Final = 44234
CCA_REALM: Final = 44241

# COSE algorithms (RFC 9053): ECDSA with the matching curve only.
_ALGORITHMS: Final[Mapping[int, tuple[str, type[ec.EllipticCurve], hashes.HashAlgorithm, int]]] = (
    MappingProxyType(
        {
            -7: ("ES256", ec.SECP256R1, hashes.SHA256(), 32),
            -35: ("ES384", ec.SECP384R1, hashes.SHA384(), 48),
            -36: ("ES512", ec.SECP521R1, hashes.SHA512(), 66),
        }
    )
)
_HASHES: Final = MappingProxyType({"sha-256": "sha256", "sha-384": "sha384", "sha-512": "sha512"})

# CCA platform claims.
P_PROFILE: Final = 265
P_NONCE: Final = 10
P_INSTANCE_ID: Final = 256
P_LIFECYCLE: Final = 2395
P_IMPLEMENTATION_ID: Final = 2396
P_SW_COMPONENTS: Final = 2399
P_VERIFICATION_SERVICE: Final = 2400
P_CONFIG: Final = 2401
P_HASH_ALGO: Final = 2402
CCA_PLATFORM_PROFILES: Final = frozenset(
    {"http://arm.com/CCA-SSD/1.0.0", "tag:arm.com,2023:cca_platform#1.0.0"}
)
# CCA realm claims.
R_CHALLENGE: Final = 10
R_PERSONALIZATION: Final = 44235
R_HASH_ALGO: Final = 44236
R_RAK: Final = 44237
R_RIM: Final = 44238
R_REMS: Final = 44239
R_RAK_HASH_ALGO: Final = 44240
R_PROFILE: Final = 265
CCA_REALM_PROFILES: Final = frozenset({"tag:arm.com,2023:realm#1.0.0"})
REM_COUNT: Final = 4

# PSA claims: profile 2 key, legacy profile 1 key.
PSA_PROFILE_2: Final = "http://arm.com/psa/2.0.0"
PSA_PROFILE_1: Final = "PSA_IOT_PROFILE_1"
_PSA_KEYS: Final = MappingProxyType(
    {
        PSA_PROFILE_2: {
            "profile": 265,
            "nonce": 10,
            "instance_id": 256,
            "client_id": 2394,
            "lifecycle": 2395,
            "implementation_id": 2396,
            "boot_seed": 2397,
            "certification_reference": 2398,
            "sw_components": 2399,
            "verification_service": 2400,
        },
        PSA_PROFILE_1: {
            "profile": -75000,
            "client_id": -75001,
            "lifecycle": -75002,
            "implementation_id": -75003,
            "boot_seed": -75004,
            "certification_reference": -75005,
            "sw_components": -75006,
            "nonce": -75008,
            "instance_id": -75009,
            "verification_service": -75010,
        },
    }
)
# Software component map keys (both profiles).
SW_TYPE: Final = 1
SW_VALUE: Final = 2
SW_VERSION: Final = 4
SW_SIGNER: Final = 5
SW_DESCRIPTION: Final = 6

LIFECYCLE_SECURED: Final = 0x3000
LIFECYCLE_NAMES: Final = MappingProxyType(
    {
        0x0: "unknown",
        0x1: "assembly-and-test",
        0x2: "psa-rot-provisioning",
        0x3: "secured",
        0x4: "non-psa-rot-debug",
        0x5: "recoverable-psa-rot-debug",
        0x6: "decommissioned",
    }
)

TCB_STATUS_CCA_VERIFIED: Final = "CcaTokenVerified"
TCB_STATUS_PSA_VERIFIED: Final = "PsaTokenVerified"
WARN_CCA_FIRMWARE: Final = "attest.cca.platform_not_appraised"
WARN_PSA_FIRMWARE: Final = "attest.psa.platform_not_appraised"


def _malformed(message: str, **context: object) -> AttestationError:
    return AttestationError(message, id="attest.token.malformed", context=context)


def _unsupported(message: str, **context: object) -> AttestationError:
    return AttestationError(message, id="attest.token.unsupported", context=context)


def _loads(data: bytes, what: str) -> Any:
    try:
        return cbor2.loads(data)
    except (cbor2.CBORDecodeError, ValueError, TypeError, OverflowError) as exc:
        raise _malformed(f"the {what} is not CBOR: {exc}") from exc


def load_ec_public_key(pem: bytes, what: str) -> ec.EllipticCurvePublicKey:
    """An operator-supplied EC public key (PEM SubjectPublicKeyInfo)."""
    try:
        key = serialization.load_pem_public_key(pem)
    except (ValueError, TypeError) as exc:
        raise AttestationError(
            f"the {what} is not a PEM public key: {exc}", id="attest.collateral.invalid"
        ) from exc
    if not isinstance(key, ec.EllipticCurvePublicKey):
        raise AttestationError(f"the {what} is not an EC key", id="attest.collateral.invalid")
    return key


def _bytes(claims: Mapping[int, Any], key: int, what: str, sizes: tuple[int, ...] = ()) -> bytes:
    value = claims.get(key)
    if not isinstance(value, bytes):
        raise _malformed(f"the token lacks {what} (claim {key}) as a byte string", claim=key)
    if sizes and len(value) not in sizes:
        raise _malformed(
            f"{what} is {len(value)} bytes, expected {' or '.join(map(str, sizes))}", claim=key
        )
    return value


def _text(claims: Mapping[int, Any], key: int, what: str) -> str:
    value = claims.get(key)
    if not isinstance(value, str):
        raise _malformed(f"the token lacks {what} (claim {key}) as text", claim=key)
    return value


def _int(claims: Mapping[int, Any], key: int, what: str) -> int:
    value = claims.get(key)
    if not isinstance(value, int) or isinstance(value, bool):
        raise _malformed(f"the token lacks {what} (claim {key}) as an integer", claim=key)
    return value


def _sign1_parts(token: bytes | Any, what: str) -> tuple[bytes, bytes, bytes, int]:
    """(protected, payload, signature, alg) of a COSE_Sign1 (tagged 18 or not)."""
    decoded = _loads(token, what) if isinstance(token, bytes) else token
    if isinstance(decoded, cbor2.CBORTag):
        if decoded.tag != COSE_SIGN1_TAG:
            raise _unsupported(
                f"the {what} is CBOR tag {decoded.tag}, not COSE_Sign1 (18)", tag=decoded.tag
            )
        decoded = decoded.value
    if not isinstance(decoded, list) or len(decoded) != 4:
        raise _malformed(f"the {what} is not a COSE_Sign1 array of four")
    protected, unprotected, payload, signature = decoded
    if not all(isinstance(part, bytes) for part in (protected, payload, signature)) or not (
        isinstance(unprotected, dict)
    ):
        raise _malformed(f"the {what}'s COSE_Sign1 fields have the wrong types")
    header = _loads(protected, f"{what} protected header") if protected else {}
    if not isinstance(header, dict) or not isinstance(header.get(1), int):
        raise _malformed(f"the {what}'s protected header names no algorithm")
    if 1 in unprotected:
        raise _malformed(f"the {what} names its algorithm in the unprotected header")
    return protected, payload, signature, int(header[1])


def verify_cose_sign1(token: bytes | Any, key: ec.EllipticCurvePublicKey) -> dict[int, Any]:
    """Verify a COSE_Sign1 (RFC 9052 4.4, empty external AAD) and return its claims map."""
    protected, payload, signature, alg = _sign1_parts(token, "token")
    if alg not in _ALGORITHMS:
        raise _unsupported(f"COSE algorithm {alg} is not ES256/ES384/ES512", alg=alg)
    name, curve, digest, size = _ALGORITHMS[alg]
    if not isinstance(key.curve, curve):
        raise AttestationError(
            f"the token is signed with {name} but the key is on {key.curve.name}",
            id="attest.signature.invalid",
        )
    if len(signature) != 2 * size:
        raise AttestationError(
            f"an {name} signature is {2 * size} bytes, got {len(signature)}",
            id="attest.signature.invalid",
        )
    to_be_signed = cbor2.dumps(["Signature1", protected, b"", payload])
    der = encode_dss_signature(
        int.from_bytes(signature[:size], "big"), int.from_bytes(signature[size:], "big")
    )
    try:
        key.verify(der, to_be_signed, ec.ECDSA(digest))
    except InvalidSignature as exc:
        raise AttestationError(
            "the token's COSE signature does not verify under the given key",
            id="attest.signature.invalid",
        ) from exc
    claims = _loads(payload, "token payload")
    if not isinstance(claims, dict):
        raise _malformed("the token payload is not a claims map")
    return claims


def cca_token(platform: bytes, realm: bytes) -> bytes:
    """The CCA attestation token collection (tag 399) of two COSE_Sign1 byte strings."""
    return cbor2.dumps(cbor2.CBORTag(CCA_TAG, {CCA_PLATFORM: platform, CCA_REALM: realm}))


def cca_realm_challenge(token: bytes) -> bytes:
    """The realm challenge of a CCA token, unverified: what configfs-tsm's caller checks it
    wrote (the verifier checks the signatures)."""
    collection = _loads(bytes(token), "CCA token")
    if not isinstance(collection, cbor2.CBORTag) or collection.tag != CCA_TAG:
        raise _malformed("a CCA token is CBOR tag 399 (the CCA token collection)")
    parts = collection.value
    realm_token = parts.get(CCA_REALM) if isinstance(parts, dict) else None
    if not isinstance(realm_token, bytes):
        raise _malformed("the CCA token collection holds no realm token")
    _, payload, _, _ = _sign1_parts(realm_token, "realm token")
    claims = _loads(payload, "realm token payload")
    if not isinstance(claims, dict):
        raise _malformed("the realm token payload is not a claims map")
    return _bytes(claims, R_CHALLENGE, "the realm challenge", (64,))


def token_instance_id(tee: str, token: bytes) -> bytes:
    """The (unverified) instance id of a CCA platform token or PSA token: the key under
    which a verifier's endorsement store files the CPAK / attestation key that must then
    verify it."""
    signed: Any = bytes(token)
    if tee == "cca":
        collection = _loads(signed, "CCA token")
        parts = collection.value if isinstance(collection, cbor2.CBORTag) else None
        signed = parts.get(CCA_PLATFORM) if isinstance(parts, dict) else None
        if not isinstance(signed, bytes):
            raise _malformed("the CCA token collection holds no platform token")
    _, payload, _, _ = _sign1_parts(signed, f"{tee} token")
    claims = _loads(payload, f"{tee} token payload")
    if not isinstance(claims, dict):
        raise _malformed("the token payload is not a claims map")
    value = claims.get(P_INSTANCE_ID, claims.get(_PSA_KEYS[PSA_PROFILE_1]["instance_id"]))
    if not isinstance(value, bytes) or len(value) != 33:
        raise _malformed("the token carries no 33-byte instance id")
    return value


def _hash(name: str, data: bytes) -> bytes:
    algorithm = _HASHES.get(name)
    if algorithm is None:
        raise _unsupported(f"hash algorithm {name!r} is not sha-256/384/512", algorithm=name)
    return hashlib.new(algorithm, data).digest()


def _rak(raw: bytes, alg: int) -> ec.EllipticCurvePublicKey:
    if alg not in _ALGORITHMS:
        raise _unsupported(f"the realm token's COSE algorithm {alg} is not supported", alg=alg)
    curve = _ALGORITHMS[alg][1]()
    try:
        return ec.EllipticCurvePublicKey.from_encoded_point(curve, raw)
    except ValueError as exc:
        raise _malformed(f"the RAK is not a point on {curve.name}: {exc}") from exc


def _lifecycle(value: int) -> tuple[str, bool]:
    """(name, secured) of a PSA/CCA security lifecycle value."""
    name = LIFECYCLE_NAMES.get(value >> 12, "invalid")
    return f"{name} (0x{value:04x})", value >> 8 == LIFECYCLE_SECURED >> 8


def _sw_components(value: Any, what: str) -> list[Mapping[int, Any]]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(item, dict) for item in value):
        raise _malformed(f"the {what} software components are not a list of maps")
    for item in value:
        if not isinstance(item.get(SW_VALUE), bytes):
            raise _malformed(f"a {what} software component has no measurement value")
    return value


def sw_components_digest(components: list[Mapping[int, Any]]) -> bytes:
    """SHA-256 over each component's type, measurement value, signer id and version, in order:
    the one register a PSA or CCA platform's software can be pinned by."""
    digest = hashlib.sha256(b"chronoseal/sw-components/v1\x00")
    for item in components:
        for key in (SW_TYPE, SW_VALUE, SW_SIGNER, SW_VERSION):
            field = item.get(key, b"")
            encoded = field.encode() if isinstance(field, str) else field
            if not isinstance(encoded, bytes):
                raise _malformed(f"software component field {key} is neither text nor bytes")
            digest.update(len(encoded).to_bytes(4, "big") + encoded)
    return digest.digest()


def _describe(components: list[Mapping[int, Any]]) -> str:
    return ", ".join(
        f"{item.get(SW_TYPE, '?')} {item.get(SW_VERSION, '')}".strip() for item in components
    )


def verify_cca_token(token: bytes, cpak_pem: bytes) -> VerifiedClaims:
    """Verify a CCA token against the CPAK; return the realm's claims."""
    cpak = load_ec_public_key(cpak_pem, "CPAK")
    collection = _loads(bytes(token), "CCA token")
    if not isinstance(collection, cbor2.CBORTag) or collection.tag != CCA_TAG:
        raise _malformed("a CCA token is CBOR tag 399 (the CCA token collection)")
    parts = collection.value
    if not isinstance(parts, dict) or set(parts) != {CCA_PLATFORM, CCA_REALM}:
        raise _malformed("the CCA token collection must hold exactly a platform and a realm token")
    platform_token, realm_token = parts[CCA_PLATFORM], parts[CCA_REALM]
    if not isinstance(platform_token, bytes) or not isinstance(realm_token, bytes):
        raise _malformed("the CCA platform and realm tokens must be byte strings")
    _, realm_payload, _, realm_alg = _sign1_parts(realm_token, "realm token")
    unverified = _loads(realm_payload, "realm token payload")
    if not isinstance(unverified, dict):
        raise _malformed("the realm token payload is not a claims map")
    rak = _rak(_bytes(unverified, R_RAK, "the realm public key (RAK)"), realm_alg)
    realm = verify_cose_sign1(realm_token, rak)
    platform = verify_cose_sign1(platform_token, cpak)
    profile = _text(platform, P_PROFILE, "the platform profile")
    if profile not in CCA_PLATFORM_PROFILES:
        raise _unsupported(f"CCA platform profile {profile!r} is not supported", profile=profile)
    if R_PROFILE in realm and realm[R_PROFILE] not in CCA_REALM_PROFILES:
        raise _unsupported(f"CCA realm profile {realm[R_PROFILE]!r} is not supported")
    rak_raw = _bytes(realm, R_RAK, "the realm public key (RAK)")
    rak_hash = _text(realm, R_RAK_HASH_ALGO, "the RAK hash algorithm")
    nonce = _bytes(platform, P_NONCE, "the platform nonce")
    expected = _hash(rak_hash, rak_raw)
    if not hmac.compare_digest(nonce, expected):
        raise AttestationError(
            f"the platform token's nonce is not the {rak_hash} of the realm's RAK: this realm "
            "token was not issued on the platform that signed the platform token",
            id="attest.cca.rak_not_bound",
            context={"rak_hash_algorithm": rak_hash},
        )
    challenge = _bytes(realm, R_CHALLENGE, "the realm challenge", (64,))
    measurement_hash = _text(realm, R_HASH_ALGO, "the realm measurement hash algorithm")
    _hash(measurement_hash, b"")
    rim = _bytes(realm, R_RIM, "the realm initial measurement", (32, 48, 64))
    rems = realm.get(R_REMS)
    if (
        not isinstance(rems, list)
        or len(rems) != REM_COUNT
        or not all(isinstance(rem, bytes) and len(rem) == len(rim) for rem in rems)
    ):
        raise _malformed("the realm token needs four extensible measurements of the RIM's size")
    lifecycle, secured = _lifecycle(_int(platform, P_LIFECYCLE, "the security lifecycle"))
    components = _sw_components(platform.get(P_SW_COMPONENTS), "platform")
    measurements = {"rim": rim, "rpv": _bytes(realm, R_PERSONALIZATION, "the RPV", (64,))}
    measurements.update({f"rem{index}": rem for index, rem in enumerate(rems)})
    measurements["platform_sw_components"] = sw_components_digest(components)
    return VerifiedClaims(
        tee=Tee.CCA,
        measurements=MappingProxyType(measurements),
        report_data=challenge,
        debug=not secured,
        tcb_status=TCB_STATUS_CCA_VERIFIED,
        platform=MappingProxyType(
            {
                "profile": profile,
                "implementation_id": _bytes(
                    platform, P_IMPLEMENTATION_ID, "the implementation id", (32,)
                ).hex(),
                "instance_id": _bytes(platform, P_INSTANCE_ID, "the instance id", (33,)).hex(),
                "lifecycle": lifecycle,
                "platform_config": _bytes(platform, P_CONFIG, "the platform config").hex(),
                "platform_hash_algorithm": _text(platform, P_HASH_ALGO, "the hash algorithm"),
                "realm_hash_algorithm": measurement_hash,
                "rak_hash_algorithm": rak_hash,
                "sw_components": _describe(components),
                "verification_service": str(platform.get(P_VERIFICATION_SERVICE, "")),
                "signing_key": "CPAK (platform), RAK (realm)",
            }
        ),
        warnings=MappingProxyType(
            {
                WARN_CCA_FIRMWARE: (
                    "the platform token is signed by the CPAK given as collateral and binds "
                    "this realm's RAK; its software components and lifecycle were not compared "
                    "with the vendor's reference values"
                )
            }
        ),
    )


def verify_psa_token(token: bytes, key_pem: bytes) -> VerifiedClaims:
    """Verify a PSA token (profile 2.0.0 or PSA_IOT_PROFILE_1) against its attestation key."""
    claims = verify_cose_sign1(bytes(token), load_ec_public_key(key_pem, "PSA attestation key"))
    for profile, keys in _PSA_KEYS.items():
        if claims.get(keys["profile"]) == profile:
            break
    else:
        named = claims.get(265, claims.get(-75000))
        raise _unsupported(
            f"PSA profile {named!r} is not supported ({PSA_PROFILE_2} or {PSA_PROFILE_1})"
        )
    nonce = _bytes(claims, keys["nonce"], "the nonce", (32, 48, 64))
    lifecycle, secured = _lifecycle(_int(claims, keys["lifecycle"], "the security lifecycle"))
    components = _sw_components(claims.get(keys["sw_components"]), "PSA")
    implementation_id = _bytes(claims, keys["implementation_id"], "the implementation id", (32,))
    platform = {
        "profile": profile,
        "instance_id": _bytes(claims, keys["instance_id"], "the instance id", (33,)).hex(),
        "boot_seed": _bytes(claims, keys["boot_seed"], "the boot seed", (8, 16, 32)).hex(),
        "lifecycle": lifecycle,
        "client_id": str(_int(claims, keys["client_id"], "the client id")),
        "sw_components": _describe(components),
        "signing_key": "the PSA initial attestation key given as collateral",
    }
    for name in ("certification_reference", "verification_service"):
        if isinstance(claims.get(keys[name]), str):
            platform[name] = claims[keys[name]]
    return VerifiedClaims(
        tee=Tee.PSA,
        measurements=MappingProxyType(
            {
                "implementation_id": implementation_id,
                "sw_components": sw_components_digest(components),
            }
        ),
        report_data=nonce,
        debug=not secured,
        tcb_status=TCB_STATUS_PSA_VERIFIED,
        platform=MappingProxyType(platform),
        warnings=MappingProxyType(
            {
                WARN_PSA_FIRMWARE: (
                    "the token is signed by the attestation key given as collateral; that key's "
                    "endorsement by the device vendor was not checked here"
                )
            }
        ),
    )
