"""Measurements: what the chain approves for a component, for each kind of TEE.

The chain stores one 32-byte digest per (component, TEE type) rather than raw registers, so
that SGX (MRENCLAVE, MRSIGNER, ISVPRODID), TDX (MRTD, RTMR0-3) and SEV-SNP (MEASUREMENT)
share one contract slot. For the simulated TEE the measurement is a hash of the installed
code itself: the closest software-only stand-in for what a real TEE would measure.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.metadata
import os
import struct
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Final

from packaging.markers import Marker
from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

import chronoseal
from chronoseal.attest._claims import VerifiedClaims
from chronoseal.attest._evidence import component_kind, tee_type
from chronoseal.errors import AttestationError
from chronoseal.spec import Component, Tee

CODE_TAG: Final = b"chronoseal/code-measurement/v1\x00"
_DIGEST_TAGS: Final = {
    "sgx": b"chronoseal/measurement/sgx/v1\x00",
    "tdx": b"chronoseal/measurement/tdx/v1\x00",
    "sev-snp": b"chronoseal/measurement/sev-snp/v1\x00",
    "csv": b"chronoseal/measurement/csv/v1\x00",
    "cca": b"chronoseal/measurement/cca/v1\x00",
    "psa": b"chronoseal/measurement/psa/v1\x00",
}
DIGEST_REGISTERS: Final[Mapping[str, tuple[str, ...]]] = MappingProxyType(
    {
        "simulated": ("code",),
        "sgx": ("mrenclave", "mrsigner", "isvprodid"),
        "tdx": ("mrtd", "rtmr0", "rtmr1", "rtmr2", "rtmr3"),
        "sev-snp": ("measurement",),
        "csv": ("measure",),
        "cca": ("rim",),
        "psa": ("implementation_id", "sw_components"),
    }
)
"""The registers each TEE's chain digest covers, in the order :func:`measurement_digest`
combines them; a check of fewer registers is not a match of the digest."""
REGISTER_SIZES: Final[Mapping[str, int]] = MappingProxyType(
    {
        "code": 32,
        "mrenclave": 32,
        "mrsigner": 32,
        "mrtd": 48,
        "rtmr0": 48,
        "rtmr1": 48,
        "rtmr2": 48,
        "rtmr3": 48,
        "measurement": 48,
        "measure": 32,
        "rim": 32,
        "implementation_id": 32,
        "sw_components": 32,
    }
)
"""Byte size of every byte-valued digest register (``isvprodid`` is an integer, u16)."""
_PACKAGE_ROOT: Final = Path(chronoseal.__file__).resolve().parent
_DISTRIBUTION: Final = "chronoseal"
_MISSING: Final = "<missing>"


def code_measurement(component: Component | str) -> bytes:
    """Return the simulated TEE's 32-byte measurement of ``component``'s installed code.

    Covers every file of the installed ``chronoseal`` package and the exact versions of its
    runtime dependency closure; computed once per process, since hashing the tree is slow.
    """
    return _code_measurement(component_kind(component), _PACKAGE_ROOT)


@functools.cache
def _code_measurement(component: Component, root: Path) -> bytes:
    return measure_code(component, _tree_digest_once(root), _dependency_digest_once())


def measure_code(component: Component, tree_digest: bytes, dependency_digest: bytes) -> bytes:
    """Combine the code tree and the dependency set into one component measurement."""
    name = component.value.encode()
    return hashlib.sha256(CODE_TAG + _prefixed(name) + tree_digest + dependency_digest).digest()


@functools.cache
def _tree_digest_once(root: Path) -> bytes:
    return tree_digest(root)


@functools.cache
def _dependency_digest_once() -> bytes:
    return dependency_digest(installed_dependencies(_DISTRIBUTION))


def tree_digest(root: Path) -> bytes:
    """SHA-256 over (relative path, content hash) of every file under ``root``, sorted."""
    outer = hashlib.sha256()
    for relative, path in sorted(_source_files(root)):
        outer.update(_prefixed(relative.encode()))
        outer.update(hashlib.sha256(path.read_bytes()).digest())
    return outer.digest()


def dependency_digest(pins: Iterable[str]) -> bytes:
    """SHA-256 over sorted ``name==version`` pins."""
    outer = hashlib.sha256()
    for pin in sorted(pins):
        outer.update(_prefixed(pin.encode()))
    return outer.digest()


def _source_files(root: Path) -> Iterator[tuple[str, Path]]:
    for directory, subdirs, files in os.walk(root):
        subdirs[:] = [name for name in subdirs if name != "__pycache__"]
        for name in files:
            if name.endswith((".pyc", ".pyo")):
                continue
            path = Path(directory, name)
            if path.is_file():
                yield path.relative_to(root).as_posix(), path


def _prefixed(value: bytes) -> bytes:
    return struct.pack(">I", len(value)) + value


def installed_dependencies(distribution: str) -> frozenset[str]:
    """The transitive runtime requirements of ``distribution`` as ``name==version`` pins.

    Extras requested along the way (``eth-tester[py-evm]``) are followed; requirements whose
    environment marker is false here are left out. A required but absent distribution is
    pinned as ``name==<missing>`` so the measurement still says what was (not) there.
    """
    pins: dict[str, str] = {}
    followed: dict[str, frozenset[str]] = {}
    pending: list[tuple[str, frozenset[str]]] = [(distribution, frozenset())]
    while pending:
        name, extras = pending.pop()
        for text in _requires(name):
            requirement = _parse_requirement(text)
            if requirement is None or not _marker_holds(requirement[2], extras):
                continue
            dep, dep_extras = requirement[0], requirement[1]
            known = followed.get(dep)
            if known is not None and dep_extras <= known:
                continue
            followed[dep] = dep_extras | (known or frozenset())
            try:
                pins[dep] = importlib.metadata.version(dep)
            except importlib.metadata.PackageNotFoundError:
                pins[dep] = _MISSING
                continue
            pending.append((dep, followed[dep]))
    return frozenset(f"{name}=={version}" for name, version in pins.items())


def _requires(name: str) -> list[str]:
    try:
        return importlib.metadata.requires(name) or []
    except importlib.metadata.PackageNotFoundError:
        return []


def _normalize(name: str) -> str:
    return canonicalize_name(name)


def _parse_requirement(text: str) -> tuple[str, frozenset[str], Marker | None] | None:
    """A PEP 508 string as (normalised name, extras, marker), parsed by ``packaging``."""
    try:
        requirement = Requirement(text)
    except InvalidRequirement:
        return None
    extras = frozenset(canonicalize_name(e) for e in requirement.extras)
    return canonicalize_name(requirement.name), extras, requirement.marker


def _marker_holds(marker: Marker | None, extras: frozenset[str]) -> bool:
    """True when the requirement applies here, for any extra we were asked for."""
    if marker is None:
        return True
    return any(marker.evaluate({"extra": extra}) for extra in (sorted(extras) or [""]))


def installed_measurement(component: Component | str, tee: str) -> bytes:
    """Resolve a task's ``value = "installed"`` pin: the simulated TEE's code measurement.

    The spec allows ``installed`` only with ``tee = "simulated"``; anything else is refused
    here too, so a real TEE pin can never be filled in from the local code.
    """
    if tee != "simulated":
        raise AttestationError(
            f"'installed' names the local code, which only a simulated TEE runs (got {tee})",
            id="attest.measurement.installed_not_simulated",
        )
    return code_measurement(component)


def measurement_digest(claims: VerifiedClaims) -> bytes:
    """The 32-byte digest registered on chain for the code these claims describe.

    simulated: the code measurement itself. sgx: SHA-256(tag || MRENCLAVE || MRSIGNER ||
    ISVPRODID as u16 LE). tdx: SHA-256(tag || MRTD || RTMR0 || RTMR1 || RTMR2 || RTMR3).
    sev-snp: SHA-256(tag || MEASUREMENT). csv: SHA-256(tag || MEASURE) (the launch digest;
    V2's RTMRs are claims, not part of it). cca: SHA-256(tag || len(RIM) as one byte || RIM).
    psa: SHA-256(tag || IMPLEMENTATION_ID || SHA-256 of the software components, see
    ``_arm.sw_components_digest``). Every tag is ``chronoseal/measurement/<tee>/v1\\0``
    and every register has its fixed size, so the concatenation is unambiguous.
    """
    if claims.tee == "simulated":
        return _register(claims, "code", 32)
    if claims.tee == "sgx":
        product = claims.svn.get("isvprodid")
        if product is None:
            raise AttestationError("sgx claims carry no ISVPRODID", id="attest.measurement.missing")
        if not 0 <= product <= 0xFFFF:
            raise AttestationError(
                f"ISVPRODID {product} is not a u16", id="attest.measurement.missing"
            )
        registers = (
            _register(claims, "mrenclave", 32)
            + _register(claims, "mrsigner", 32)
            + product.to_bytes(2, "little")
        )
    elif claims.tee == "tdx":
        registers = b"".join(_register(claims, name, 48) for name in DIGEST_REGISTERS["tdx"])
    elif claims.tee == "sev-snp":
        registers = _register(claims, "measurement", 48)
    elif claims.tee == "csv":
        registers = _register(claims, "measure", 32)
    elif claims.tee == "cca":
        registers = _cca_rim(claims)
    elif claims.tee == "psa":
        registers = _register(claims, "implementation_id", 32) + _register(
            claims, "sw_components", 32
        )
    else:
        raise AttestationError(
            f"no measurement digest is defined for {claims.tee}", id="attest.tee.unsupported"
        )
    return hashlib.sha256(_DIGEST_TAGS[claims.tee] + registers).digest()


def register_digest(tee: Tee | str, registers: Mapping[str, bytes | int]) -> bytes:
    """The chain digest of raw register values, as a vendor tool prints them.

    Goes through :func:`measurement_digest` itself, on claims holding only these registers,
    so the combination cannot drift from what the appraisal computes from real evidence.
    Raises ``attest.measurement.missing`` when a register of the digest is absent.
    """
    claims = VerifiedClaims(
        tee=tee_type(tee),
        measurements=MappingProxyType(
            {name: value for name, value in registers.items() if isinstance(value, bytes)}
        ),
        report_data=bytes(64),
        debug=False,
        tcb_status="NotEvidence",
        svn=MappingProxyType(
            {name: value for name, value in registers.items() if isinstance(value, int)}
        ),
    )
    return measurement_digest(claims)


def _cca_rim(claims: VerifiedClaims) -> bytes:
    """The RIM's size follows the realm's hash algorithm (32, 48 or 64 bytes): prefix it."""
    rim = claims.measurements.get("rim")
    if rim is None or len(rim) not in (32, 48, 64):
        raise AttestationError(
            "cca claims lack a 32-, 48- or 64-byte rim",
            id="attest.measurement.missing",
            context={"register": "rim"},
        )
    return bytes([len(rim)]) + rim


def _register(claims: VerifiedClaims, name: str, size: int) -> bytes:
    value = claims.measurements.get(name)
    if value is None or len(value) != size:
        raise AttestationError(
            f"{claims.tee} claims lack a {size}-byte {name}",
            id="attest.measurement.missing",
            context={"register": name},
        )
    return value
