"""Every task refusal carries its stable id and leaves the chain state as it was."""

from __future__ import annotations

from ledger_world import PARTIES, PROVIDERS, World, digest

from chronoseal.ledger import ChainComponent, ChainTee, TaskState


def test_proposal_refusals(world: World) -> None:
    alpha, existing = world.orgs["alpha"], world.ready["proposed"]
    deadline = world.now() + 3600
    fresh = world.fresh_id()
    cases = [
        (
            "ledger.task.exists",
            lambda: alpha.propose_task(existing, PARTIES, world.pins(), deadline),
        ),
        (
            "ledger.task.not_participant",
            lambda: alpha.propose_task(fresh, [("beta", 3)], world.pins(), deadline),
        ),
        (
            "ledger.member.unknown",
            lambda: alpha.propose_task(fresh, [*PARTIES, ("delta", 1)], world.pins(), deadline),
        ),
        (
            "ledger.task.duplicate_participant",
            lambda: alpha.propose_task(fresh, [*PARTIES, ("beta", 1)], world.pins(), deadline),
        ),
        (
            "ledger.task.bad_roles",
            lambda: alpha.propose_task(fresh, [("alpha", 0), ("beta", 3)], world.pins(), deadline),
        ),
        (
            "ledger.task.bad_roles",
            lambda: alpha.propose_task(fresh, [("alpha", 2), ("beta", 2)], world.pins(), deadline),
        ),
        (
            "ledger.task.deadline_passed",
            lambda: alpha.propose_task(fresh, PARTIES, world.pins(), world.now() - 1),
        ),
        ("ledger.task.no_measurements", lambda: alpha.propose_task(fresh, PARTIES, [], deadline)),
        (
            "ledger.measurement.not_approved",
            lambda: alpha.propose_task(
                fresh,
                PARTIES,
                [(ChainComponent.ANALYSIS, ChainTee.SGX, digest("never proposed"))],
                deadline,
            ),
        ),
    ]
    for refusal, action in cases:
        world.refused(refusal, action, fresh)
    assert world.consortium.task_state(fresh) is TaskState.NONE


def test_non_member_cannot_propose_or_approve(world: World) -> None:
    task_id = world.ready["proposed"]
    stranger = world.consortium.as_org("alpha", world.funded().key)
    world.refused(
        "ledger.key.not_member",
        lambda: stranger.propose_task(world.fresh_id(), PARTIES, world.pins(), world.now() + 99),
    )
    world.refused("ledger.key.not_member", lambda: stranger.approve_task(task_id), task_id)


def test_pinning_a_proposed_but_unapproved_or_revoked_measurement(world: World) -> None:
    pending = digest("pending-analysis")
    world.orgs["alpha"].propose_measurement(ChainComponent.ANALYSIS, ChainTee.TDX, pending)
    task_id = world.fresh_id()
    pins = [(ChainComponent.ANALYSIS, ChainTee.TDX, pending)]
    world.refused(
        "ledger.measurement.not_approved",
        lambda: world.orgs["alpha"].propose_task(task_id, PARTIES, pins, world.now() + 99),
        task_id,
    )
    world.orgs["gamma"].revoke_measurement(
        ChainComponent.ANALYSIS, ChainTee.SIMULATED, world.m_analysis
    )
    world.refused(
        "ledger.measurement.revoked",
        lambda: world.orgs["alpha"].propose_task(task_id, PARTIES, world.pins(), world.now() + 99),
        task_id,
    )


def test_approving_a_task_whose_pinned_measurement_was_revoked(world: World) -> None:
    """Revocation after the proposal: no further approval (relayed or not) may count."""
    task_id = world.ready["proposed"]
    world.orgs["alpha"].approve_task(task_id)
    world.orgs["gamma"].revoke_measurement(
        ChainComponent.PREDICTION, ChainTee.SIMULATED, world.m_prediction
    )
    world.refused(
        "ledger.measurement.revoked", lambda: world.orgs["beta"].approve_task(task_id), task_id
    )
    signature = world.orgs["gamma"].sign_task_approval(task_id)
    world.refused(
        "ledger.measurement.revoked",
        lambda: world.orgs["alpha"].relay_task_approval(task_id, "gamma", signature),
        task_id,
    )
    assert world.consortium.task(task_id).approvals == 1


def test_approval_refusals(world: World) -> None:
    task_id = world.ready["proposed"]
    world.orgs["alpha"].approve_task(task_id)
    world.refused(
        "ledger.task.already_approved", lambda: world.orgs["alpha"].approve_task(task_id), task_id
    )
    world.refused("ledger.task.unknown", lambda: world.orgs["alpha"].approve_task(digest("nope")))
    outside = world.fresh_id()
    world.orgs["alpha"].propose_task(outside, [("alpha", 3)], world.pins(), world.now() + 99)
    world.refused(
        "ledger.task.not_participant", lambda: world.orgs["beta"].approve_task(outside), outside
    )
    world.orgs["gamma"].abort_task(task_id)
    world.refused(
        "ledger.task.bad_state", lambda: world.orgs["beta"].approve_task(task_id), task_id
    )


def test_records_in_the_wrong_state(world: World) -> None:
    task_id = world.ready["proposed"]
    world.refused("ledger.task.bad_state", lambda: world.attest_analysis(task_id), task_id)
    world.refused(
        "ledger.task.bad_state",
        lambda: world.orgs["alpha"].post_gateway_commitment(task_id, digest("d")),
        task_id,
    )
    world.refused(
        "ledger.task.bad_state", lambda: world.orgs["alpha"].retire_task(task_id), task_id
    )
    world.refused(
        "ledger.task.bad_state",
        lambda: world.prediction.post_audit_root(task_id, digest("r"), 1),
        task_id,
    )
    world.refused("ledger.task.bad_state", lambda: world.attest_prediction(task_id), task_id)


def test_attestation_and_acknowledgement_refusals(world: World) -> None:
    runtime = world.analysis.address
    task_id = world.ready["approved"]
    c, ev = world.consortium, digest("ev")
    world.refused(
        "ledger.measurement.not_pinned",
        lambda: world.analysis.post_attestation(
            task_id, ChainComponent.ANALYSIS, ChainTee.SGX, world.m_analysis, ev, digest("tls")
        ),
        task_id,
    )
    world.refused(
        "ledger.attestation.bad_kind",
        lambda: world.analysis.post_attestation(
            task_id, ChainComponent.GATEWAY, ChainTee.SIMULATED, world.m_analysis, ev, digest("t")
        ),
        task_id,
    )
    evidence = world.attest_analysis(task_id)
    world.refused("ledger.attestation.exists", lambda: world.attest_analysis(task_id), task_id)
    world.refused(
        "ledger.attestation.unknown",
        lambda: world.orgs["alpha"].acknowledge_attestation(task_id, digest("other"), runtime),
        task_id,
    )
    world.refused(
        "ledger.task.not_data_provider",
        lambda: world.orgs["gamma"].acknowledge_attestation(task_id, evidence, runtime),
        task_id,
    )
    world.orgs["alpha"].acknowledge_attestation(task_id, evidence, runtime)
    world.refused(
        "ledger.attestation.already_acknowledged",
        lambda: world.orgs["alpha"].acknowledge_attestation(task_id, evidence, runtime),
        task_id,
    )
    assert c.attestation(task_id, evidence, runtime) is not None
    assert c.attestation(task_id, evidence, runtime).acks == 1  # type: ignore[union-attr]


def test_commitment_and_component_refusals(world: World) -> None:
    task_id = world.ready["running"]
    world.refused(
        "ledger.component.not_bound",
        lambda: world.prediction.post_runtime_commitment(task_id, "alpha", digest("d")),
        task_id,
    )
    world.refused(
        "ledger.task.not_data_provider",
        lambda: world.analysis.post_runtime_commitment(task_id, "gamma", digest("d")),
        task_id,
    )
    world.refused(
        "ledger.task.not_data_provider",
        lambda: world.orgs["gamma"].post_gateway_commitment(task_id, digest("d")),
        task_id,
    )
    world.refused(
        "ledger.commitment.empty",
        lambda: world.orgs["alpha"].post_gateway_commitment(task_id, bytes(32)),
        task_id,
    )
    world.commit_data(task_id, "alpha")
    world.refused(
        "ledger.commitment.exists",
        lambda: world.orgs["alpha"].post_gateway_commitment(task_id, digest("again")),
        task_id,
    )
    world.refused(
        "ledger.commitment.pending",
        lambda: world.analysis.post_model_commitment(task_id, digest("m"), digest("x")),
        task_id,
    )
    world.commit_data(task_id, "beta")
    world.refused(
        "ledger.component.not_bound",
        lambda: world.prediction.post_model_commitment(task_id, digest("m"), digest("x")),
        task_id,
    )


def test_prediction_side_refusals(world: World) -> None:
    task_id = world.ready["trained"]
    evidence = world.attest_prediction(task_id)
    world.refused(
        "ledger.component.not_bound",
        lambda: world.prediction.acknowledge_prediction(
            task_id, evidence, world.prediction.address
        ),
        task_id,
    )
    world.refused(
        "ledger.component.not_bound",
        lambda: world.prediction.post_prediction_model_commitment(task_id, digest("model")),
        task_id,
    )
    world.analysis.acknowledge_prediction(task_id, evidence, world.prediction.address)
    world.prediction.post_prediction_model_commitment(task_id, digest("model"))
    world.refused(
        "ledger.component.not_bound",
        lambda: world.analysis.post_audit_root(task_id, digest("r"), 1),
        task_id,
    )
    world.refused(
        "ledger.audit.empty",
        lambda: world.prediction.post_audit_root(task_id, digest("r"), 0),
        task_id,
    )
    world.refused(
        "ledger.task.not_participant", lambda: world.outsider.abort_task(task_id), task_id
    )
    world.orgs["alpha"].retire_task(task_id)
    world.refused("ledger.task.bad_state", lambda: world.orgs["alpha"].abort_task(task_id), task_id)


def test_unknown_task_is_refused_everywhere(world: World) -> None:
    unknown, alpha = digest("no such task"), world.orgs["alpha"]
    for action in (
        lambda: alpha.approve_task(unknown),
        lambda: alpha.abort_task(unknown),
        lambda: alpha.retire_task(unknown),
        lambda: alpha.acknowledge_attestation(unknown, digest("e"), world.analysis.address),
        lambda: alpha.post_gateway_commitment(unknown, digest("c")),
        lambda: world.attest_analysis(unknown),
        lambda: world.prediction.post_audit_root(unknown, digest("r"), 1),
    ):
        world.refused("ledger.task.unknown", action, unknown)


def test_a_front_run_attestation_record_neither_blocks_nor_binds(world: World) -> None:
    """A front-runner copies the evidence hash and TLS key from the runtime's pending
    transaction and posts first: its record is its own, the genuine one still posts, and
    only the record the gateways acknowledge (the address the evidence binds) is bound."""
    task_id = world.approved_task()
    evidence = digest(f"evidence-analysis-{task_id.hex()}")
    thief = world.consortium.as_component(world.funded().key)
    args = (task_id, ChainComponent.ANALYSIS, ChainTee.SIMULATED, world.m_analysis, evidence)
    thief.post_attestation(*args, digest("tls-analysis"))
    assert world.attest_analysis(task_id) == evidence  # not blocked by the copy
    c = world.consortium
    copied = c.attestation(task_id, evidence, thief.address)
    genuine = c.attestation(task_id, evidence, world.analysis.address)
    assert copied is not None and genuine is not None
    assert copied.component == thief.address and genuine.component == world.analysis.address
    for name in PROVIDERS:
        world.orgs[name].acknowledge_attestation(task_id, evidence, world.analysis.address)
    view = c.task(task_id)
    assert view.state is TaskState.RUNNING
    assert view.analysis == world.analysis.address
    world.refused(
        "ledger.component.not_bound",
        lambda: thief.post_runtime_commitment(task_id, "alpha", digest("data-alpha")),
        task_id,
    )


def test_nothing_is_taken_from_a_bound_runtime_whose_measurement_was_revoked(
    world: World,
) -> None:
    """What the audit flags is refused on chain: a runtime commitment, a model commitment,
    a hand-over and a served model's commitment from a revoked runtime."""
    running = world.running_task()
    world.orgs[PROVIDERS[0]].post_gateway_commitment(running, digest(f"data-{PROVIDERS[0]}"))
    trained = world.trained_task()
    evidence = world.attest_prediction(trained)
    to_serve = world.trained_task()
    bound = world.attest_prediction(to_serve)
    world.analysis.acknowledge_prediction(to_serve, bound, world.prediction.address)
    world.orgs["gamma"].revoke_measurement(
        ChainComponent.ANALYSIS, ChainTee.SIMULATED, world.m_analysis
    )
    world.refused(
        "ledger.measurement.revoked",
        lambda: world.analysis.post_runtime_commitment(
            running, PROVIDERS[0], digest(f"data-{PROVIDERS[0]}")
        ),
        running,
    )
    world.refused(
        "ledger.measurement.revoked",
        lambda: world.analysis.acknowledge_prediction(trained, evidence, world.prediction.address),
        trained,
    )
    world.orgs["gamma"].revoke_measurement(
        ChainComponent.PREDICTION, ChainTee.SIMULATED, world.m_prediction
    )
    world.refused(
        "ledger.measurement.revoked",
        lambda: world.prediction.post_prediction_model_commitment(to_serve, digest("model")),
        to_serve,
    )


def test_a_model_commitment_from_a_revoked_analysis_runtime_is_refused(world: World) -> None:
    task_id = world.running_task()
    for name in PROVIDERS:
        world.commit_data(task_id, name)
    world.orgs["gamma"].revoke_measurement(
        ChainComponent.ANALYSIS, ChainTee.SIMULATED, world.m_analysis
    )
    world.refused(
        "ledger.measurement.revoked",
        lambda: world.analysis.post_model_commitment(task_id, digest("model"), digest("m")),
        task_id,
    )
    assert world.consortium.task_state(task_id) is TaskState.RUNNING
