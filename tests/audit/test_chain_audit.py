"""``audit_task`` re-verifies a task from the chain's history alone: honest histories pass
every check they reach; a forged or out-of-rule history fails the check that names the
broken rule — whether a lying node served it or the contract let it through."""

from __future__ import annotations

import dataclasses
import json
import re

import pytest
from ledger_world import PROVIDERS, World, digest

from chronoseal.audit import CHECKS, ChainAuditError, TaskAudit, audit_task
from chronoseal.ledger import ChainComponent, ChainEvent, ChainTee, read_events


def verdicts(audit: TaskAudit) -> dict[str, str]:
    return {c.id: c.verdict for c in audit.checks}


def failed(audit: TaskAudit) -> set[str]:
    return {c.id for c in audit.failures}


def events_of(world: World) -> list[ChainEvent]:
    return read_events(world.consortium)


def index_of(events: list[ChainEvent], name: str, task_id: bytes, **args: object) -> int:
    wanted = "0x" + task_id.hex()
    for i, e in enumerate(events):
        if e.name == name and e.args.get("task_id") == wanted:
            if all(e.args.get(k) == v for k, v in args.items()):
                return i
    raise AssertionError(f"no {name} {args} for the task")


def test_the_audit_json_carries_every_hash_and_address_whole(world: World) -> None:
    # The timeline's sentences and the checks' details are compared with the chain by
    # scripts: no value cut to "0x4b7734f5…" (the CLI's table shortens them for people).
    doc = audit_task(world.consortium, world.ready["serving"]).to_json()
    text = json.dumps(doc, ensure_ascii=False)
    values = re.findall(r"0x[0-9a-fA-F]+", text)
    assert values and {len(v) for v in values} <= {42, 66}
    assert not re.search(r"[0-9a-fA-F]…", text)
    model = next(t for t in doc["timeline"] if t["event"] == "ModelCommitted")
    assert re.search(
        r"model committed 0x[0-9a-f]{64}, released metrics 0x[0-9a-f]{64}", model["summary"]
    )


@pytest.mark.parametrize("state", ["proposed", "approved", "running", "trained", "serving"])
def test_an_honest_task_is_verified_in_every_state(world: World, state: str) -> None:
    audit = audit_task(world.consortium, world.ready[state])
    assert audit.verified, [c.to_json() for c in audit.failures]
    assert audit.state.lower() == state
    assert [c.id for c in audit.checks] == [cid for cid, _ in CHECKS]
    assert len(audit.checks) >= 10
    if state == "serving":
        reached = {c.id for c in audit.checks if c.verdict == "pass"}
        assert {"audit.attestations", "audit.commitments", "audit.model", "audit.prediction"} <= (
            reached
        )
    if state == "proposed":
        assert verdicts(audit)["audit.commitments"] == "not_reached"
    assert [t.event for t in audit.timeline][:2] == ["TaskProposed", "TaskStateChanged"]


def test_a_relayed_approval_is_recovered_from_the_transaction(world: World) -> None:
    tid = world.proposed_task()
    signature = world.orgs["beta"].sign_task_approval(tid)
    world.outsider.relay_task_approval(tid, "beta", signature)
    world.orgs["alpha"].approve_task(tid)
    world.orgs["gamma"].approve_task(tid)
    audit = audit_task(world.consortium, tid)
    assert audit.verified
    signatures = next(c for c in audit.checks if c.id == "audit.signatures")
    assert signatures.verdict == "pass" and "1 relayed" in signatures.detail
    assert any("relayed by" in t.summary for t in audit.timeline)


def test_a_direct_approval_passed_off_as_relayed_fails_the_signature_check(
    world: World,
) -> None:
    tid = world.ready["approved"]
    events = events_of(world)
    i = index_of(events, "TaskApproved", tid)
    events[i] = dataclasses.replace(events[i], args={**events[i].args, "relayed": True})
    assert failed(audit_task(world.consortium, tid, events=events)) == {"audit.signatures"}


def test_events_served_out_of_order_fail_the_history_check(world: World) -> None:
    tid = world.ready["approved"]
    events = events_of(world)
    i = index_of(events, "TaskApproved", tid)
    events[i], events[i + 2] = events[i + 2], events[i]
    assert "audit.history" in failed(audit_task(world.consortium, tid, events=events))


def test_a_forged_order_with_consistent_positions_fails_the_transition_check(
    world: World,
) -> None:
    """The last approval moved after the Approved transition, positions swapped too, so the
    history looks sorted: the transition then has no cause."""
    tid = world.ready["approved"]
    events = events_of(world)
    i = index_of(events, "TaskStateChanged", tid, to_state=2)
    approval, transition = events[i - 1], events[i]
    events[i - 1] = dataclasses.replace(transition, log_index=approval.log_index)
    events[i] = dataclasses.replace(approval, log_index=transition.log_index)
    audit = audit_task(world.consortium, tid, events=events)
    assert "audit.transitions" in failed(audit)
    assert "audit.approvals" in failed(audit)  # an approval while already Approved


def test_an_approval_by_a_removed_member_fails_the_approvals_check(world: World) -> None:
    tid = world.ready["approved"]
    events = events_of(world)
    beta = "0x" + world.consortium.members()[1].org_id.hex()
    i = index_of(events, "TaskApproved", tid, org=beta)
    removal = dataclasses.replace(
        events[i], name="MemberRemoved", args={"org": beta}, log_index=events[i].log_index
    )
    forged = [*events[:i], removal, *[dataclasses.replace(e) for e in events[i:]]]
    # keep the positions strictly increasing: the forged removal takes the approval's slot
    forged[i + 1 :] = [
        dataclasses.replace(e, log_index=e.log_index + 1)
        if e.block_number == removal.block_number
        else e
        for e in forged[i + 1 :]
    ]
    audit = audit_task(world.consortium, tid, events=forged)
    assert "audit.approvals" in failed(audit)
    assert any("not a member" in p for c in audit.failures for p in c.problems)


def test_a_measurement_revoked_during_running_and_used_after_fails_revocations(
    world: World,
) -> None:
    """The contract refuses a commitment from a bound runtime whose measurement was
    revoked; a history that shows one anyway (an older contract, a forged event order)
    fails the audit."""
    running = world.ready["running"]
    tid = world.trained_task()
    world.orgs["gamma"].revoke_measurement(
        ChainComponent.ANALYSIS, ChainTee.SIMULATED, world.m_analysis
    )
    world.refused(
        "ledger.measurement.revoked",
        lambda: world.analysis.post_runtime_commitment(running, PROVIDERS[0], digest("d")),
        running,
    )
    events = events_of(world)
    revoked = next(e for e in reversed(events) if e.name == "MeasurementRevoked")
    i = index_of(events, "ModelCommitted", tid, kind=int(ChainComponent.ANALYSIS))
    model = events[i]
    moved = dataclasses.replace(revoked, block_number=model.block_number, log_index=model.log_index)
    rest = [
        dataclasses.replace(e, log_index=e.log_index + 1)
        if e.block_number == model.block_number
        else e
        for e in events[i:]
        if e is not revoked
    ]
    audit = audit_task(world.consortium, tid, events=[*events[:i], moved, *rest])
    assert "audit.revocations" in failed(audit)
    assert any("revoked pinned" in t.summary for t in audit.timeline)


def test_a_disputed_commitment_fails_the_commitments_check(world: World) -> None:
    tid = world.ready["running"]
    world.commit_data(tid, "alpha")
    world.commit_data(tid, "beta", runtime_label="something else")
    audit = audit_task(world.consortium, tid)
    assert audit.state == "Disputed"
    assert failed(audit) == {"audit.commitments"}


def test_a_forged_model_commitment_fails_against_the_stored_record(world: World) -> None:
    tid = world.ready["serving"]
    events = events_of(world)
    i = index_of(events, "ModelCommitted", tid, kind=int(ChainComponent.ANALYSIS))
    events[i] = dataclasses.replace(
        events[i], args={**events[i].args, "commitment": "0x" + digest("forged").hex()}
    )
    audit = audit_task(world.consortium, tid, events=events)
    assert {"audit.record", "audit.prediction"} <= failed(audit)


def test_a_forged_block_hash_fails_the_history_check(world: World) -> None:
    tid = world.ready["running"]
    events = events_of(world)
    i = index_of(events, "ComponentBound", tid)
    events[i] = dataclasses.replace(events[i], block_hash="0x" + "ab" * 32)
    assert "audit.history" in failed(audit_task(world.consortium, tid, events=events))


def test_a_history_that_skips_the_deployment_fails(world: World) -> None:
    tid = world.ready["proposed"]
    events = events_of(world)
    start = index_of(events, "TaskProposed", tid)
    assert "audit.history" in failed(audit_task(world.consortium, tid, events=events[start:]))


def test_a_task_left_past_its_deadline_fails_the_deadline_check(world: World) -> None:
    tid = world.proposed_task(deadline_in=3600)
    world.chain.advance_time(7200)
    world.funded()  # mines a block after the deadline
    audit = audit_task(world.consortium, tid)
    assert failed(audit) == {"audit.deadline"}
    world.outsider.abort_task(tid)  # anyone may abort a task past its deadline
    assert audit_task(world.consortium, tid).verified


def test_an_unknown_or_malformed_task_id_is_refused(world: World) -> None:
    with pytest.raises(ChainAuditError) as unknown:
        audit_task(world.consortium, digest("never proposed"))
    assert unknown.value.id == "audit.task.unknown"
    with pytest.raises(ChainAuditError) as bad:
        audit_task(world.consortium, b"short")
    assert bad.value.id == "audit.task.bad_id"
