"""TEEs chronoseal names (patent claim 4) but cannot attest: Arm TrustZone without PSA tokens.

Public surface::

    UNSUPPORTED_TEES: Mapping[str, UnsupportedTeeInfo]    # "trustzone"
    generate_unsupported(tee: str, report_data: bytes) -> NoReturn
    verify_unsupported(tee: str, raw: bytes, *, now: datetime) -> NoReturn

Hygon CSV, Arm CCA and PSA tokens (TrustZone-M's attestation) have verifiers now (``_csv``,
``_arm``); what remains is TrustZone-A, which defines no attestation of its own. It is
registered so that configurations and on-chain records can name them and get a
precise refusal, never a fake success: both functions always raise :class:`UnsupportedTee`
(id ``attest.tee.unsupported``) whose message says what an implementation would need. An
unknown name raises :class:`AttestationError` with id ``attest.tee.unknown``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from types import MappingProxyType
from typing import Final, Literal, NoReturn

from chronoseal.errors import AttestationError, UnsupportedTee

__all__ = [
    "UNSUPPORTED_TEES",
    "UnsupportedTeeInfo",
    "generate_unsupported",
    "verify_unsupported",
]


@dataclass(frozen=True, slots=True)
class UnsupportedTeeInfo:
    """A TEE without an implementation: its name and what generating/verifying would need."""

    title: str
    generation_needs: str
    verification_needs: str


UNSUPPORTED_TEES: Final[Mapping[str, UnsupportedTeeInfo]] = MappingProxyType(
    {
        "trustzone": UnsupportedTeeInfo(
            title="Arm TrustZone",
            generation_needs=(
                "a vendor trusted application (e.g. an OP-TEE PTA producing an fTPM quote); "
                "TrustZone itself defines no remote attestation (PSA tokens: use tee psa)"
            ),
            verification_needs=(
                "that vendor's token format and its endorsed attestation keys, i.e. a "
                "vendor-specific backend with real tokens to test against"
            ),
        ),
    }
)


def _info(tee: str) -> UnsupportedTeeInfo:
    info = UNSUPPORTED_TEES.get(tee)
    if info is None:
        raise AttestationError(
            f"unknown TEE type {tee!r}",
            id="attest.tee.unknown",
            context={"tee": tee, "unsupported": sorted(UNSUPPORTED_TEES)},
        )
    return info


def _refusal(tee: str, action: Literal["generate", "verify"]) -> UnsupportedTee:
    info = _info(tee)
    needs = info.generation_needs if action == "generate" else info.verification_needs
    return UnsupportedTee(
        f"not supported yet: chronoseal cannot {action} {info.title} evidence. "
        f"It would need {needs}.",
        context={"tee": tee, "action": action},
    )


def generate_unsupported(tee: str, report_data: bytes) -> NoReturn:
    """Refuse to produce evidence for ``tee``; always raises :class:`UnsupportedTee`."""
    raise _refusal(tee, "generate")


def verify_unsupported(tee: str, raw: bytes, *, now: datetime) -> NoReturn:
    """Refuse to verify evidence for ``tee``; always raises :class:`UnsupportedTee`."""
    raise _refusal(tee, "verify")
