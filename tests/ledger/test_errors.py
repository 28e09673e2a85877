"""Each dependency failure form maps onto one chronoseal error."""

from __future__ import annotations

import pytest
from eth_abi.abi import encode
from eth_tester.exceptions import TransactionFailed
from ledger_world import World
from web3.exceptions import ContractLogicError, Web3RPCError

from chronoseal.errors import ChainRevert, ChainUnavailable, LedgerError
from chronoseal.ledger import JsonRpcChain, map_chain_errors


def test_eth_tester_transaction_failed_becomes_chain_revert() -> None:
    with pytest.raises(ChainRevert) as info, map_chain_errors("approve_task"):
        raise TransactionFailed("execution reverted: ledger.task.unknown")
    assert info.value.id == "ledger.task.unknown" and info.value.function == "approve_task"


def test_contract_logic_error_data_is_decoded() -> None:
    data = "0x08c379a0" + encode(["string"], ["ledger.task.bad_state"]).hex()
    with pytest.raises(ChainRevert) as info, map_chain_errors():
        raise ContractLogicError("execution reverted", data)
    assert info.value.id == "ledger.task.bad_state"


def test_foreign_revert_keeps_its_reason_under_a_generic_id() -> None:
    with pytest.raises(ChainRevert) as info, map_chain_errors():
        raise ContractLogicError("execution reverted: Ownable: caller is not the owner")
    assert info.value.id == "ledger.revert" and info.value.reason.startswith("Ownable")


def test_other_node_errors_are_ledger_errors() -> None:
    with pytest.raises(LedgerError) as info, map_chain_errors("eth_call"):
        raise Web3RPCError("nonce too low")
    assert type(info.value) is LedgerError


def test_unreachable_node_is_chain_unavailable(loopback_port: int) -> None:
    with pytest.raises(ChainUnavailable):
        JsonRpcChain(f"http://127.0.0.1:{loopback_port}", timeout_s=2)


def test_status_zero_without_revert_reason_is_reported(world: World) -> None:
    session = world.orgs["alpha"]
    data = world.consortium.contract.encode_abi("approve_task", args=[world.ready["proposed"]])
    account = session._account
    with pytest.raises(ChainRevert) as info:
        world.chain.transact(
            account,
            {"to": world.consortium.address, "data": data},
            gas=23_000,
            function="approve_task",
        )
    assert "outofgas" in info.value.reason.lower().replace(" ", "")
    assert info.value.tx_hash is not None
    assert info.value.id == "ledger.revert"
    session.approve_task(world.ready["proposed"])  # the nonce manager recovered
