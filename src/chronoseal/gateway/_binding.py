"""Which runtime a party's gateway may speak to: the analysis runtime the chain records for
the task (verified by the gateway itself, then matched against that record), acknowledged on
chain once, and — once the task binds it — only that runtime, as it is attested now.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterator
from contextlib import contextmanager

from chronoseal.attest import Evidence
from chronoseal.channel import AttestedChannel, AttestedPeer, RaTlsIdentity
from chronoseal.errors import ChainRevert, LedgerError, PeerRefused
from chronoseal.ledger import (
    AttestationView,
    ChainComponent,
    ChainEvent,
    Consortium,
    OrgSession,
    TaskState,
    TaskView,
    attestation_record,
    org_id,
    read_events,
)
from chronoseal.spec import Component
from chronoseal.trust import TaskTrust


def is_analysis_attestation(event: ChainEvent, tid: bytes) -> bool:
    return (
        event.name == "AttestationPosted"
        and event.args.get("task_id") == "0x" + tid.hex()
        and event.args.get("kind") == ChainComponent.ANALYSIS
    )


def runtime_record(
    consortium: Consortium, tid: bytes, evidence: Evidence, component: str | None
) -> AttestationView:
    """The chain's record of the runtime an attested peer *is*: posted by the chain address
    the peer's evidence binds, with that evidence. Once a runtime is bound it must be that
    one. A copy of the record posted by any other sender is a different record, so a
    front-runner can neither be acknowledged nor block the genuine runtime."""
    if component is None:
        raise PeerRefused(
            "the runtime's evidence binds no chain address, so no record on chain can be "
            "proved to be its own",
            id="gateway.runtime.unbound",
        )
    evidence_hash = hashlib.sha256(evidence.to_bytes()).digest()
    view = consortium.task(tid)
    if view.analysis is not None and (
        view.analysis.lower() != component.lower()
        or view.analysis_evidence is None
        or not hmac.compare_digest(view.analysis_evidence, evidence_hash)
    ):
        raise PeerRefused(
            "this attested runtime is not the one the chain bound to the task",
            id="gateway.runtime.not_on_chain",
        )
    record = consortium.attestation(tid, evidence_hash, component)
    if record is None:
        raise LedgerError(
            f"the runtime's address {component} has posted no attestation with this evidence "
            f"for task 0x{tid.hex()}",
            id="gateway.runtime.not_attested",
        )
    return record


class RuntimeBinding:
    """One party's view of the task's analysis runtime: the channels it opens to it and its
    acknowledgement on chain."""

    def __init__(
        self,
        consortium: Consortium,
        task_id: bytes,
        name: str,
        trust: TaskTrust,
        session: OrgSession,
    ) -> None:
        self.consortium = consortium
        self.task_id = task_id
        self.name = name
        self.trust = trust
        self.session = session

    @contextmanager
    def channel(
        self, runtime: tuple[str, int]
    ) -> Iterator[tuple[AttestedChannel, AttestationView, RaTlsIdentity]]:
        """An attested channel to the runtime the chain records for the task, and no other."""
        posted = read_events(self.consortium)
        if not any(is_analysis_attestation(e, self.task_id) for e in posted):
            raise LedgerError(
                f"no analysis runtime has posted an attestation for task 0x{self.task_id.hex()}",
                id="gateway.runtime.not_attested",
            )
        channel, identity = self.trust.connect(runtime, Component.ANALYSIS)
        with channel:
            peer = channel.peer
            view = self.consortium.task(self.task_id)
            if view.analysis is not None:
                record = self._bound_record(view, peer)
            else:
                record = runtime_record(
                    self.consortium, self.task_id, peer.evidence, peer.chain_address
                )
                self._match_chain_record(record, peer.fingerprint, peer.evidence)
            yield channel, record, identity

    def _bound_record(self, view: TaskView, peer: AttestedPeer) -> AttestationView:
        """A reconnect once the task binds its runtime (a resumed stream): the record the
        chain bound must be the one this party acknowledged on chain, and the peer that
        runtime — the very identity of the record or, re-attested since (its certificate
        ages), fresh evidence of the pinned code binding the chain key the task binds, a key
        that never leaves the runtime's TEE. A re-attested runtime is thus resumed on, never
        taken on its address alone."""
        bound_evidence = view.analysis_evidence
        if (
            view.analysis is None
            or bound_evidence is None
            or not view.binds(ChainComponent.ANALYSIS, peer.chain_address)
        ):
            raise PeerRefused(
                "this attested runtime is not the one the chain bound to the task",
                id="gateway.runtime.not_on_chain",
            )
        ours = bytes(self.consortium.call("acknowledged", self.task_id, org_id(self.name)))
        if not hmac.compare_digest(ours, attestation_record(bound_evidence, view.analysis)):
            raise PeerRefused(
                f"the chain binds a runtime record {self.name} did not acknowledge",
                id="gateway.runtime.acknowledged_other",
            )
        record = self.consortium.attestation(self.task_id, bound_evidence, view.analysis)
        if record is None:
            raise LedgerError(
                f"the bound runtime's attestation for task 0x{self.task_id.hex()} is not on chain",
                id="gateway.runtime.not_attested",
            )
        if hmac.compare_digest(hashlib.sha256(peer.evidence.to_bytes()).digest(), bound_evidence):
            self._match_chain_record(record, peer.fingerprint, peer.evidence)
        return record

    @contextmanager
    def bound_channel(
        self, runtime: tuple[str, int]
    ) -> Iterator[tuple[AttestedChannel, RaTlsIdentity]]:
        """An attested channel to the runtime the task binds, as it is attested *now*: its
        fresh evidence (pinned code, approved) binds the chain key the task bound. A long
        training outlives the identity the runtime started with, so it re-attests, and its
        newer evidence is not the record the parties acknowledged."""
        channel, identity = self.trust.connect(runtime, Component.ANALYSIS)
        with channel:
            if not self.consortium.task(self.task_id).binds(
                ChainComponent.ANALYSIS, channel.peer.chain_address
            ):
                raise PeerRefused(
                    "this attested runtime is not the one the chain bound to the task",
                    id="gateway.runtime.not_on_chain",
                )
            yield channel, identity

    def _match_chain_record(
        self, record: AttestationView, fingerprint: bytes, evidence: Evidence
    ) -> None:
        """The attested peer must be the runtime the chain recorded for this task."""
        evidence_hash = hashlib.sha256(evidence.to_bytes()).digest()
        if not (
            hmac.compare_digest(fingerprint, record.tls_key)
            and hmac.compare_digest(evidence_hash, record.evidence)
        ):
            raise PeerRefused(
                "the runtime at this address is attested, but it is not the runtime whose "
                "attestation is recorded on chain for this task",
                id="gateway.runtime.not_on_chain",
            )

    def acknowledge(self, record: AttestationView) -> None:
        """Acknowledge once; a restarted gateway finds its acknowledgement already there."""
        if self.consortium.task_state(self.task_id) is not TaskState.APPROVED:
            return
        earlier = bytes(self.consortium.call("acknowledged", self.task_id, org_id(self.name)))
        if earlier == bytes(32):
            try:
                self.session.acknowledge_attestation(
                    self.task_id, record.evidence, record.component
                )
            except ChainRevert as exc:
                state = self.consortium.task_state(self.task_id)
                if exc.id != "ledger.task.bad_state" or state is TaskState.APPROVED:
                    raise
                # another party aborted between the state check and this transaction
                raise LedgerError(
                    f"the task left Approved for {state.name} before this gateway's "
                    "acknowledgement landed",
                    id="gateway.task.not_running",
                ) from exc
        elif not hmac.compare_digest(
            earlier, attestation_record(record.evidence, record.component)
        ):
            raise PeerRefused(
                f"{self.name} already acknowledged another runtime for this task",
                id="gateway.runtime.acknowledged_other",
            )
