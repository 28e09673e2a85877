"""One registry from TEE type to the code that verifies (and, where possible, produces) evidence.

The appraiser and the CLI never import a vendor module directly: they ask
:func:`get_backend`, so adding a TEE (claim 4 of the patent: SGX, TDX, SEV-SNP, Hygon CSV,
Arm CCA behind one abstraction) is one entry here. Verification is offline: whatever must
be fetched from Intel PCS or AMD KDS comes from an injected :data:`CollateralProvider`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Final, Protocol

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from chronoseal.attest._arm import token_instance_id, verify_cca_token, verify_psa_token
from chronoseal.attest._claims import VerifiedClaims
from chronoseal.attest._configfs import (
    PROVIDER_CCA,
    PROVIDER_SEV,
    PROVIDER_TDX,
    TSM_REPORT_ROOT,
    PseudoFilesystem,
    generate_tsm_report,
    parse_snp_cert_table,
)
from chronoseal.attest._csv import verify_csv_report
from chronoseal.attest._csv_guest import CSV_GUEST_DEVICE, CsvGuestAttester
from chronoseal.attest._dcap import verify_dcap_quote
from chronoseal.attest._evidence import Attester, Evidence, tee_type
from chronoseal.attest._gramine import GRAMINE_ATTESTATION_ROOT, generate_gramine_quote
from chronoseal.attest._simulated import SimulatedAttester, verify_simulated
from chronoseal.attest._snp import verify_snp_report
from chronoseal.errors import AttestationError, UnsupportedTee
from chronoseal.spec import Component, Tee

Collateral = bytes | Mapping[str, Any]
CollateralProvider = Callable[[Evidence], Collateral]
"""Returns what the verifier needs beyond the evidence.

sgx/tdx: the DCAP collateral JSON (bytes or mapping, the shape ``../shared/vectors`` uses).
sev-snp, only when the evidence carries no certificates: ``{"vcek": DER, "chain": PEM}``.
csv, only when the evidence carries no HSK || CEK: those 2,916 bytes (Hygon's KDS serves them
per chip serial). cca: the CPAK as PEM; psa: the attestation public key as PEM.
"""

MISSING_COLLATERAL: Final = "attest.collateral.missing"
ENDORSEMENTS_DIR: Final = Path("/etc/chronoseal/endorsements")
"""A verifier's endorsement store: ``cca/<instance id hex>.pem`` holds the CPAK the silicon
vendor endorsed for that platform, ``psa/<instance id hex>.pem`` a PSA device's key. Used
when no collateral provider is configured (the node's appraisers configure none)."""


class Backend(Protocol):
    """Verification (and generation, where chronoseal can run inside this TEE) for one type."""

    @property
    def tee(self) -> Tee: ...

    def verify(
        self,
        evidence: Evidence,
        *,
        now: datetime,
        collateral: CollateralProvider | None,
        max_age: timedelta | None,
    ) -> VerifiedClaims:
        """Return the claims of authentic evidence or raise :class:`AttestationError`."""
        ...

    def attester(self, component: Component) -> Attester:
        """An attester producing this type's evidence from inside the TEE."""
        ...


class GramineAttester:
    """SGX inside Gramine: the evidence is the DCAP quote read from ``/dev/attestation``."""

    def __init__(
        self,
        component: Component,
        *,
        root: Path = GRAMINE_ATTESTATION_ROOT,
        fs: PseudoFilesystem | None = None,
    ) -> None:
        self._component = component
        self._root = root
        self._fs = fs

    @property
    def tee(self) -> Tee:
        return Tee.SGX

    @property
    def component(self) -> Component:
        return self._component

    def attest(self, report_data: bytes) -> Evidence:
        quote = generate_gramine_quote(report_data, root=self._root, fs=self._fs)
        return Evidence(Tee.SGX, self._component, quote)


class TsmAttester:
    """TDX, SEV-SNP or Arm CCA guests through configfs-tsm.

    TDX evidence is the quote; CCA evidence is the CCA token (tag 399) the arm-cca-guest
    provider returns. SEV-SNP evidence is the report plus, when the host installed
    them in the auxblob, the VCEK (DER) and the ASK/ARK chain (PEM); without them the
    verifier's collateral provider must fetch both from AMD KDS.
    """

    _PROVIDERS: Final[Mapping[str, str]] = {
        "tdx": PROVIDER_TDX,
        "sev-snp": PROVIDER_SEV,
        "cca": PROVIDER_CCA,
    }

    def __init__(
        self,
        tee: Tee,
        component: Component,
        *,
        root: Path | None = None,
        fs: PseudoFilesystem | None = None,
    ) -> None:
        if tee not in self._PROVIDERS:
            raise UnsupportedTee(f"configfs-tsm does not produce {tee} evidence")
        self._tee = tee
        self._component = component
        self._root = TSM_REPORT_ROOT if root is None else root
        self._fs = fs

    @property
    def tee(self) -> Tee:
        return self._tee

    @property
    def component(self) -> Component:
        return self._component

    def attest(self, report_data: bytes) -> Evidence:
        report = generate_tsm_report(report_data, root=self._root, fs=self._fs)
        if report.provider != self._PROVIDERS[self._tee]:
            raise AttestationError(
                f"configfs-tsm provider is {report.provider!r}, not {self._PROVIDERS[self._tee]}",
                id="attest.configfs.unknown_provider",
                context={"provider": report.provider},
            )
        if self._tee in ("tdx", "cca"):
            return Evidence(self._tee, self._component, report.outblob)
        table = parse_snp_cert_table(report.auxblob)
        certificates: tuple[bytes, ...] = ()
        if table.vcek is not None and table.ask is not None and table.ark is not None:
            certificates = (table.vcek, _pem(table.ask) + _pem(table.ark))
        return Evidence(Tee.SEV_SNP, self._component, report.outblob, certificates)


def _pem(der: bytes) -> bytes:
    try:
        return x509.load_der_x509_certificate(der).public_bytes(Encoding.PEM)
    except ValueError as exc:
        raise AttestationError(
            "a certificate in the SEV-SNP auxblob is not DER", id="attest.snp.cert_table_malformed"
        ) from exc


class _SimulatedBackend:
    @property
    def tee(self) -> Tee:
        return Tee.SIMULATED

    def verify(
        self,
        evidence: Evidence,
        *,
        now: datetime,
        collateral: CollateralProvider | None,
        max_age: timedelta | None,
    ) -> VerifiedClaims:
        return verify_simulated(evidence, now=now, max_age=max_age)

    def attester(self, component: Component) -> SimulatedAttester:
        return SimulatedAttester(component)


class _DcapBackend:
    """SGX and TDX: the evidence is the raw quote; collateral comes from the provider."""

    def __init__(self, tee: Tee) -> None:
        self._tee = tee

    @property
    def tee(self) -> Tee:
        return self._tee

    def verify(
        self,
        evidence: Evidence,
        *,
        now: datetime,
        collateral: CollateralProvider | None,
        max_age: timedelta | None,
    ) -> VerifiedClaims:
        if collateral is None:
            raise AttestationError(
                f"{self._tee} evidence needs DCAP collateral and no provider was configured",
                id=MISSING_COLLATERAL,
            )
        claims = verify_dcap_quote(evidence.raw, collateral(evidence), now=now)
        if claims.tee != self._tee:
            raise AttestationError(
                f"evidence labelled {self._tee} holds a {claims.tee} quote",
                id="attest.evidence.malformed",
            )
        return claims

    def attester(self, component: Component) -> Attester:
        if self._tee == "sgx":
            return GramineAttester(component)
        return TsmAttester(Tee.TDX, component)


class _SnpBackend:
    """SEV-SNP: the evidence is the raw report plus (VCEK DER, ASK/ARK PEM) certificates."""

    @property
    def tee(self) -> Tee:
        return Tee.SEV_SNP

    def verify(
        self,
        evidence: Evidence,
        *,
        now: datetime,
        collateral: CollateralProvider | None,
        max_age: timedelta | None,
    ) -> VerifiedClaims:
        vcek, chain = self._certificates(evidence, collateral)
        return verify_snp_report(evidence.raw, vcek, chain, now=now)

    @staticmethod
    def _certificates(
        evidence: Evidence, collateral: CollateralProvider | None
    ) -> tuple[bytes, bytes]:
        if len(evidence.certificates) == 2:
            return evidence.certificates[0], evidence.certificates[1]
        if evidence.certificates:
            raise AttestationError(
                "sev-snp evidence carries the VCEK and the ASK/ARK chain, or nothing",
                id="attest.evidence.malformed",
            )
        if collateral is None:
            raise AttestationError(
                "sev-snp evidence has no certificates and no collateral provider is configured",
                id=MISSING_COLLATERAL,
            )
        fetched = collateral(evidence)
        vcek = fetched.get("vcek") if isinstance(fetched, Mapping) else None
        chain = fetched.get("chain") if isinstance(fetched, Mapping) else None
        if not isinstance(vcek, bytes) or not isinstance(chain, bytes):
            raise AttestationError(
                'sev-snp collateral must be {"vcek": DER bytes, "chain": PEM bytes}',
                id="attest.collateral.invalid",
            )
        return vcek, chain

    def attester(self, component: Component) -> Attester:
        return TsmAttester(Tee.SEV_SNP, component)


class _CsvBackend:
    """Hygon CSV: raw = report (wrapper), certificates = (HSK || CEK,) or from collateral."""

    @property
    def tee(self) -> Tee:
        return Tee.CSV

    def verify(
        self,
        evidence: Evidence,
        *,
        now: datetime,
        collateral: CollateralProvider | None,
        max_age: timedelta | None,
    ) -> VerifiedClaims:
        if len(evidence.certificates) == 1:
            hsk_cek = evidence.certificates[0]
        elif evidence.certificates:
            raise AttestationError(
                "csv evidence carries HSK || CEK as one certificate, or nothing",
                id="attest.evidence.malformed",
            )
        elif collateral is None:
            raise AttestationError(
                "csv evidence has no HSK/CEK and no collateral provider is configured (fetch "
                "HSK || CEK for the chip serial from Hygon's key distribution service)",
                id=MISSING_COLLATERAL,
            )
        else:
            fetched = collateral(evidence)
            if not isinstance(fetched, bytes):
                raise AttestationError(
                    "csv collateral must be the HSK || CEK bytes", id="attest.collateral.invalid"
                )
            hsk_cek = fetched
        return verify_csv_report(evidence.raw, hsk_cek)

    def attester(self, component: Component) -> Attester:
        return CsvGuestAttester(component)


class _ArmBackend:
    """Arm CCA and PSA tokens: raw = the token; the CPAK / attestation key is collateral.

    The key must come from the verifier's side (the silicon vendor's endorsement), never
    from the evidence, so there is no certificate slot to fall back on.
    """

    def __init__(self, tee: Tee) -> None:
        self._tee = tee

    @property
    def tee(self) -> Tee:
        return self._tee

    def verify(
        self,
        evidence: Evidence,
        *,
        now: datetime,
        collateral: CollateralProvider | None,
        max_age: timedelta | None,
    ) -> VerifiedClaims:
        if evidence.certificates:
            raise AttestationError(
                f"{self._tee} evidence carries no certificates: the key is collateral",
                id="attest.evidence.malformed",
            )
        what = "CPAK" if self._tee == "cca" else "PSA attestation key"
        if collateral is None:
            key: Collateral = self._endorsed_key(evidence, what)
        else:
            key = collateral(evidence)
        if not isinstance(key, bytes):
            raise AttestationError(
                f"{self._tee} collateral must be the {what} as PEM bytes",
                id="attest.collateral.invalid",
            )
        if self._tee == "cca":
            return verify_cca_token(evidence.raw, key)
        return verify_psa_token(evidence.raw, key)

    def _endorsed_key(self, evidence: Evidence, what: str) -> bytes:
        instance = token_instance_id(self._tee, evidence.raw).hex()
        path = ENDORSEMENTS_DIR / self._tee / f"{instance}.pem"
        if not path.is_file():
            raise AttestationError(
                f"{self._tee} evidence needs the {what} (PEM): no collateral provider is "
                f"configured and the endorsement store has no {path}",
                id=MISSING_COLLATERAL,
                context={"instance_id": instance},
            )
        return path.read_bytes()

    def attester(self, component: Component) -> Attester:
        if self._tee == "cca":
            return TsmAttester(Tee.CCA, component)
        raise UnsupportedTee(
            "chronoseal components do not run on PSA devices (microcontrollers): PSA tokens "
            "are verified only",
            context={"tee": "psa", "action": "generate"},
        )


_BACKENDS: Final[Mapping[Tee, Backend]] = {
    Tee.SIMULATED: _SimulatedBackend(),
    Tee.SGX: _DcapBackend(Tee.SGX),
    Tee.TDX: _DcapBackend(Tee.TDX),
    Tee.SEV_SNP: _SnpBackend(),
    Tee.CSV: _CsvBackend(),
    Tee.CCA: _ArmBackend(Tee.CCA),
    Tee.PSA: _ArmBackend(Tee.PSA),
}


def get_backend(tee: Tee | str) -> Backend:
    """The backend for ``tee``; unknown names raise ``attest.tee.unknown``."""
    return _BACKENDS[tee_type(tee)]


def attester_for(tee: Tee | str, component: Component) -> Attester:
    """The attester a component runs with for the TEE its task pins (claim 4: the same
    command on an SGX/Gramine, TDX, SEV-SNP, Hygon CSV or Arm CCA host produces that host's
    evidence).

    Refuses at once, with ``attest.tee.not_available`` naming what is missing, when this host
    cannot produce the pinned TEE's evidence; never falls back to another TEE.
    """
    attester = get_backend(tee).attester(component)
    device = {
        GramineAttester: GRAMINE_ATTESTATION_ROOT,
        TsmAttester: TSM_REPORT_ROOT,
        CsvGuestAttester: CSV_GUEST_DEVICE,
    }.get(type(attester))
    if device is not None and not device.exists():
        raise AttestationError(
            f"the task pins {tee} for the {component.value}, but this host cannot produce "
            f"{tee} evidence: {device} does not exist (run it inside a {tee} TEE, or pin "
            "another measurement)",
            id="attest.tee.not_available",
            context={"tee": str(tee), "device": str(device)},
        )
    return attester
