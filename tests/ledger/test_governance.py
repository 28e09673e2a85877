"""Membership, key rotation, the simulated-TEE flag and the measurement registry."""

from __future__ import annotations

import pytest
from ledger_world import PARTIES, World, digest

from chronoseal.errors import LedgerError
from chronoseal.ledger import (
    ChainComponent,
    ChainTee,
    Consortium,
    MeasurementStatus,
    ProposalKind,
    org_id,
)


def test_founders_keys_and_flag(world: World) -> None:
    members = world.consortium.members()
    assert [m.name for m in members] == ["alpha", "beta", "gamma"]
    assert members[0].org_id == org_id("alpha")
    assert members[1].keys == [world.keys["beta"].address]
    assert world.consortium.simulated_tee_allowed() is True
    assert world.consortium.org_of_key(world.keys["gamma"].address) == "gamma"


def test_adding_a_member_needs_every_member(world: World) -> None:
    delta = world.funded()
    pid = world.orgs["alpha"].propose_member("delta", delta.address)
    proposal = world.consortium.proposal(pid)
    assert (proposal.kind, proposal.approvals, proposal.required) == (ProposalKind.ADD_MEMBER, 1, 3)
    world.refused(
        "ledger.proposal.already_approved", lambda: world.orgs["alpha"].approve_proposal(pid)
    )
    world.refused(
        "ledger.key.not_member",
        lambda: world.consortium.as_org("delta", delta.key).approve_proposal(pid),
    )
    world.refused(
        "ledger.member.exists", lambda: world.orgs["beta"].propose_member("gamma", delta.address)
    )
    world.orgs["beta"].approve_proposal(pid)
    assert "delta" not in [m.name for m in world.consortium.members()]
    world.orgs["gamma"].approve_proposal(pid)
    assert [m.name for m in world.consortium.members()] == ["alpha", "beta", "gamma", "delta"]
    world.refused("ledger.proposal.executed", lambda: world.orgs["gamma"].approve_proposal(pid))
    world.refused("ledger.proposal.unknown", lambda: world.orgs["gamma"].approve_proposal(pid + 9))
    # the new member counts in later snapshots
    new_pid = world.consortium.as_org("delta", delta.key).propose_simulated_tee_allowed(False)
    assert world.consortium.proposal(new_pid).required == 4


def test_removing_a_member_by_unanimity(world: World) -> None:
    pid = world.orgs["alpha"].propose_member_removal("gamma")
    world.orgs["beta"].approve_proposal(pid)
    world.orgs["gamma"].approve_proposal(pid)
    assert [m.name for m in world.consortium.members()] == ["alpha", "beta"]
    world.refused(
        "ledger.key.not_member",
        lambda: world.orgs["gamma"].propose_measurement(
            ChainComponent.GATEWAY, ChainTee.SGX, digest("g")
        ),
    )
    task_id = world.fresh_id()
    world.refused(
        "ledger.member.unknown",
        lambda: world.orgs["alpha"].propose_task(task_id, PARTIES, world.pins(), world.now() + 99),
        task_id,
    )


def test_key_rotation(world: World) -> None:
    beta, new = world.orgs["beta"], world.funded()
    world.refused("ledger.key.last", lambda: beta.remove_key(world.keys["beta"].address))
    world.refused("ledger.key.exists", lambda: beta.add_key(world.keys["alpha"].address))
    world.refused("ledger.key.not_org_key", lambda: beta.remove_key(world.keys["alpha"].address))
    beta.add_key(new.address)
    rotated = world.consortium.as_org("beta", new.key)
    rotated.remove_key(world.keys["beta"].address)
    assert world.consortium.members()[1].keys == [new.address]
    spare = world.funded().address
    world.refused("ledger.key.not_member", lambda: beta.add_key(spare))
    task_id = world.ready["proposed"]
    rotated.approve_task(task_id)
    assert world.consortium.task(task_id).approved_by == ["beta"]


def test_simulated_tee_flag_changes_only_by_unanimity(world: World) -> None:
    pid = world.orgs["gamma"].propose_simulated_tee_allowed(False)
    world.orgs["alpha"].approve_proposal(pid)
    assert world.consortium.simulated_tee_allowed() is True
    world.orgs["beta"].approve_proposal(pid)
    assert world.consortium.simulated_tee_allowed() is False
    assert not world.consortium.measurement_usable(
        ChainComponent.ANALYSIS, ChainTee.SIMULATED, world.m_analysis
    )
    world.refused(
        "ledger.tee.simulated_not_allowed",
        lambda: world.orgs["alpha"].propose_measurement(
            ChainComponent.GATEWAY, ChainTee.SIMULATED, digest("sim")
        ),
    )
    task_id = world.fresh_id()
    world.refused(
        "ledger.measurement.not_approved",
        lambda: world.orgs["alpha"].propose_task(task_id, PARTIES, world.pins(), world.now() + 99),
        task_id,
    )


def test_measurement_needs_every_member_and_revocation_is_immediate(world: World) -> None:
    c, kind, tee, m = world.consortium, ChainComponent.GATEWAY, ChainTee.SEV_SNP, digest("gw")
    world.orgs["beta"].propose_measurement(kind, tee, m)
    world.refused(
        "ledger.measurement.exists", lambda: world.orgs["gamma"].propose_measurement(kind, tee, m)
    )
    world.refused(
        "ledger.measurement.already_approved",
        lambda: world.orgs["beta"].approve_measurement(kind, tee, m),
    )
    world.orgs["alpha"].approve_measurement(kind, tee, m)
    assert not c.measurement_usable(kind, tee, m)
    world.orgs["gamma"].approve_measurement(kind, tee, m)
    view = c.measurement(kind, tee, m)
    assert (view.status, view.approvals, view.usable) == (MeasurementStatus.APPROVED, 3, True)
    world.orgs["gamma"].revoke_measurement(kind, tee, m)
    assert c.measurement(kind, tee, m).status is MeasurementStatus.REVOKED
    assert not c.measurement_usable(kind, tee, m)
    world.refused(
        "ledger.measurement.revoked", lambda: world.orgs["gamma"].revoke_measurement(kind, tee, m)
    )
    world.refused(
        "ledger.measurement.unknown",
        lambda: world.orgs["gamma"].approve_measurement(kind, tee, digest("unknown")),
    )
    # An unknown code is refused before anything is sent; the contract refuses it too, on
    # its own, for a client that does send it.
    block = world.chain.block_number()
    with pytest.raises(LedgerError) as tee_info:
        world.orgs["alpha"].propose_measurement(kind, 7, m)  # type: ignore[arg-type]
    with pytest.raises(LedgerError) as kind_info:
        world.orgs["alpha"].propose_measurement(5, tee, m)  # type: ignore[arg-type]
    assert (tee_info.value.id, kind_info.value.id) == (
        "ledger.code.bad_tee",
        "ledger.code.bad_component",
    )
    assert "sev-snp" in tee_info.value.message and "gateway" in kind_info.value.message
    assert world.chain.block_number() == block
    world.refused(
        "ledger.measurement.bad_tee",
        lambda: world.orgs["alpha"]._send("propose_measurement", int(kind), 7, m),
    )
    world.refused(
        "ledger.measurement.bad_kind",
        lambda: world.orgs["alpha"]._send("propose_measurement", 5, int(tee), m),
    )
    stranger = world.consortium.as_org("x", world.funded().key)
    world.refused(
        "ledger.key.not_member",
        lambda: stranger.propose_measurement(kind, tee, digest("z")),
    )


def test_attach_to_an_existing_deployment(world: World) -> None:
    attached = Consortium.at(world.chain, world.consortium.address)
    assert [m.name for m in attached.members()] == ["alpha", "beta", "gamma"]
    with pytest.raises(LedgerError) as info:
        Consortium.at(world.chain, world.keys["alpha"].address)
    assert info.value.id == "ledger.contract.missing"


def test_proposal_ids_come_from_the_transactions_own_event(world: World) -> None:
    first = world.orgs["alpha"].propose_simulated_tee_allowed(False)
    second = world.orgs["beta"].propose_member_removal("gamma")
    assert second == first + 1
    assert world.consortium.proposal(second).kind is ProposalKind.REMOVE_MEMBER
    assert world.consortium.proposal(second).proposer == "beta"
