"""`chronoseal spec`: exit codes and messages scripts and reviewers rely on."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
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


def _edited(example_task: Path, tmp_path: Path, old: str, new: str) -> Path:
    text = example_task.read_text()
    assert old in text
    bad = tmp_path / "task.toml"
    bad.write_text(text.replace(old, new, 1))
    return bad


@pytest.mark.parametrize(
    ("old", "new", "where"),
    [
        ("horizon = 14", 'horizon = "14"', "model.horizon"),
        ("horizon = 14", "horizon = 14.0", "model.horizon"),
        ("horizon = 14", "horizon = true", "model.horizon"),
        ("windows = 13", "windows = 9007199254740993", "evaluation.windows"),
        ("digits = 3", "digits = 9007199254740993", "digits"),
        ("max = 10.0 }", "max = inf }", "percip.max"),
        ("max = 10.0 }", "max = nan }", "percip.max"),
    ],
)
def test_check_and_hash_agree_on_what_is_valid(
    example_task: Path, tmp_path: Path, old: str, new: str, where: str
) -> None:
    """Strict types, and nothing canonical JSON cannot carry: what check accepts, hash hashes."""
    bad = _edited(example_task, tmp_path, old, new)
    checked = runner.invoke(app, ["spec", "check", str(bad)])
    hashed = runner.invoke(app, ["spec", "hash", str(bad)])
    assert checked.exit_code == 2 and hashed.exit_code == 2, checked.output
    assert where in checked.output
    assert "Traceback" not in checked.output + hashed.output


def test_an_oversized_spec_is_refused_before_parsing(example_task: Path, tmp_path: Path) -> None:
    big = tmp_path / "task.toml"
    big.write_text(example_task.read_text() + "#" * (1 << 20) + "\n")
    result = runner.invoke(app, ["spec", "check", str(big)])
    assert result.exit_code == 2
    assert "[spec.file.too_large]" in result.output
