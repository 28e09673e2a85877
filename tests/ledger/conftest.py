"""Fixtures: one deployed consortium per backend (embedded, anvil), reverted after each test."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator

import pytest
from ledger_world import World, build_world, find_anvil, free_port

from chronoseal.errors import LedgerError
from chronoseal.ledger import ChainBackend, EmbeddedChain, JsonRpcChain


@pytest.fixture(scope="session")
def anvil_url() -> Iterator[str]:
    binary = find_anvil()
    if binary is None:
        message = "anvil is not installed: run scripts/anvil (npm @foundry-rs/anvil)"
        if os.environ.get("CHRONOSEAL_REQUIRE_ANVIL") == "1":
            pytest.fail(message)
        pytest.skip(message)
    port = free_port()
    proc = subprocess.Popen(
        [binary, "--host", "127.0.0.1", "--port", str(port), "--silent"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                JsonRpcChain(url).close()
                break
            except LedgerError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    err = proc.stderr.read().decode() if proc.stderr else ""
                    pytest.fail(f"anvil did not start on {url}: {err}")
                time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.stderr is not None:
            proc.stderr.close()


def make_chain(kind: str, request: pytest.FixtureRequest) -> ChainBackend:
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
