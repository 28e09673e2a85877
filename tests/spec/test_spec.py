"""The task spec: what parties approve must parse strictly, fail loudly and hash stably."""

from __future__ import annotations

import copy
import datetime as dt
import os
import tomllib
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chronoseal.errors import SpecError
from chronoseal.spec import (
    Component,
    canonical_json,
    load_spec,
    parse_spec,
    resolve_measurements,
    task_id,
)


def _raw(example_task: Path) -> dict[str, Any]:
    return tomllib.loads(example_task.read_text())


def _resolved(raw: dict[str, Any]) -> bytes:
    spec = resolve_measurements(parse_spec(raw), lambda c, t: bytes([len(c.value)]) * 32)
    return task_id(spec)


def _problems(raw: dict[str, Any]) -> dict[str, str]:
    with pytest.raises(SpecError) as info:
        parse_spec(raw)
    return {p.location: p.message for p in info.value.problems}


def test_example_spec_is_valid(example_task: Path) -> None:
    spec = load_spec(example_task)
    assert [p.org for p in spec.participants] == ["transit", "weather", "events"]
    assert spec.data_providers() == ["transit", "weather", "events"]
    assert spec.model.horizon == 14


def test_task_id_is_sha256_of_canonical_json(example_task: Path) -> None:
    import hashlib

    spec = resolve_measurements(load_spec(example_task), lambda c, t: b"\x11" * 32)
    canon = canonical_json(spec)
    assert task_id(spec) == hashlib.sha256(canon).digest()
    assert b'"value":"' + b"11" * 32 + b'"' in canon


def test_task_id_ignores_formatting_but_not_content(example_task: Path) -> None:
    raw = _raw(example_task)
    reordered = dict(reversed(list(raw.items())))
    assert _resolved(raw) == _resolved(reordered)
    changed = copy.deepcopy(raw)
    changed["model"]["horizon"] = 7
    assert _resolved(changed) != _resolved(raw)


def test_hex_case_and_prefix_do_not_change_the_id(example_task: Path) -> None:
    raw = _raw(example_task)
    for comp in raw["measurements"]:  # every pin the example task has
        raw["measurements"][comp] = {"tee": "sgx", "value": "AB" * 32}
    other = copy.deepcopy(raw)
    for comp in other["measurements"]:
        other["measurements"][comp]["value"] = "0x" + "ab" * 32
    assert task_id(parse_spec(raw)) == task_id(parse_spec(other))


def test_unresolved_measurement_cannot_be_hashed(example_task: Path) -> None:
    with pytest.raises(SpecError) as info:
        task_id(load_spec(example_task))
    assert info.value.id == "spec.measurement.unresolved"


def test_every_problem_is_listed_with_its_location(example_task: Path) -> None:
    raw = _raw(example_task)
    raw["task"]["kind"] = "prophecy"
    raw["model"]["horizon"] = 0
    raw["datasets"][0]["policy"]["columns"]["rides"] = {"action": "laplace", "epsilon": -1}
    problems = _problems(raw)
    assert "task.kind" in problems
    assert "model.horizon" in problems
    assert any(loc.startswith("datasets[0] (ridership).policy.columns.rides") for loc in problems)
    assert len(problems) >= 4  # laplace misses sensitivity and has a bad epsilon


def test_uncovered_and_unknown_policy_columns(example_task: Path) -> None:
    raw = _raw(example_task)
    del raw["datasets"][1]["policy"]["columns"]["dew"]
    raw["datasets"][2]["policy"]["columns"]["secret"] = {"action": "keep"}
    problems = _problems(raw)
    assert any("'dew' has no policy" in m for m in problems.values())
    assert "datasets[2].policy.columns.secret" in problems


def test_cross_references_are_checked(example_task: Path) -> None:
    raw = _raw(example_task)
    raw["datasets"][0]["party"] = "nobody"
    raw["release"]["forecasts"]["to"] = ["weather"]
    raw["model"]["target"]["column"] = "station"
    raw["evaluation"]["metrics"] = ["mase", "accuracy"]
    raw["participants"].append({"org": "transit", "roles": ["data_provider"]})
    problems = _problems(raw)
    assert problems["datasets[0].party"] == "'nobody' is not a participant"
    assert "lacks the role 'result_recipient'" in problems["release.forecasts.to[0]"]
    assert "model.target.column" in problems
    assert "unknown metric 'accuracy'" in problems["evaluation.metrics[1]"]
    assert "is listed 2 times" in problems["participants"]


def test_action_not_allowed_on_column_kind(example_task: Path) -> None:
    raw = _raw(example_task)
    raw["datasets"][0]["policy"]["columns"]["date"] = {"action": "pseudonymize"}
    raw["datasets"][0]["policy"]["columns"]["station"] = {
        "action": "laplace",
        "sensitivity": 1,
        "epsilon": 1,
    }
    problems = _problems(raw)
    assert "datasets[0].policy.columns.date.action" in problems
    assert "datasets[0].policy.columns.station.action" in problems


def test_installed_only_for_simulated(example_task: Path) -> None:
    raw = _raw(example_task)
    raw["measurements"]["analysis"] = {"tee": "tdx", "value": "installed"}
    raw["measurements"]["gateway"] = {"tee": "sgx", "value": "abc"}
    problems = _problems(raw)
    assert "only meaningful" in problems["measurements.analysis.value"]
    assert "64 hex digits" in problems["measurements.gateway.value"]


def test_bad_toml_and_missing_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[task\nname = 1")
    with pytest.raises(SpecError) as info:
        load_spec(bad)
    assert info.value.id == "spec.toml.invalid"
    with pytest.raises(SpecError) as info:
        load_spec(tmp_path / "absent.toml")
    assert info.value.id == "spec.file.missing"


def test_resolver_receives_component_and_tee(example_task: Path) -> None:
    seen: list[tuple[Component, str]] = []

    def resolver(c: Component, tee: str) -> bytes:
        seen.append((c, tee))
        return b"\x00" * 32

    resolve_measurements(load_spec(example_task), resolver)
    assert sorted(c.value for c, _ in seen) == sorted(_raw(example_task)["measurements"])
    assert {"analysis", "gateway", "prediction"} <= {c.value for c, _ in seen}
    assert {t for _, t in seen} == {"simulated"}


_json_leaf = st.one_of(st.integers(-(2**50), 2**50), st.text(max_size=8), st.booleans())


@settings(max_examples=60, deadline=None)
@given(extra=st.dictionaries(st.text(min_size=1, max_size=8), _json_leaf, min_size=1, max_size=4))
def test_unknown_keys_are_refused_anywhere(example_task: Path, extra: dict[str, Any]) -> None:
    """A reviewer must never approve fields the software silently ignores."""
    raw = _raw(example_task)
    raw["model"] = {**raw["model"], **{f"x_{k}": v for k, v in extra.items()}}
    problems = _problems(raw)
    assert all(loc.startswith("model.x_") for loc in problems)
    assert len(problems) == len(extra)


def test_vertical_join_needs_one_time_shift(example_task: Path) -> None:
    raw = _raw(example_task)
    del raw["model"]["holidays"]  # holidays need true dates; this test is about the shift
    raw["datasets"][1]["policy"]["time_shift"] = {"max_days": 30}
    problems = _problems(raw)
    assert "same time_shift" in problems["datasets"]
    for ds in raw["datasets"]:
        ds["policy"]["time_shift"] = {"max_days": 30}
    assert parse_spec(raw).datasets[0].policy.time_shift is not None


def test_every_covariate_must_say_when_it_is_known(example_task: Path) -> None:
    raw = _raw(example_task)
    del raw["datasets"][1]["availability"]
    problems = _problems(raw)
    assert "datasets[1].availability" in problems
    assert "past_only" in problems["datasets[1].availability"]
    raw["datasets"][1]["column_availability"] = {
        c: "past_only"
        for c, rule in raw["datasets"][1]["policy"]["columns"].items()
        if c != "date" and rule["action"] != "drop"
    }
    assert parse_spec(raw).datasets[1].availability_of("temp") == "past_only"
    raw["model"]["exogenous"] = "none"
    del raw["datasets"][1]["column_availability"]
    assert parse_spec(raw).model.exogenous == "none"


def test_the_old_exogenous_flag_alone_is_not_enough(example_task: Path) -> None:
    raw = _raw(example_task)
    raw["model"]["exogenous"] = "future_known"
    assert "model.exogenous" in _problems(raw)


def test_column_availability_names_only_covariates(example_task: Path) -> None:
    raw = _raw(example_task)
    raw["datasets"][0]["column_availability"] = {"rides": "past_only", "nope": "past_only"}
    problems = _problems(raw)
    assert "datasets[0].column_availability.rides" in problems
    assert "datasets[0].column_availability.nope" in problems


@pytest.mark.parametrize(
    ("path", "value", "where"),
    [
        (("join", "naive_timezone"), "Mars/Olympus", "join.naive_timezone"),
        (("model", "holidays"), "XX", "model.holidays"),
        (("model", "seasonalities"), [365], "model.seasonalities"),
        (("evaluation", "level"), 100, "evaluation.level"),
        (("join", "duplicates"), "average", "join.duplicates"),
        (("release", "contribution"), {"to": ["nobody"]}, "release.contribution.to[0]"),
    ],
)
def test_analysis_settings_are_checked(
    example_task: Path, path: tuple[str, str], value: Any, where: str
) -> None:
    raw = _raw(example_task)
    raw[path[0]][path[1]] = value
    assert where in _problems(raw)


def test_every_dataset_is_released_at_the_target_frequency(example_task: Path) -> None:
    raw = _raw(example_task)
    raw["datasets"][2]["frequency"] = "h"
    assert "resample it to 'D'" in _problems(raw)["datasets[2].frequency"]
    raw["datasets"][2]["policy"]["resample"] = {"to": "D", "agg": "max"}
    assert parse_spec(raw).datasets[2].effective_frequency() == "D"


def test_a_covariate_entity_must_be_a_join_key(example_task: Path) -> None:
    raw = _raw(example_task)
    raw["datasets"][1]["entity_columns"] = ["station"]
    raw["datasets"][1]["policy"]["columns"]["station"] = {"action": "keep"}
    assert "datasets[1].entity_columns" in _problems(raw)
    raw["join"]["on"] = ["date", "station"]
    raw["datasets"][2]["entity_columns"] = ["station"]
    raw["datasets"][2]["policy"]["columns"]["station"] = {"action": "keep"}
    assert parse_spec(raw).join.on == ["date", "station"]


def test_holidays_need_true_dates(example_task: Path) -> None:
    raw = _raw(example_task)
    for ds in raw["datasets"]:
        ds["policy"]["time_shift"] = {"max_days": 30}
    assert "secret offset" in _problems(raw)["model.holidays"]


JFK_TASK = Path(__file__).resolve().parents[1] / "data" / "jfk" / "task.toml"


def _hourly() -> dict[str, Any]:
    return tomllib.loads(JFK_TASK.read_text())


def _until(raw: dict[str, Any], toml_value: str) -> dict[str, Any]:
    """``raw`` with ``data_until`` as TOML reads the literal ``toml_value``."""
    raw = copy.deepcopy(raw)
    raw["task"]["data_until"] = tomllib.loads(f"v = {toml_value}")["v"]
    return raw


def test_data_until_is_a_date_on_a_daily_task(example_task: Path) -> None:
    raw = _raw(example_task)
    assert parse_spec(_until(raw, "2016-08-14")).task.data_until == dt.date(2016, 8, 14)
    for literal in ('"2016-08-14"', "2016-08-14T00:00:00Z", "2016-08-14T23:00:00", "12:00:00"):
        assert "task.data_until" in _problems(_until(raw, literal)), literal
    assert "sub-daily" in _problems(_until(raw, "2016-08-14T00:00:00Z"))["task.data_until"]
    assert "not a str" in _problems(_until(raw, '"2016-08-14"'))["task.data_until"]


def test_an_hourly_task_takes_a_time_with_zone_on_its_grid() -> None:
    raw = _hourly()
    spec = parse_spec(raw)
    assert spec.task.data_until == dt.datetime(2013, 12, 28, 12, tzinfo=dt.UTC)
    assert spec.task.training_end() == spec.task.data_until
    # the same instant written in another zone is the same task
    moved = _until(raw, "2013-12-28T07:00:00-05:00")
    assert parse_spec(moved).task.data_until == spec.task.data_until
    assert _resolved(moved) == _resolved(raw)
    assert parse_spec(_until(raw, "2013-12-28")).task.training_end() == dt.datetime(
        2013, 12, 29, tzinfo=dt.UTC
    )
    assert "zone" in _problems(_until(raw, "2013-12-28T12:00:00"))["task.data_until"]
    assert "grid" in _problems(_until(raw, "2013-12-28T12:30:00Z"))["task.data_until"]


def test_a_half_hourly_grid_is_read_in_the_naive_times_zone() -> None:
    raw = _hourly()
    for ds in raw["datasets"]:
        ds["frequency"] = "30min"
    assert parse_spec(_until(raw, "2013-12-28T12:30:00Z")).task.data_until is not None
    raw["join"]["naive_timezone"] = "Asia/Kolkata"  # UTC+05:30: 12:00Z is 17:30 there
    assert parse_spec(_until(raw, "2013-12-28T12:00:00Z")).task.data_until is not None
    for ds in raw["datasets"]:
        ds["frequency"] = "h"
    assert "grid" in _problems(_until(raw, "2013-12-28T12:00:00Z"))["task.data_until"]


def test_the_training_window_ends_before_the_deadline(example_task: Path) -> None:
    raw = _raw(example_task)
    raw["task"]["deadline"] = dt.datetime(2016, 8, 15, tzinfo=dt.UTC)
    assert parse_spec(_until(raw, "2016-08-14")).task.data_until == dt.date(2016, 8, 14)
    assert "deadline" in _problems(_until(raw, "2016-08-15"))["task.data_until"]
    hourly = _hourly()
    hourly["task"]["deadline"] = dt.datetime(2013, 12, 28, 12, tzinfo=dt.UTC)
    assert "deadline" in _problems(hourly)["task.data_until"]


def test_a_fifo_in_place_of_a_task_file_is_refused_not_waited_on(tmp_path: Path) -> None:
    fifo = tmp_path / "task.toml"
    os.mkfifo(fifo)  # opening it for reading would block until a writer came
    with pytest.raises(SpecError) as refused:
        load_spec(fifo)
    assert refused.value.id == "spec.file.not_regular"
