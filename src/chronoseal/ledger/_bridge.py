"""The chain as the components' source of truth: measurement approvals and freshness.

These classes satisfy protocols defined elsewhere (``attest.MeasurementSource``, the
``Collection[bytes]`` of fresh nonces a channel server accepts) structurally, so neither
side imports the other.
"""

from __future__ import annotations

import hmac
from collections.abc import Iterator

from hexbytes import HexBytes

from chronoseal.ledger._consortium import Consortium
from chronoseal.ledger._errors import map_chain_errors
from chronoseal.ledger._types import ChainComponent, ChainRole, ChainTee, TaskView
from chronoseal.spec import OnChainTask, TaskSpec

_KINDS = frozenset(k.component.value for k in ChainComponent)
_TEES = frozenset(t.tee.value for t in ChainTee)


class OnChainMeasurements:
    """``attest.MeasurementSource`` backed by the consortium's registry: asked at each use,
    so a revocation takes effect on the next appraisal."""

    def __init__(self, consortium: Consortium) -> None:
        self._consortium = consortium

    def is_usable(self, component: str, tee: str, digest: bytes) -> bool:
        if str(component) not in _KINDS or str(tee) not in _TEES:
            return False
        return self._consortium.measurement_usable(
            ChainComponent.of(component), ChainTee.of(tee), digest
        )


class RecentBlocks:
    """The hashes of the last ``depth`` blocks: evidence bound to one of them is fresh.

    A live view: membership is checked against the chain at each use.
    """

    def __init__(self, consortium: Consortium, depth: int = 64) -> None:
        self._chain = consortium.chain
        self._depth = depth

    def latest(self) -> bytes:
        with map_chain_errors("eth_getBlockByNumber"):
            return bytes(self._chain.w3.eth.get_block("latest")["hash"])

    def _hashes(self) -> list[bytes]:
        top = self._chain.block_number()
        with map_chain_errors("eth_getBlockByNumber"):
            return [
                bytes(HexBytes(self._chain.w3.eth.get_block(n)["hash"]))
                for n in range(max(0, top - self._depth + 1), top + 1)
            ]

    def __contains__(self, item: object) -> bool:
        if not isinstance(item, bytes):
            return False
        return any(hmac.compare_digest(item, h) for h in self._hashes())

    def __iter__(self) -> Iterator[bytes]:
        return iter(self._hashes())

    def __len__(self) -> int:
        return min(self._depth, self._chain.block_number() + 1)


def spec_pins(spec: TaskSpec) -> list[tuple[ChainComponent, ChainTee, bytes]]:
    """The task's pinned measurements in the contract's encoding."""
    return [
        (ChainComponent.of(c), ChainTee.of(p.tee), p.digest)
        for c, p in spec.measurements.pins().items()
    ]


def spec_participants(spec: TaskSpec) -> list[tuple[str, ChainRole]]:
    """Participants with their roles as the contract's bitmask."""
    return [(p.org, ChainRole.of(p.roles)) for p in spec.participants]


def onchain_task(view: TaskView) -> OnChainTask:
    """The chain's record of a task in the reviewer's vocabulary (names, not integers)."""
    return OnChainTask(
        task_id=view.task_id,
        participants=[
            (name, frozenset(r.value for r in view.roles[name].roles)) for name in view.participants
        ],
        pins=[(p.kind.component.value, p.tee.tee.value, p.digest) for p in view.measurements],
        state=view.state.name.capitalize(),
    )


def usable_pins(consortium: Consortium, view: TaskView) -> list[bool]:
    """For each pinned measurement, whether the registry accepts it right now."""
    return [consortium.measurement_usable(p.kind, p.tee, p.digest) for p in view.measurements]
