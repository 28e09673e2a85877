"""Scenario and party files are parsed strictly: a quoted boolean or number is an error with
an id, never silently coerced, and an oversized file is refused before it is parsed."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from chronoseal.errors import ConfigError
from chronoseal.node import bundled_scenario, load_scenario


def _copy(tmp_path: Path) -> Path:
    root = tmp_path / "chicago"
    shutil.copytree(bundled_scenario().parent, root, ignore=shutil.ignore_patterns("*.parquet"))
    return root


def test_a_quoted_boolean_is_not_a_boolean(tmp_path: Path) -> None:
    root = _copy(tmp_path)
    scenario = root / "scenario.toml"
    scenario.write_text(
        scenario.read_text().replace(
            "simulated_tee_allowed = true", 'simulated_tee_allowed = "yes"'
        )
    )
    with pytest.raises(ConfigError) as info:
        load_scenario(scenario)
    assert info.value.id == "config.scenario.invalid"
    assert "simulated_tee_allowed" in info.value.message


def test_a_party_config_with_a_string_budget_is_refused(tmp_path: Path) -> None:
    root = _copy(tmp_path)
    party = root / "parties" / "transit.toml"
    party.write_text(party.read_text() + '\n[budgets.ridership]\nepsilon = "1.0"\n')
    with pytest.raises(ConfigError) as info:
        load_scenario(root / "scenario.toml")
    assert info.value.id == "config.party.invalid"


def test_an_oversized_scenario_is_refused(tmp_path: Path) -> None:
    root = _copy(tmp_path)
    scenario = root / "scenario.toml"
    scenario.write_text(scenario.read_text() + "#" * (1 << 20))
    with pytest.raises(ConfigError) as info:
        load_scenario(scenario)
    assert info.value.id == "config.file.too_large"


def test_compute_workers_need_the_task_to_pin_the_worker_code(tmp_path: Path) -> None:
    root = _copy(tmp_path)
    task = root / "task.toml"
    task.write_text(
        "\n".join(
            line for line in task.read_text().splitlines() if not line.startswith("analysis_worker")
        )
    )
    scenario = root / "scenario.toml"
    assert load_scenario(scenario).workers == 0
    scenario.write_text(scenario.read_text() + "\n[compute]\nworkers = 2\n")
    with pytest.raises(ConfigError) as info:
        load_scenario(scenario)
    assert info.value.id == "config.scenario.no_worker_pin"


def test_compute_workers_come_from_the_scenario_or_the_override(tmp_path: Path) -> None:
    root = _copy(tmp_path)
    scenario = root / "scenario.toml"
    scenario.write_text(scenario.read_text() + "\n[compute]\nworkers = 3\n")
    loaded = load_scenario(scenario)
    assert loaded.workers == 3
    assert loaded.with_workers(0).workers == 0
    scenario.write_text(scenario.read_text().replace("workers = 3", 'workers = "3"'))
    with pytest.raises(ConfigError) as info:
        load_scenario(scenario)
    assert info.value.id == "config.scenario.invalid"
