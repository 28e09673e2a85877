"""One component's trust in one task: whom it accepts, and how it proves itself.

A :class:`TaskTrust` is built once per (task, component) and is the only place the task's
appraisal policy (the measurements the chain approved, the digests the spec pins, whether
the consortium allows simulated TEEs), the component's attester (from the TEE its pin
names) and its RA-TLS identities are made; every channel a gateway, runtime or forecast
client opens or serves goes through it. A runtime's long-lived identity (posted on chain,
served, renewed before its evidence ages out) is a :class:`RuntimeIdentity`.

Layer: above :mod:`chronoseal.attest`, :mod:`chronoseal.channel` and
:mod:`chronoseal.ledger`, which it joins; below the components that use it.
"""

from ._identity import REATTEST_BLOCKS, RuntimeIdentity
from ._task import TaskTrust, attested_identity, pinned_attester

__all__ = [
    "REATTEST_BLOCKS",
    "RuntimeIdentity",
    "TaskTrust",
    "attested_identity",
    "pinned_attester",
]
