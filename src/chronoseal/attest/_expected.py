"""What an operator expects evidence to measure: the chain digest, or the vendor's own registers.

The chain stores a 32-byte digest (:func:`measurement_digest`), but vendor tools print raw
registers: ``sev-snp-measure`` the 48-byte MEASUREMENT, TDX tooling the 48-byte MRTD, and
``gramine-sgx-sigstruct-view`` MRENCLAVE, which is 32 bytes like the digest. So a bare hex
value keeps meaning the digest (a bare 48-byte value is taken as MEASUREMENT only for SEV-SNP,
where nothing else has that size), and a register is named with a prefix::

    <64 hex>                 the chain digest (any TEE)        digest:<64 hex>  the same
    measurement:<96 hex>     sev-snp MEASUREMENT               (bare <96 hex> too)
    mrtd:<96 hex>, rtmr0..3: tdx registers
    mrenclave:<64 hex>, mrsigner:<64 hex>, isvprodid:<int>:   sgx registers
    code:<64 hex>            simulated code measurement (is the digest)
    measure:<64 hex>         csv MEASURE (the launch digest)
    rim:<64 hex>             cca realm initial measurement (SHA-256 realms)
    implementation_id:<64 hex>, sw_components:<64 hex>:   psa registers

``NAME=VALUE`` is accepted as well, as ``chronoseal measure --register`` spells it. When the
registers given are all the digest covers, the digest is computed from them (through
:func:`measurement_digest`) and compared like a digest; otherwise only those registers can be
compared, and :class:`ExpectedMeasurement` says which ones were left out, so no caller can
report a partial comparison as a match.

Refusals are :class:`ConfigError` (bad operator input, not bad evidence) with ids:

* ``config.measurement.not_hex``      a value is not hex (or isvprodid not an integer)
* ``config.measurement.wrong_length`` a value has the wrong size for what it names
* ``config.measurement.unknown_form`` a prefix that names no register and is not ``digest``
* ``config.measurement.not_in_tee``   a register of another TEE (``mrtd`` for sev-snp ...)
* ``config.measurement.ambiguous``    a bare 48-byte value for tdx (MRTD? an RTMR?)
* ``config.measurement.conflict``     the same register twice, or a digest plus registers
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Final

from chronoseal.attest._evidence import tee_type
from chronoseal.attest._measure import DIGEST_REGISTERS, REGISTER_SIZES, register_digest
from chronoseal.errors import AttestationError, ConfigError
from chronoseal.spec import Tee

__all__ = ["DIGEST_SIZE", "ExpectedMeasurement", "parse_expected_measurement"]

DIGEST_SIZE: Final = 32
_DIGEST_PREFIX: Final = "digest"
_INTEGER_REGISTERS: Final = frozenset({"isvprodid"})
_U16_MAX: Final = 0xFFFF
_ALL_REGISTERS: Final = frozenset(name for names in DIGEST_REGISTERS.values() for name in names)


@dataclass(frozen=True, slots=True)
class ExpectedMeasurement:
    """An operator's expectation, resolved for one TEE.

    ``digest`` is the 32-byte chain digest when it is known (given, or computed from every
    register it covers); then a digest comparison is a full match. When it is ``None``,
    only ``registers`` can be compared and ``uncompared`` names the rest of the digest.
    """

    tee: Tee
    digest: bytes | None
    registers: Mapping[str, bytes | int] = field(default_factory=lambda: MappingProxyType({}))

    @property
    def uncompared(self) -> tuple[str, ...]:
        """Registers of the digest this expectation does not cover (empty for a full match)."""
        if self.digest is not None:
            return ()
        return tuple(name for name in DIGEST_REGISTERS[self.tee] if name not in self.registers)

    def describe(self) -> str:
        """One line for an operator: what will be compared, and what will not."""
        if self.digest is None:
            given = ", ".join(self.registers)
            return (
                f"{given} only; {', '.join(self.uncompared)} not compared, so the chain digest "
                "cannot be matched"
            )
        if not self.registers:
            return f"chain digest {self.digest.hex()}"
        return f"chain digest {self.digest.hex()}, computed from {', '.join(self.registers)}"


def parse_expected_measurement(tee: Tee | str, values: Sequence[str]) -> ExpectedMeasurement:
    """Parse ``--measurement`` values (one or more) for evidence of ``tee``.

    Raises :class:`ConfigError` with an id from the module docstring; ``ValueError`` if
    ``values`` is empty (nothing to expect is the caller's case to handle).
    """
    if not values:
        raise ValueError("no measurement values to parse")
    kind = _tee(tee)
    digest: bytes | None = None
    registers: dict[str, bytes | int] = {}
    for text in values:
        name, value = _parse_one(kind, text)
        if digest is not None or (name == _DIGEST_PREFIX and registers):
            raise _conflict(text, "a digest can be given once, and not with registers")
        if name == _DIGEST_PREFIX and isinstance(value, bytes):
            digest = value
        elif name in registers:
            raise _conflict(text, f"{name} is given twice")
        else:
            registers[name] = value
    if digest is not None:
        return ExpectedMeasurement(kind, digest)
    ordered = {name: registers[name] for name in DIGEST_REGISTERS[kind] if name in registers}
    if len(ordered) == len(DIGEST_REGISTERS[kind]):
        try:
            digest = register_digest(kind, ordered)
        except AttestationError as exc:  # pragma: no cover - every register was checked above
            raise ConfigError(exc.message, id="config.measurement.wrong_length") from exc
    return ExpectedMeasurement(kind, digest, MappingProxyType(ordered))


def _tee(tee: Tee | str) -> Tee:
    try:
        kind = tee_type(tee)
    except AttestationError as exc:
        raise ConfigError(exc.message, id="config.measurement.not_in_tee") from exc
    if kind not in DIGEST_REGISTERS:
        raise ConfigError(
            f"{kind} evidence has no measurement digest to compare against",
            id="config.measurement.not_in_tee",
            context={"tee": kind},
        )
    return kind


def _parse_one(tee: Tee, text: str) -> tuple[str, bytes | int]:
    """Return (register name or ``digest``, value) for one option value."""
    stripped = text.strip()
    name, value = _split(stripped)
    if name is None:
        return _bare(tee, text, _hex(text, value))
    if name == _DIGEST_PREFIX:
        return name, _sized(text, _hex(text, value), DIGEST_SIZE, "the chain digest")
    if name not in _ALL_REGISTERS:
        raise ConfigError(
            f"{text!r}: {name!r} is not a measurement form; use a bare chain digest, "
            f"digest:HEX or one of {_register_list(tee)}",
            id="config.measurement.unknown_form",
            context={"form": name},
        )
    if name not in DIGEST_REGISTERS[tee]:
        raise ConfigError(
            f"{text!r}: {name} is not a {tee} register; {tee} takes {_register_list(tee)}",
            id="config.measurement.not_in_tee",
            context={"register": name, "tee": tee},
        )
    if name in _INTEGER_REGISTERS:
        return name, _u16(text, value)
    return name, _sized(text, _hex(text, value), REGISTER_SIZES[name], name.upper())


def _split(text: str) -> tuple[str | None, str]:
    """Split ``NAME:VALUE`` / ``NAME=VALUE``; hex never contains either separator."""
    for separator in (":", "="):
        name, found, value = text.partition(separator)
        if found:
            return name.strip().lower(), value.strip()
    return None, text


def _bare(tee: Tee, text: str, value: bytes) -> tuple[str, bytes | int]:
    if len(value) == DIGEST_SIZE:
        return _DIGEST_PREFIX, value
    if tee == "sev-snp" and len(value) == REGISTER_SIZES["measurement"]:
        return "measurement", value
    if tee == "tdx" and len(value) == REGISTER_SIZES["mrtd"]:
        raise ConfigError(
            f"{_short(text)}: a bare 48-byte value for tdx could be MRTD or an RTMR; write "
            "mrtd:HEX (compares MRTD only) or give the 32-byte chain digest",
            id="config.measurement.ambiguous",
            context={"length": len(value)},
        )
    native = " or 48 (MEASUREMENT)" if tee == "sev-snp" else ""
    raise ConfigError(
        f"{_short(text)}: {len(value)} bytes; a bare value is the {DIGEST_SIZE}-byte chain "
        f"digest{native}; name a register as NAME:HEX ({_register_list(tee)})",
        id="config.measurement.wrong_length",
        context={"length": len(value)},
    )


def _hex(text: str, value: str) -> bytes:
    digits = value.strip()
    if digits[:2] in ("0x", "0X"):
        digits = digits[2:]
    try:
        decoded = bytes.fromhex(digits)
    except ValueError:
        decoded = b""
        digits = ""
    if not digits or len(digits) != 2 * len(decoded):
        raise ConfigError(f"{_short(text)} is not a hex value", id="config.measurement.not_hex")
    return decoded


def _sized(text: str, value: bytes, size: int, what: str) -> bytes:
    if len(value) != size:
        raise ConfigError(
            f"{_short(text)}: {what} is {size} bytes, got {len(value)}",
            id="config.measurement.wrong_length",
            context={"length": len(value), "expected": size},
        )
    return value


def _u16(text: str, value: str) -> int:
    try:
        number = int(value, 0)
    except ValueError as exc:
        raise ConfigError(
            f"{_short(text)}: ISVPRODID must be an integer", id="config.measurement.not_hex"
        ) from exc
    if not 0 <= number <= _U16_MAX:
        raise ConfigError(
            f"{_short(text)}: ISVPRODID is a u16 (0..65535), got {number}",
            id="config.measurement.wrong_length",
        )
    return number


def _conflict(text: str, why: str) -> ConfigError:
    return ConfigError(f"{_short(text)}: {why}", id="config.measurement.conflict")


def _register_list(tee: Tee) -> str:
    return ", ".join(
        f"{name}:{'INT' if name in _INTEGER_REGISTERS else 'HEX'}" for name in DIGEST_REGISTERS[tee]
    )


def _short(text: str) -> str:
    """Quote operator input in messages without echoing a whole pasted file."""
    return repr(text if len(text) <= 120 else text[:117] + "...")
