"""The task's appraisal policy, attester and RA-TLS identity for one component."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from chronoseal.attest import AppraisalPolicy, Appraiser, Attester, attester_for
from chronoseal.channel import (
    DEFAULT_IO_TIMEOUT,
    DEFAULT_VALIDITY,
    AttestedChannel,
    ChannelServer,
    RaTlsIdentity,
    connect,
)
from chronoseal.ledger import Consortium, OnChainMeasurements, RecentBlocks
from chronoseal.spec import Component, TaskSpec


def attested_identity(
    attester: Attester,
    freshness: bytes,
    *,
    chain_address: str | None = None,
    validity: timedelta = DEFAULT_VALIDITY,
) -> RaTlsIdentity:
    """Fresh keys and evidence bound to ``freshness`` (and ``chain_address``): the one place
    a component's RA-TLS identity is made, for a component with no task trust of its own
    (an analysis worker, which knows only what its runtime tells it)."""
    return RaTlsIdentity.generate(
        attester, freshness, chain_address=chain_address, validity=validity
    )


def pinned_attester(spec: TaskSpec, component: Component) -> Attester:
    """The attester for the TEE the task pins for ``component``."""
    return attester_for(spec.measurements.pins()[component].tee, component)


@dataclass(frozen=True)
class TaskTrust:
    """``component``'s trust in the task ``spec`` on ``consortium``.

    ``chain_address`` is the key the component acts with on chain, bound into its evidence
    (the runtimes'); ``io_timeout`` bounds every read and write on its channels.
    """

    consortium: Consortium
    spec: TaskSpec
    component: Component
    attester: Attester
    chain_address: str | None = None
    io_timeout: float | None = DEFAULT_IO_TIMEOUT

    @classmethod
    def pinned(
        cls,
        consortium: Consortium,
        spec: TaskSpec,
        component: Component,
        attester: Attester | None = None,
        *,
        chain_address: str | None = None,
        io_timeout: float | None = DEFAULT_IO_TIMEOUT,
    ) -> TaskTrust:
        """The trust with ``attester``, or the one for the TEE the task pins."""
        return cls(
            consortium,
            spec,
            component,
            attester or pinned_attester(spec, component),
            chain_address,
            io_timeout,
        )

    def policy(self, peer: Component) -> AppraisalPolicy:
        """Accept ``peer`` running the code the task pins for it, approved on chain now
        (read at each appraisal, so a revocation counts at once), and simulated evidence
        only if the consortium allows it."""
        return AppraisalPolicy(
            measurements=OnChainMeasurements(self.consortium),
            pinned={peer: self.spec.measurements.pins()[peer].digest},
            allow_simulated=self.consortium.simulated_tee_allowed(),
        )

    def appraiser(self, peer: Component) -> Appraiser:
        return Appraiser(self.policy(peer))

    def identity(
        self, blocks: RecentBlocks, *, validity: timedelta = DEFAULT_VALIDITY
    ) -> RaTlsIdentity:
        """Fresh keys and evidence bound to the newest block (and the chain key, if any)."""
        return attested_identity(
            self.attester, blocks.latest(), chain_address=self.chain_address, validity=validity
        )

    def connect(
        self, address: tuple[str, int], peer: Component
    ) -> tuple[AttestedChannel, RaTlsIdentity]:
        """A mutual RA-TLS channel to ``peer`` at ``address`` under a fresh identity,
        ``peer`` appraised before anything is sent; the channel is a context manager."""
        blocks = RecentBlocks(self.consortium)
        identity = self.identity(blocks)
        channel = connect(
            address,
            identity,
            appraiser=self.appraiser(peer),
            peer_component=peer,
            fresh_nonces=blocks,
            io_timeout=self.io_timeout,
        )
        return channel, identity

    def server(
        self, identity: RaTlsIdentity, peer: Component, blocks: RecentBlocks
    ) -> ChannelServer:
        """Serve ``peer`` under ``identity``: each client is appraised as the task's
        ``peer`` with evidence bound to one of ``blocks``."""
        return ChannelServer(
            identity,
            appraiser=self.appraiser(peer),
            peer_component=peer,
            fresh_nonces=blocks,
            io_timeout=self.io_timeout,
        )
