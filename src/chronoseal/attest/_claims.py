"""Claims a verifier extracted from authentic evidence (RATS: the verifier's output before policy).

Backends (sgx, tdx, sev-snp, csv, cca, psa, simulated) turn raw evidence into
:class:`VerifiedClaims` only after the platform signature chain, collateral and freshness
checks passed; the appraisal policy (measurement approved on chain, debug off, TCB status
acceptable, key binding) runs on these.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from types import MappingProxyType

from chronoseal.spec import Tee


@dataclass(frozen=True, slots=True)
class VerifiedClaims:
    """What authentic evidence says about the attester.

    ``measurements`` maps register names in the vendor's vocabulary (``mrenclave``,
    ``mrsigner``, ``mrtd``, ``rtmr0``..``rtmr3``, ``measurement``, ``code``) to raw bytes.
    ``tcb_status`` uses Intel's names (``UpToDate``, ``SWHardeningNeeded``, ``OutOfDate``,
    ``Revoked`` ...) for SGX/TDX. SEV-SNP reports ``VcekMatched``: REPORTED_TCB equals the
    TCB the VCEK was issued for, which is all an offline check can say (AMD issues VCEKs for
    old TCBs too), so it is never ``UpToDate``.

    ``warnings`` maps warning ids to why: what the backend could not verify although the
    evidence is authentic (e.g. ``attest.snp.tcb_not_checked_against_latest``). The
    appraisal repeats them, so a verdict never says more than was checked.

    ``migratable`` is true when the TEE's policy lets the host move the guest (and its memory
    key) to another platform (Hygon CSV: POLICY.NOSEND clear); the appraisal refuses it
    unless the policy allows migration.
    """

    tee: Tee
    measurements: MappingProxyType[str, bytes]
    report_data: bytes
    debug: bool
    tcb_status: str
    advisory_ids: tuple[str, ...] = ()
    svn: MappingProxyType[str, int] = field(default_factory=lambda: MappingProxyType({}))
    platform: MappingProxyType[str, str] = field(default_factory=lambda: MappingProxyType({}))
    warnings: MappingProxyType[str, str] = field(default_factory=lambda: MappingProxyType({}))
    migratable: bool = False
