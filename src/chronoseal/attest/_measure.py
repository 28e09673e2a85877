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
import platform
import re
import struct
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Final

import chronoseal
from chronoseal.attest._claims import VerifiedClaims
from chronoseal.attest._evidence import ComponentKind, component_kind
from chronoseal.errors import AttestationError

CODE_TAG: Final = b"chronoseal/code-measurement/v1\x00"
_DIGEST_TAGS: Final = {
    "sgx": b"chronoseal/measurement/sgx/v1\x00",
    "tdx": b"chronoseal/measurement/tdx/v1\x00",
    "sev-snp": b"chronoseal/measurement/sev-snp/v1\x00",
}
_PACKAGE_ROOT: Final = Path(chronoseal.__file__).resolve().parent
_DISTRIBUTION: Final = "chronoseal"
_MISSING: Final = "<missing>"


def code_measurement(component: ComponentKind | str) -> bytes:
    """Return the simulated TEE's 32-byte measurement of ``component``'s installed code.

    Covers every file of the installed ``chronoseal`` package and the exact versions of its
    runtime dependency closure; computed once per process, since hashing the tree is slow.
    """
    return _code_measurement(component_kind(component), _PACKAGE_ROOT)


@functools.cache
def _code_measurement(component: ComponentKind, root: Path) -> bytes:
    return measure_code(component, _tree_digest_once(root), _dependency_digest_once())


def measure_code(component: ComponentKind, tree_digest: bytes, dependency_digest: bytes) -> bytes:
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


_NAME = re.compile(r"\s*([A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?)\s*(?:\[([^\]]*)\])?")


def _normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _parse_requirement(text: str) -> tuple[str, frozenset[str], str] | None:
    """Split a PEP 508 string into (normalised name, extras, marker text)."""
    spec, _, marker = text.partition(";")
    match = _NAME.match(spec)
    if match is None:
        return None
    extras = frozenset(
        _normalize(extra) for extra in (match.group(2) or "").split(",") if extra.strip()
    )
    return _normalize(match.group(1)), extras, marker.strip()


def _marker_holds(marker: str, extras: frozenset[str]) -> bool:
    if not marker:
        return True
    candidates = sorted(extras) or [""]
    return any(_Marker(marker, extra).evaluate() for extra in candidates)


_TOKEN = re.compile(
    r"""\s*(\(|\)|'[^']*'|"[^"]*"|===|==|!=|<=|>=|~=|<|>|not\s+in\b|in\b|and\b|or\b|[A-Za-z_][A-Za-z0-9_.]*)"""
)
_VERSION_VARIABLES: Final = frozenset({"python_version", "python_full_version"})


def _environment() -> dict[str, str]:
    info = sys.implementation.version
    return {
        "os_name": os.name,
        "sys_platform": sys.platform,
        "platform_machine": platform.machine(),
        "platform_python_implementation": platform.python_implementation(),
        "platform_release": platform.release(),
        "platform_system": platform.system(),
        "platform_version": platform.version(),
        "python_version": ".".join(platform.python_version_tuple()[:2]),
        "python_full_version": platform.python_version(),
        "implementation_name": sys.implementation.name,
        "implementation_version": f"{info.major}.{info.minor}.{info.micro}",
    }


class _Marker:
    """A small PEP 508 marker evaluator (chronoseal does not depend on ``packaging``)."""

    def __init__(self, text: str, extra: str) -> None:
        self._tokens = self._tokenize(text)
        self._index = 0
        self._env = _environment() | {"extra": extra}

    @staticmethod
    def _tokenize(text: str) -> list[str]:
        tokens: list[str] = []
        position = 0
        while position < len(text.rstrip()):
            match = _TOKEN.match(text, position)
            if match is None:
                raise AttestationError(
                    f"cannot parse dependency marker {text!r}", id="attest.measurement.marker"
                )
            tokens.append(re.sub(r"\s+", " ", match.group(1)))
            position = match.end()
        return tokens

    def evaluate(self) -> bool:
        result = self._or()
        if self._index != len(self._tokens):
            raise AttestationError("trailing tokens in marker", id="attest.measurement.marker")
        return result

    def _next(self) -> str:
        if self._index >= len(self._tokens):
            raise AttestationError("truncated dependency marker", id="attest.measurement.marker")
        token = self._tokens[self._index]
        self._index += 1
        return token

    def _peek(self) -> str | None:
        return self._tokens[self._index] if self._index < len(self._tokens) else None

    def _or(self) -> bool:
        result = self._and()
        while self._peek() == "or":
            self._next()
            result = self._and() or result
        return result

    def _and(self) -> bool:
        result = self._atom()
        while self._peek() == "and":
            self._next()
            result = self._atom() and result
        return result

    def _atom(self) -> bool:
        if self._peek() == "(":
            self._next()
            result = self._or()
            if self._next() != ")":
                raise AttestationError("unbalanced marker", id="attest.measurement.marker")
            return result
        left, op, right = self._next(), self._next(), self._next()
        versions = left in _VERSION_VARIABLES or right in _VERSION_VARIABLES
        is_extra = "extra" in (left, right)
        return _compare(self._value(left, is_extra), op, self._value(right, is_extra), versions)

    def _value(self, token: str, is_extra: bool) -> str:
        if token[:1] in {"'", '"'}:
            literal = token[1:-1]
            return _normalize(literal) if is_extra else literal
        if token not in self._env:
            raise AttestationError(
                f"unknown marker variable {token!r}", id="attest.measurement.marker"
            )
        return self._env[token]


def _compare(left: str, op: str, right: str, versions: bool) -> bool:
    if op in {"in", "not in"}:
        return (left in right) == (op == "in")
    if op == "===" or (not versions and op in {"==", "!="}):
        return (left == right) == (op != "!=")
    have, want = _version(left), _version(right.removesuffix(".*"))
    if right.endswith(".*") and op in {"==", "!="}:
        return (have[: len(want)] == want) == (op == "==")
    if op == "~=":
        return _padded(have, want) >= _padded(want, have) and have[: len(want) - 1] == want[:-1]
    a, b = _padded(have, want), _padded(want, have)
    outcomes = {"==": a == b, "!=": a != b, "<": a < b, "<=": a <= b, ">": a > b, ">=": a >= b}
    if op not in outcomes:
        raise AttestationError(f"unknown marker operator {op!r}", id="attest.measurement.marker")
    return outcomes[op]


def _padded(value: tuple[int, ...], other: tuple[int, ...]) -> tuple[int, ...]:
    return value + (0,) * (len(other) - len(value))


def _version(text: str) -> tuple[int, ...]:
    parts: list[int] = []
    for piece in text.split("."):
        digits = re.match(r"\d+", piece)
        if digits is None:
            break
        parts.append(int(digits.group()))
    return tuple(parts)


def measurement_digest(claims: VerifiedClaims) -> bytes:
    """The 32-byte digest registered on chain for the code these claims describe.

    simulated: the code measurement itself. sgx: SHA-256(tag || MRENCLAVE || MRSIGNER ||
    ISVPRODID as u16 LE). tdx: SHA-256(tag || MRTD || RTMR0 || RTMR1 || RTMR2 || RTMR3).
    sev-snp: SHA-256(tag || MEASUREMENT). Every tag is ``chronoseal/measurement/<tee>/v1\\0``
    and every register has its fixed size, so the concatenation is unambiguous.
    """
    if claims.tee == "simulated":
        return _register(claims, "code", 32)
    if claims.tee == "sgx":
        product = claims.svn.get("isvprodid")
        if product is None:
            raise AttestationError("sgx claims carry no ISVPRODID", id="attest.measurement.missing")
        registers = (
            _register(claims, "mrenclave", 32)
            + _register(claims, "mrsigner", 32)
            + product.to_bytes(2, "little")
        )
    elif claims.tee == "tdx":
        registers = b"".join(
            _register(claims, name, 48) for name in ("mrtd", "rtmr0", "rtmr1", "rtmr2", "rtmr3")
        )
    elif claims.tee == "sev-snp":
        registers = _register(claims, "measurement", 48)
    else:
        raise AttestationError(
            f"no measurement digest is defined for {claims.tee}", id="attest.tee.unsupported"
        )
    return hashlib.sha256(_DIGEST_TAGS[claims.tee] + registers).digest()


def _register(claims: VerifiedClaims, name: str, size: int) -> bytes:
    value = claims.measurements.get(name)
    if value is None or len(value) != size:
        raise AttestationError(
            f"{claims.tee} claims lack a {size}-byte {name}",
            id="attest.measurement.missing",
            context={"register": name},
        )
    return value
