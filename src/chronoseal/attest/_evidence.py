"""Evidence as it travels between attester and verifier, with a deterministic wire encoding.

The envelope names the TEE and the component that claims to have produced it; only the
backend's signature check makes either trustworthy. The encoding is length-prefixed so that a
given :class:`Evidence` has exactly one byte string (its hash is what goes on chain) and any
truncation, padding or unknown field is refused instead of guessed at.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Final, Protocol

from chronoseal.errors import AttestationError
from chronoseal.spec import Component, Tee

MALFORMED: Final = "attest.evidence.malformed"

_MAGIC: Final = b"CSEV"
_VERSION: Final = 1
# Bounds keep a hostile peer from making us allocate: a DCAP quote with its PEM chain is
# under 8 KiB, configfs caps outblob at 32 KiB, certificates are a few KiB each.
_MAX_RAW: Final = 1 << 20
_MAX_CERT: Final = 1 << 16
_MAX_CERTS: Final = 8
_TEE_TYPES: Final[frozenset[str]] = frozenset(t.value for t in Tee)


def component_kind(value: Component | str) -> Component:
    """Coerce a component name, refusing unknown ones with a stable id."""
    try:
        return Component(value)
    except ValueError as exc:
        known = ", ".join(kind.value for kind in Component)
        raise AttestationError(
            f"unknown component kind {value!r} (expected one of {known})",
            id="attest.component.unknown",
        ) from exc


def tee_type(value: str) -> Tee:
    """Coerce a TEE name to :class:`~chronoseal.spec.Tee`, refusing unknown ones with a
    stable id."""
    if value in _TEE_TYPES:
        return Tee(value)
    raise AttestationError(
        f"unknown TEE type {value!r} (expected one of {', '.join(sorted(_TEE_TYPES))})",
        id="attest.tee.unknown",
    )


@dataclass(frozen=True, slots=True)
class Evidence:
    """Raw attestation evidence plus the certificates its verifier needs.

    ``raw`` is the vendor's own structure (a DCAP quote, an SNP report, a simulated signed
    statement); ``certificates`` carries what must travel with it (SNP: VCEK DER then the
    ASK/ARK PEM chain; simulated: the platform public key as DER SPKI).
    """

    tee: Tee
    component: Component
    raw: bytes
    certificates: tuple[bytes, ...] = ()

    def __post_init__(self) -> None:
        # Names arrive as plain strings from configs and CLIs; refuse unknown ones here, once.
        object.__setattr__(self, "tee", tee_type(self.tee))
        object.__setattr__(self, "component", component_kind(self.component))
        object.__setattr__(self, "certificates", tuple(self.certificates))

    def to_bytes(self) -> bytes:
        """Encode deterministically: the same evidence always gives the same bytes."""
        if len(self.raw) > _MAX_RAW or len(self.certificates) > _MAX_CERTS:
            raise AttestationError("evidence is too large to encode", id=MALFORMED)
        if any(len(cert) > _MAX_CERT for cert in self.certificates):
            raise AttestationError("an evidence certificate is too large", id=MALFORMED)
        parts = [
            _MAGIC,
            bytes([_VERSION]),
            _short(self.tee.encode()),
            _short(self.component.value.encode()),
            _long(self.raw),
            bytes([len(self.certificates)]),
        ]
        parts.extend(_long(cert) for cert in self.certificates)
        return b"".join(parts)

    @classmethod
    def from_bytes(cls, data: bytes) -> Evidence:
        """Decode :meth:`to_bytes` output; anything else raises ``attest.evidence.malformed``."""
        reader = _Reader(bytes(data))
        if reader.take(len(_MAGIC)) != _MAGIC:
            raise AttestationError("not chronoseal evidence (bad magic)", id=MALFORMED)
        version = reader.take(1)[0]
        if version != _VERSION:
            raise AttestationError(f"unsupported evidence version {version}", id=MALFORMED)
        tee = reader.text()
        component = reader.text()
        raw = reader.blob(_MAX_RAW)
        count = reader.take(1)[0]
        if count > _MAX_CERTS:
            raise AttestationError(f"too many certificates ({count})", id=MALFORMED)
        certificates = tuple(reader.blob(_MAX_CERT) for _ in range(count))
        reader.finish()
        try:
            return cls(tee_type(tee), component_kind(component), raw, certificates)
        except AttestationError as exc:
            raise AttestationError(f"evidence names {tee!r}/{component!r}", id=MALFORMED) from exc


class Attester(Protocol):
    """Produces evidence for one component inside one kind of TEE (RATS: the attester)."""

    @property
    def tee(self) -> Tee: ...

    @property
    def component(self) -> Component: ...

    def attest(self, report_data: bytes) -> Evidence:
        """Return fresh evidence whose REPORTDATA is exactly ``report_data`` (64 bytes)."""
        ...


def _short(value: bytes) -> bytes:
    return struct.pack(">H", len(value)) + value


def _long(value: bytes) -> bytes:
    return struct.pack(">I", len(value)) + value


class _Reader:
    """Strict cursor over length-prefixed fields: short reads and trailing bytes are errors."""

    __slots__ = ("_data", "_offset")

    def __init__(self, data: bytes) -> None:
        self._data = data
        self._offset = 0

    def take(self, size: int) -> bytes:
        end = self._offset + size
        if end > len(self._data):
            raise AttestationError("evidence is truncated", id=MALFORMED)
        chunk = self._data[self._offset : end]
        self._offset = end
        return chunk

    def text(self) -> str:
        (size,) = struct.unpack(">H", self.take(2))
        try:
            return self.take(size).decode("ascii")
        except UnicodeDecodeError as exc:
            raise AttestationError("evidence field is not ASCII", id=MALFORMED) from exc

    def blob(self, limit: int) -> bytes:
        (size,) = struct.unpack(">I", self.take(4))
        if size > limit:
            raise AttestationError(f"evidence field of {size} bytes is too large", id=MALFORMED)
        return self.take(size)

    def finish(self) -> None:
        if self._offset != len(self._data):
            raise AttestationError("trailing bytes after evidence", id=MALFORMED)
