"""Output paths are refused before a run starts, not after it has taken its minutes."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from chronoseal.cli import app

runner = CliRunner()


@pytest.mark.parametrize(
    "args",
    [
        ["demo", "--json", "--report", "x.html"],
        ["demo", "--report", "--json"],
        ["run", "scenario.toml", "--json", "--report"],
        ["audit", "0x" + "00" * 32, "--out", "--json"],
    ],
)
def test_an_option_where_a_path_should_be_is_refused_before_anything_runs(
    args: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, args)
    assert result.exit_code == 2
    assert "is not a PATH" in result.output
    assert list(tmp_path.iterdir()) == []  # no file named after an option


def test_a_directory_given_as_the_output_file_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "out").mkdir()
    result = runner.invoke(app, ["demo", "--json", "out"])
    assert result.exit_code == 2
    assert "is a directory" in result.output
