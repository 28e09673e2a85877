"""Approvals relayed as EIP-712 signatures: valid ones count, forged or malleable ones do not."""

from __future__ import annotations

import pytest
from eth_abi.abi import encode
from eth_account import Account
from eth_utils import keccak
from ledger_world import World, digest

from chronoseal.errors import LedgerError
from chronoseal.ledger import ChainComponent, ChainTee, TaskState

SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141


def test_relayed_approvals_complete_a_task(world: World) -> None:
    task_id = world.ready["proposed"]
    relayer = world.outsider
    for name in ("alpha", "beta", "gamma"):
        relayer.relay_task_approval(task_id, name, world.orgs[name].sign_task_approval(task_id))
    view = world.consortium.task(task_id)
    assert view.state is TaskState.APPROVED and view.approved_by == ["alpha", "beta", "gamma"]


def test_domain_separator_follows_eip712(world: World) -> None:
    domain = world.consortium.eip712_domain()
    typehash = keccak(
        text="EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)"
    )
    expected = keccak(
        encode(
            ["bytes32", "bytes32", "bytes32", "uint256", "address"],
            [
                typehash,
                keccak(text="chronoseal"),
                keccak(text="1"),
                domain["chainId"],
                domain["verifyingContract"],
            ],
        )
    )
    assert bytes(world.consortium.call("domain_separator")) == expected


def test_forged_and_malleable_signatures_are_refused(world: World) -> None:
    task_id = world.ready["proposed"]
    relay = world.outsider.relay_task_approval
    good = world.orgs["beta"].sign_task_approval(task_id)
    r, s, v = good[:32], int.from_bytes(good[32:64], "big"), good[64]
    high_s = r + (SECP256K1_N - s).to_bytes(32, "big") + bytes([55 - v])
    cases = [
        ("ledger.signature.invalid", "beta", good[:64] + bytes([29])),
        ("ledger.signature.invalid", "beta", high_s),
        ("ledger.signature.invalid", "beta", bytes(64) + bytes([27])),
        ("ledger.signature.not_org_key", "gamma", good),
        ("ledger.signature.not_org_key", "beta", world.orgs["alpha"].sign_task_approval(task_id)),
        (
            "ledger.signature.not_org_key",
            "beta",
            world.orgs["beta"].sign_task_approval(digest("x")),
        ),
        (
            "ledger.signature.not_org_key",
            "beta",
            world.consortium.as_org("beta", Account.create().key).sign_task_approval(task_id),
        ),
    ]
    for refusal, org, signature in cases:
        world.refused(refusal, lambda o=org, sig=signature: relay(task_id, o, sig), task_id)
    relay(task_id, "beta", good)
    world.refused("ledger.task.already_approved", lambda: relay(task_id, "beta", good), task_id)


def test_relayed_measurement_approval(world: World) -> None:
    kind, tee, m = ChainComponent.PREDICTION, ChainTee.CCA, digest("cca-prediction")
    world.orgs["alpha"].propose_measurement(kind, tee, m)
    for name in ("beta", "gamma"):
        signature = world.orgs[name].sign_measurement_approval(kind, tee, m)
        world.outsider.relay_measurement_approval(kind, tee, m, name, signature)
    assert world.consortium.measurement_usable(kind, tee, m)
    second = digest("second")
    world.orgs["alpha"].propose_measurement(kind, tee, second)
    signed_for_first = world.orgs["beta"].sign_measurement_approval(kind, tee, m)
    world.refused(
        "ledger.signature.not_org_key",
        lambda: world.outsider.relay_measurement_approval(
            kind, tee, second, "beta", signed_for_first
        ),
    )
    assert world.consortium.measurement(kind, tee, second).approvals == 1


def test_a_signature_of_the_wrong_length_is_refused_with_the_ledger_id(world: World) -> None:
    task_id = world.ready["proposed"]
    good = world.orgs["beta"].sign_task_approval(task_id)
    for signature in (good[:10], good + b"\x00", b""):
        with pytest.raises(LedgerError) as refused:
            world.outsider.relay_task_approval(task_id, "beta", signature)
        assert refused.value.id == "ledger.signature.invalid"
