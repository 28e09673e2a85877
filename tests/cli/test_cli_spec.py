"""`chronoseal spec`: exit codes and messages scripts and reviewers rely on."""

from __future__ import annotations

import re
from pathlib import Path

from typer.testing import CliRunner

from chronoseal.cli import app

runner = CliRunner()


def test_check_ok(example_task: Path) -> None:
    result = runner.invoke(app, ["spec", "check", str(example_task)])
    assert result.exit_code == 0, result.output
    assert "chicago-ridership-14d" in result.output


def test_check_lists_every_problem_and_exits_2(example_task: Path, tmp_path: Path) -> None:
    bad = tmp_path / "task.toml"
    text = example_task.read_text()
    text = text.replace('kind = "forecast"', 'kind = "prophecy"')
    text = text.replace("horizon = 14", "horizon = 0")
    bad.write_text(text)
    result = runner.invoke(app, ["spec", "check", str(bad)])
    assert result.exit_code == 2
    out = result.output
    assert "[spec.invalid]" in out
    assert "task.kind" in out
    assert "model.horizon" in out


def test_check_lists_cross_field_problems(example_task: Path, tmp_path: Path) -> None:
    bad = tmp_path / "task.toml"
    text = example_task.read_text().replace('gust = { action = "drop" }\n', "")
    bad.write_text(text.replace('to = ["transit", "events"]', 'to = ["transit", "weather"]'))
    result = runner.invoke(app, ["spec", "check", str(bad)])
    assert result.exit_code == 2
    assert "column 'gust' has no policy" in result.output
    assert "release.forecasts.to[1]" in result.output


def test_hash_prints_a_stable_task_id(example_task: Path) -> None:
    first = runner.invoke(app, ["spec", "hash", str(example_task)])
    second = runner.invoke(app, ["spec", "hash", str(example_task)])
    assert first.exit_code == 0, first.output
    assert re.fullmatch(r"0x[0-9a-f]{64}\n", first.output)
    assert first.output == second.output


def test_missing_file_exits_2(tmp_path: Path) -> None:
    result = runner.invoke(app, ["spec", "check", str(tmp_path / "nope.toml")])
    assert result.exit_code == 2
    assert "[spec.file.missing]" in result.output
