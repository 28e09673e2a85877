"""Shared fixtures: the repository layout and the bundled Chicago example."""

from __future__ import annotations

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
