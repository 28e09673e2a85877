"""Shared fixtures: the repository layout and the bundled Chicago example."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from chronoseal.node import find_anvil, free_ports

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "examples" / "chicago"


@pytest.fixture(scope="session")
def example_dir() -> Path:
    return EXAMPLE


@pytest.fixture(scope="session")
def example_task(example_dir: Path) -> Path:
    return example_dir / "task.toml"


def free_port() -> int:
    return free_ports(1)


@pytest.fixture
def loopback_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    return free_port()


@pytest.fixture(scope="session")
def anvil_url() -> Iterator[str]:
    """A real anvil node on loopback for the session; fails when CI requires it and it's absent."""
    from chronoseal.errors import LedgerError
    from chronoseal.ledger import JsonRpcChain

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
