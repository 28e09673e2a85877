"""Every allowed task transition, on both backends, read back from state and events."""

from __future__ import annotations

from ledger_world import PROVIDERS, World, digest

from chronoseal.ledger import (
    ChainComponent,
    ChainRole,
    TaskState,
    chain_stats,
    read_events,
    task_timeline,
)


def transitions(world: World, task_id: bytes, since: int | None = None) -> list[tuple[int, int]]:
    events = read_events(world.consortium, from_block=since)
    return [
        (e.args["from_state"], e.args["to_state"])
        for e in task_timeline(world.consortium, task_id, events)
        if e.name == "TaskStateChanged"
    ]


def test_full_lifecycle_reaches_retired_through_every_state(world: World) -> None:
    c = world.consortium
    task_id = world.ready["proposed"]
    view = c.task(task_id)
    assert view.state is TaskState.PROPOSED
    assert (view.approvals, view.required, view.providers) == (0, 3, 2)
    assert view.participants == ["alpha", "beta", "gamma"]
    assert view.roles["gamma"] == ChainRole.RESULT_RECIPIENT
    assert [p.kind for p in view.measurements] == [
        ChainComponent.ANALYSIS,
        ChainComponent.PREDICTION,
    ]

    world.orgs["alpha"].approve_task(task_id)
    world.orgs["beta"].approve_task(task_id)
    assert c.task_state(task_id) is TaskState.PROPOSED
    world.orgs["gamma"].approve_task(task_id)
    view = c.task(task_id)
    assert view.state is TaskState.APPROVED
    assert view.approved_by == ["alpha", "beta", "gamma"]

    evidence = world.attest_analysis(task_id)
    attestation = c.attestation(task_id, evidence, world.analysis.address)
    assert attestation is not None and attestation.component == world.analysis.address
    world.orgs["alpha"].acknowledge_attestation(task_id, evidence, world.analysis.address)
    assert c.task_state(task_id) is TaskState.APPROVED
    world.orgs["beta"].acknowledge_attestation(task_id, evidence, world.analysis.address)
    view = c.task(task_id)
    assert view.state is TaskState.RUNNING
    assert view.analysis == world.analysis.address and view.analysis_evidence == evidence

    for party in PROVIDERS:
        world.commit_data(task_id, party)
        assert c.commitments(task_id, party) == (digest(f"data-{party}"),) * 2
    world.analysis.post_model_commitment(task_id, digest("model"), digest("metrics"))
    view = c.task(task_id)
    assert view.state is TaskState.TRAINED and view.matched_commitments == 2
    assert view.model_commitment == digest("model")

    p_evidence = world.attest_prediction(task_id)
    world.analysis.acknowledge_prediction(task_id, p_evidence, world.prediction.address)
    world.prediction.post_prediction_model_commitment(task_id, digest("model"))
    assert c.task(task_id).state is TaskState.SERVING

    world.prediction.post_audit_root(task_id, digest("batch-0"), 100)
    world.prediction.post_audit_root(task_id, digest("batch-1"), 50)
    view = c.task(task_id)
    assert (view.audit_batches, view.audited_predictions) == (2, 150)

    world.orgs["gamma"].retire_task(task_id)
    assert c.task_state(task_id) is TaskState.RETIRED
    assert transitions(world, task_id) == [(0, 1), (1, 2), (2, 3), (3, 4), (4, 5), (5, 6)]


def test_timeline_names_every_record_in_order(world: World) -> None:
    task_id = world.ready["serving"]
    timeline = task_timeline(world.consortium, task_id)
    names = [e.name for e in timeline]
    assert names[:2] == ["TaskProposed", "TaskStateChanged"]
    assert names.count("TaskApproved") == 3
    assert names.count("CommitmentMatched") == 2
    assert names.count("ComponentBound") == 2
    assert names.count("ModelCommitted") == 2
    assert names[-1] == "TaskStateChanged"
    bound = [e for e in timeline if e.name == "ComponentBound"]
    assert bound[0].args["component"] == world.analysis.address
    assert bound[0].args["kind"] == ChainComponent.ANALYSIS
    approvals = [e for e in timeline if e.name == "TaskApproved"]
    assert {e.actor for e in approvals} == {
        world.keys[n].address for n in ("alpha", "beta", "gamma")
    }


def test_participant_aborts_each_non_final_state(world: World) -> None:
    for state in ("proposed", "approved", "running", "trained", "serving"):
        task_id = world.ready[state]
        before = world.consortium.task_state(task_id)
        receipt = world.orgs["gamma"].abort_task(task_id)
        assert world.consortium.task_state(task_id) is TaskState.ABORTED
        assert transitions(world, task_id, receipt.block_number) == [(before, TaskState.ABORTED)]


def test_commitment_mismatch_disputes_and_only_abort_follows(world: World) -> None:
    task_id = world.ready["running"]
    world.commit_data(task_id, "alpha")
    world.commit_data(task_id, "beta", runtime_label="tampered")
    assert world.consortium.task_state(task_id) is TaskState.DISPUTED
    mismatch = [
        e for e in task_timeline(world.consortium, task_id) if e.name == "CommitmentMismatched"
    ]
    assert mismatch[0].args["gateway"] == "0x" + digest("data-beta").hex()
    world.refused(
        "ledger.task.bad_state",
        lambda: world.analysis.post_model_commitment(task_id, digest("m"), digest("x")),
        task_id,
    )
    world.orgs["alpha"].abort_task(task_id)
    assert world.consortium.task_state(task_id) is TaskState.ABORTED


def test_prediction_model_mismatch_disputes(world: World) -> None:
    task_id = world.ready["trained"]
    evidence = world.attest_prediction(task_id)
    world.analysis.acknowledge_prediction(task_id, evidence, world.prediction.address)
    world.prediction.post_prediction_model_commitment(task_id, digest("another model"))
    assert world.consortium.task_state(task_id) is TaskState.DISPUTED


def test_anyone_aborts_after_deadline(world: World) -> None:
    task_id = world.proposed_task(deadline_in=60)
    world.refused(
        "ledger.task.not_participant", lambda: world.outsider.abort_task(task_id), task_id
    )
    world.chain.advance_time(120)
    world.refused(
        "ledger.task.deadline_passed", lambda: world.orgs["beta"].approve_task(task_id), task_id
    )
    world.outsider.abort_task(task_id)
    assert world.consortium.task_state(task_id) is TaskState.ABORTED


def test_chain_stats_are_read_from_blocks(world: World) -> None:
    before = chain_stats(world.chain)
    receipts = [
        world.orgs["alpha"].propose_task(
            world.fresh_id(), [("alpha", 3)], world.pins()[:1], world.now() + 99
        )
    ]
    after = chain_stats(world.chain)
    assert after.transactions == before.transactions + 1
    assert after.blocks == before.blocks + 1
    assert after.gas_used == before.gas_used + receipts[0].gas_used
    assert after.chain_id == world.chain.chain_id and after.kind == world.chain.kind


def test_read_events_decodes_governance_too(world: World) -> None:
    names = {e.name for e in read_events(world.consortium)}
    assert {"MemberAdded", "SimulatedTeeAllowedChanged", "MeasurementProposed"} <= names
    assert {"MeasurementApproved"} <= names
