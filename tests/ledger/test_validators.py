"""The members' own validator nodes: a Clique network of real EthereumJS client nodes that
forms, seals, keeps sealing with a validator down, lets a restarted one catch up, and runs
the consortium contract with the same events on every node; plus the client side (one
client over several nodes, faucet funding) on anvil."""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from eth_account import Account
from ledger_world import build_world

from chronoseal.ledger import (
    Consortium,
    JsonRpcChain,
    ValidatorNetwork,
    clique_genesis,
    find_ethereumjs,
    read_events,
)
from chronoseal.ledger._validators import clique_extra_data

ANVIL_KEY = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80"


def test_the_genesis_names_every_member_a_signer_in_clique_order() -> None:
    signers = [Account.create().address for _ in range(4)]
    extra = bytes.fromhex(clique_extra_data(signers)[2:])
    assert len(extra) == 32 + 20 * 4 + 65
    listed = [extra[32 + 20 * i : 52 + 20 * i] for i in range(4)]
    assert listed == sorted(bytes.fromhex(a[2:]) for a in signers)
    genesis = clique_genesis(signers, {signers[0]: 5}, period=2, chain_id=77)
    assert genesis["config"]["clique"] == {"period": 2, "epoch": 30000}
    assert genesis["config"]["londonBlock"] == 0 and "shanghaiTime" not in genesis["config"]
    assert genesis["alloc"] == {signers[0][2:].lower(): {"balance": "0x5"}}


def _client() -> str:
    binary = find_ethereumjs()
    if binary is None:
        message = "the EthereumJS client is not installed: run scripts/ethereumjs"
        if os.environ.get("CHRONOSEAL_REQUIRE_ETHEREUMJS") == "1":
            pytest.fail(message)
        pytest.skip(message)
    return binary


@pytest.fixture(scope="module")
def network(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ValidatorNetwork]:
    """Three members' validators sealing every second, supervised, stopped afterwards."""
    binary = _client()
    net = ValidatorNetwork.create(
        tmp_path_factory.mktemp("validators"), ["alpha", "beta", "gamma"], binary=binary
    )
    try:
        net.start()
        net.start_supervisor()
        yield net
    finally:
        net.stop()


def _wait(predicate: object, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():  # type: ignore[operator]
        if time.monotonic() > deadline:
            pytest.fail(f"{what} within {timeout:.0f} s")
        time.sleep(0.5)


def _height(net: ValidatorNetwork, index: int) -> int:
    head = net.head(index)
    return -1 if head is None else head[0]


@pytest.mark.integration
def test_the_validators_peer_and_seal_and_write_their_urls(network: ValidatorNetwork) -> None:
    urls = (network.directory / "rpc-urls").read_text().split()
    assert urls == network.urls and len(set(urls)) == 3
    # a full mesh: every node keeps a link to both others (static peers)
    _wait(
        lambda: all(network.peer_count(v.index) == 2 for v in network.validators),
        30,
        "every validator linked to both others",
    )
    start = _height(network, 0)
    _wait(lambda: min(_height(network, i) for i in range(3)) >= start + 3, 60, "3 more blocks")
    # one chain: every node has the same block at a height all of them passed
    common = min(_height(network, i) for i in range(3)) - 1
    hashes = {JsonRpcChain(u).w3.eth.get_block(common)["hash"] for u in urls}
    assert len(hashes) == 1
    signers = {JsonRpcChain(urls[0]).w3.eth.get_block(n)["miner"] for n in range(1, common + 1)}
    assert len(signers) >= 1  # Clique reports no coinbase; the seal names the signer


@pytest.mark.integration
def test_a_killed_validator_does_not_stop_the_chain_and_catches_up_on_restart(
    network: ValidatorNetwork,
) -> None:
    network.stop_node(2, kill=True)
    assert network.head(2) is None
    before = max(_height(network, 0), _height(network, 1))
    _wait(
        lambda: min(_height(network, 0), _height(network, 1)) >= before + 4,
        60,
        "two of three validators did not seal 4 blocks",
    )
    network.start_node(2)
    _wait(
        lambda: (
            _height(network, 2) >= min(_height(network, 0), _height(network, 1)) - 1
            and _height(network, 2) > before
        ),
        120,
        "the restarted validator did not catch up",
    )
    # it follows the chain from then on, not only to the height it first synced to
    caught = _height(network, 2)
    _wait(lambda: _height(network, 2) >= caught + 3, 60, "the restarted validator following")
    _wait(lambda: network.peer_count(2) == 2, 30, "the restarted validator linked to both")
    height = _height(network, 2) - 1
    assert len({JsonRpcChain(u).w3.eth.get_block(height)["hash"] for u in network.urls}) == 1


@pytest.mark.integration
def test_the_consortium_runs_on_the_members_chain_with_one_story_on_every_node(
    network: ValidatorNetwork,
) -> None:
    chain = JsonRpcChain(",".join(network.urls), faucet_key_file=network.faucet_key_file)
    assert chain.confirmations == 2 and chain.evm_version == "london"
    world = build_world(chain)
    fee = chain.w3.eth.get_block(world.consortium.deploy_block)["baseFeePerGas"]
    assert fee > 0  # EIP-1559 transactions on a London chain
    last = chain.block_number()
    views = []
    for index, url in enumerate(network.urls):
        # a node the supervisor is restarting answers again, then reaches the same height
        _wait(lambda i=index: _height(network, i) >= last, 120, f"validator {index} at {last}")
        node = JsonRpcChain(url)
        consortium = Consortium.at(
            node, world.consortium.address, deploy_block=world.consortium.deploy_block
        )
        events = read_events(consortium, from_block=world.consortium.deploy_block)
        views.append(
            [(e.block_hash, e.log_index, e.name) for e in events if e.block_number <= last]
        )
        # every node's receipt of a transaction names the block its events are in, not a
        # block a reorganisation dropped (its transaction index once kept naming those)
        mined = {e.tx_hash: e.block_hash for e in events if e.block_number <= last}
        for tx_hash, block_hash in mined.items():
            receipt = node.w3.eth.get_transaction_receipt(tx_hash)  # type: ignore[arg-type]
            assert receipt["blockHash"].to_0x_hex() == block_hash, (index, tx_hash)
    assert views[0] and all(v == views[0] for v in views)


def _dead_url() -> str:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}"


@pytest.mark.integration
@pytest.mark.anvil
def test_a_client_moves_to_the_next_node_while_its_own_is_down(
    anvil_url: str, tmp_path: Path
) -> None:
    faucet = tmp_path / "faucet.key"
    faucet.write_text(ANVIL_KEY)
    chain = JsonRpcChain(f"{_dead_url()},{anvil_url}", faucet_key_file=faucet)
    assert chain.confirmations == 0 and chain.evm_version is None
    target = Account.create().address
    chain.fund(target, 12345)  # a real transfer from the faucet, not anvil_setBalance
    assert chain.w3.eth.get_balance(target) == 12345
    assert chain.provider.current_url == anvil_url
