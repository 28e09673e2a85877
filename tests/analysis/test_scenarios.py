"""The analysis works for tasks other than the bundled one, end to end on the demo machinery:
half-hourly electricity demand with a past-only temperature covariate (vertical),
quarterly takings of eight states held by two parties plus a bureau's CPI (horizontal), and
hourly departures from JFK whose training window ends at an hour (``data_until`` a time).
The datasets are real (tests/data/*/README.md gives source and licence)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pandas as pd
import pytest

from chronoseal.ledger import TaskState
from chronoseal.node import DemoConsortium, load_scenario
from chronoseal.spec import planned_fits

DATA = Path(__file__).resolve().parents[1] / "data"


class _Keeping(DemoConsortium):
    def run(self, until="serving"):  # type: ignore[no-untyped-def]
        report = super().run(until)
        assert self.runtime is not None and self.runtime.trained is not None
        self.result = self.runtime.trained.result
        return report


def _run(name: str) -> _Keeping:
    world = _Keeping(load_scenario(DATA / name / "scenario.toml"), lambda _: None)
    report = world.run("trained")
    assert report.state == "Trained"
    assert world.consortium.task(world.task_id).state is TaskState.TRAINED
    world.report = report  # type: ignore[attr-defined]
    return world


@pytest.fixture(scope="module")
def elecdemand() -> _Keeping:
    return _run("elecdemand")


@pytest.fixture(scope="module")
def accommodation() -> _Keeping:
    return _run("accommodation")


def test_half_hourly_demand_uses_temperature_only_through_lags(elecdemand: _Keeping) -> None:
    recipe = elecdemand.result.recipe
    assert recipe.freq == "30min"
    assert recipe.past_only == {"temperature__temperature": [48, 96]}
    assert recipe.future_known == ["workdays__workday"]
    train = elecdemand.result.fitted.train
    assert "temperature__temperature" not in train.columns
    assert {"temperature__temperature_lag48", "temperature__temperature_lag96"} <= set(
        train.columns
    )
    cutoffs = elecdemand.result.backtest["cutoff"].unique()
    assert len(cutoffs) == 2 and len(elecdemand.result.backtest) == 2 * 48


def test_every_provider_of_the_demand_task_is_valued(elecdemand: _Keeping) -> None:
    doc = elecdemand.report.to_json()  # type: ignore[attr-defined]
    assert set(doc["contribution"]) == {"utility", "weather", "calendar"}
    assert doc["contribution_method"]["coalitions"] == 4
    assert set(doc["model"]["metrics"]) == {"mase", "smape", "rmse", "coverage"}


def test_a_horizontal_join_scopes_series_by_party(accommodation: _Keeping) -> None:
    result = accommodation.result
    series = set(result.fitted.train["unique_id"])
    assert len(series) == 8
    assert {s.split("/")[0] for s in series} == {"east", "west"}
    # only the target party's (east's) five states are scored and released
    assert result.backtest["unique_id"].str.startswith("east/").all()
    assert result.backtest["unique_id"].nunique() == 5
    assert result.recipe.past_only.keys() == {"occupancy", "cpi__cpi"}


def test_the_horizontal_task_values_the_other_state_group_and_the_bureau(
    accommodation: _Keeping,
) -> None:
    doc = accommodation.report.to_json()  # type: ignore[attr-defined]
    assert set(doc["contribution"]) == {"east", "west", "bureau"}
    naive = next(
        b
        for b in accommodation.report.released("baselines")  # type: ignore[attr-defined]
        if b["name"] == "SeasonalNaive"
    )
    total = doc["model"]["metrics"]["mase"] - naive["metrics"]["mase"]
    assert sum(doc["contribution"].values()) == pytest.approx(total, abs=1e-6)
    assert "backtest" in doc["releases"]["east"] and "backtest" not in doc["releases"]["west"]


def test_a_horizontal_task_serves_each_party_only_its_own_series() -> None:
    world = DemoConsortium(load_scenario(DATA / "accommodation" / "scenario.toml"), lambda _: None)
    report = world.run("serving")
    assert report.state == "Serving"
    assert set(report.forecasts) == {"east", "west"}
    for party, frame in report.forecasts.items():
        ids = set(frame["unique_id"])
        assert ids and all(uid.startswith(f"{party}/") for uid in ids), (party, ids)


def test_an_hourly_cut_trains_up_to_its_hour_and_serves_from_the_next() -> None:
    # JFK's departures per hour with the airlines' timetable (future known), cut at
    # data_until = 2013-12-28T12:00:00Z: the 12:00 row trains, the feed starts at 13:00.
    scenario = load_scenario(DATA / "jfk" / "scenario.toml")
    cut = dt.datetime(2013, 12, 28, 12, tzinfo=dt.UTC)
    assert scenario.spec.task.data_until == cut
    world = DemoConsortium(scenario, lambda _: None)
    report = world.run("serving")
    assert report.state == "Serving"
    hours = int((cut - dt.datetime(2013, 12, 1, tzinfo=dt.UTC)).total_seconds() // 3600) + 1
    assert {p.name: p.rows_sent for p in report.parties} == {"airport": hours, "airlines": hours}
    frame = report.forecasts["airport"]
    assert len(frame) == 24
    first = pd.Timestamp(frame["ds"].min())
    assert first.tz_localize(first.tz or "UTC") == pd.Timestamp("2013-12-28T13:00:00Z")
    assert pd.Timestamp(frame["ds"].max()).tz_localize(None) == pd.Timestamp("2013-12-29T12:00")


def test_a_year_of_half_hourly_data_with_default_fields_reaches_serving() -> None:
    """Issue 18's case: a year of half-hourly demand, every optional field at its default.
    The task ends Serving; the release says which model and window each baseline used and
    what each phase cost, with exactly the fits the spec announced."""
    world = DemoConsortium(
        load_scenario(DATA / "elecdemand" / "scenario-year.toml"), lambda _: None
    )
    report = world.run("serving")
    assert report.state == "Serving"
    doc = report.to_json()
    assert doc["audit"]["verified"]
    baselines = {b["name"]: b for b in report.released("baselines")}
    assert set(baselines) == {"own", "MSTL", "SeasonalNaive"}
    assert baselines["MSTL"]["input_size"] == 960 and baselines["own"]["input_size"] is None
    cost = doc["cost"]
    assert cost["fits"] == planned_fits(world.spec)
    assert set(cost["seconds"]) >= {"join", "differences", "back-test", "fit", "seal"}
