"""Fixtures: one deployed consortium per backend (embedded, anvil), reverted after each test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from ledger_world import World, build_world

from chronoseal.ledger import ChainBackend, EmbeddedChain, JsonRpcChain


def make_chain(kind: str, request: pytest.FixtureRequest) -> ChainBackend:
    """``anvil_url`` (tests/conftest.py) starts anvil, or fails/skips when it is missing."""
    if kind == "embedded":
        return EmbeddedChain()
    return JsonRpcChain(request.getfixturevalue("anvil_url"))


@pytest.fixture(
    scope="session",
    params=[
        "embedded",
        pytest.param("anvil", marks=[pytest.mark.integration, pytest.mark.anvil]),
    ],
)
def world_base(request: pytest.FixtureRequest) -> Iterator[World]:
    chain = make_chain(request.param, request)
    yield build_world(chain)
    chain.close()


@pytest.fixture
def world(world_base: World) -> Iterator[World]:
    """The shared world, rolled back after the test so tests cannot see each other."""
    snapshot = world_base.chain.snapshot()
    yield world_base
    world_base.chain.revert(snapshot)
