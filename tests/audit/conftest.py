"""The audit tests drive tasks with the ledger tests' world (tests/ledger/ledger_world.py)."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "ledger"))

from ledger_world import World, build_world

from chronoseal.ledger import EmbeddedChain


@pytest.fixture(scope="module")
def audit_world_base() -> Iterator[World]:
    chain = EmbeddedChain()
    yield build_world(chain)
    chain.close()


@pytest.fixture
def world(audit_world_base: World) -> Iterator[World]:
    """The module's world, rolled back after each test."""
    snapshot = audit_world_base.chain.snapshot()
    yield audit_world_base
    audit_world_base.chain.revert(snapshot)
