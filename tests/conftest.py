"""Shared fixtures: the repository layout and the bundled Chicago example."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "examples" / "chicago"


@pytest.fixture(scope="session")
def example_dir() -> Path:
    return EXAMPLE


@pytest.fixture(scope="session")
def example_task(example_dir: Path) -> Path:
    return example_dir / "task.toml"


def find_anvil() -> str | None:
    """anvil from CHRONOSEAL_ANVIL, the repo's .cache (scripts/anvil), or PATH."""
    explicit = os.environ.get("CHRONOSEAL_ANVIL")
    if explicit:
        return explicit
    for candidate in sorted(REPO.glob(".cache/anvil/node_modules/@foundry-rs/anvil-*/bin/anvil")):
        if os.access(candidate, os.X_OK):
            return str(candidate)
    return shutil.which("anvil")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


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
