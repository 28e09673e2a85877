"""Scenarios for rendering: the bundled Chicago one, with its task's TEE pins changed."""

from __future__ import annotations

import re
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from chronoseal.cli._deploy import deploy_input
from chronoseal.deploy import DeployInput
from chronoseal.node import load_scenario

DIGEST = "ab" * 32

ScenarioFactory = Callable[..., Path]


@pytest.fixture
def make_scenario(example_dir: Path, tmp_path: Path) -> ScenarioFactory:
    """A copy of the Chicago scenario (no data) whose task pins the given TEEs; ``sources``
    replaces a party's ``[sources]`` table."""

    def make(
        gateway: str = "simulated",
        analysis: str = "simulated",
        prediction: str = "simulated",
        sources: dict[str, str] | None = None,
    ) -> Path:
        root = tmp_path / f"scenario-{gateway}-{analysis}-{prediction}"
        shutil.copytree(example_dir, root, ignore=shutil.ignore_patterns("data", "*.py"))
        task = root / "task.toml"
        text = task.read_text()
        for component, tee in (
            ("gateway", gateway),
            ("analysis", analysis),
            ("prediction", prediction),
        ):
            value = "installed" if tee == "simulated" else DIGEST
            text, n = re.subn(
                rf"^{component} = .*$",
                f'{component} = {{ tee = "{tee}", value = "{value}" }}',
                text,
                flags=re.MULTILINE,
            )
            assert n == 1
        task.write_text(text)
        for party, table in (sources or {}).items():
            config = root / "parties" / f"{party}.toml"
            text = config.read_text()
            text = re.sub(r"\[sources\]\n[^\[]*", f"[sources]\n{table}\n\n", text)
            config.write_text(text)
        return root / "scenario.toml"

    return make


@pytest.fixture
def load_input() -> Callable[[Path], DeployInput]:
    def load(path: Path) -> DeployInput:
        return deploy_input(load_scenario(path))

    return load
