"""A requester's own newest observations: turned into the model's rows as the join did, and
refused with a stable id whenever they could make a forecast silently wrong — other columns,
another frequency, times out of order, repeated or overlapping the history, a gap, a series
the model does not know, a value that is not finite, covariates no feed covers."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chronoseal.attest import attester_for
from chronoseal.errors import DataError, PeerRefused
from chronoseal.model import LoadedModel, Recipe
from chronoseal.prediction import ForecastClient
from chronoseal.prediction._input import observation_rows
from chronoseal.spec import Component, TaskSpec, load_spec, resolve_measurements

ROOT = Path(__file__).resolve().parents[2]
CHICAGO = ROOT / "examples" / "chicago" / "task.toml"
ACCOMMODATION = ROOT / "tests" / "data" / "accommodation" / "task.toml"
END = dt.date(2016, 8, 14)
FEED_COLUMNS = ["weather__temp", "home_games__cubs_home"]


def _recipe(freq: str = "D", future: list[str] | None = None, **past: list[int]) -> Recipe:
    return Recipe(
        family="mlforecast-lightgbm",
        freq=freq,
        horizon=14,
        season_length=7,
        seasonalities=[],
        level=80,
        lags=[14],
        rolling=[],
        expanding=False,
        calendar=[],
        holidays=None,
        future_known=FEED_COLUMNS if future is None else future,
        past_only=past,
    )


def _model(recipe: Recipe, series: dict[str, pd.Timestamp]) -> LoadedModel:
    """What :func:`observation_rows` reads of a model: its recipe, series and history."""
    history = pd.concat(
        [
            pd.DataFrame(
                {
                    "unique_id": uid,
                    "ds": pd.date_range(end - pd.Timedelta(days=30), end, freq=recipe.freq),
                    "y": 1.0,
                }
            )
            for uid, end in series.items()
        ],
        ignore_index=True,
    )
    manifest = {"series": {u: str(t) for u, t in series.items()}}
    return LoadedModel(manifest, recipe, history, None)


def _feeds(until: dt.date = dt.date(2016, 8, 28)) -> dict[str, pd.DataFrame]:
    days = pd.date_range("2016-08-15", until, freq="D")
    return {
        "weather": pd.DataFrame({"ds": days, "weather__temp": 20.0}),
        "home_games": pd.DataFrame({"ds": days, "home_games__cubs_home": 0.0}),
    }


@pytest.fixture(scope="module")
def chicago() -> TaskSpec:
    return load_spec(CHICAGO)


def _table(days: list[int], station: str | None = "p1", **columns: Any) -> pa.Table:
    data: dict[str, Any] = {
        "date": pa.array([END + dt.timedelta(days=d) for d in days], pa.date32()),
        "station": pa.array([station] * len(days), pa.string()),
        "rides": pa.array([10.0 + d for d in days], pa.float64()),
    }
    data.update(columns)
    return pa.table(data)


def _refusal(spec: TaskSpec, table: pa.Table, model: LoadedModel, **kw: Any) -> str:
    with pytest.raises(PeerRefused) as refused:
        observation_rows(spec, kw.get("party", "transit"), table, model, kw.get("feeds", _feeds()))
    return refused.value.id


MODEL = _model(_recipe(), {"p1": pd.Timestamp(END)})


def test_observations_become_the_models_rows_with_the_feeds_covariates(chicago: TaskSpec) -> None:
    rows = observation_rows(chicago, "transit", _table([1, 2, 3]), MODEL, _feeds())
    assert list(rows.columns) == ["unique_id", "ds", "y", *FEED_COLUMNS]
    assert rows["unique_id"].tolist() == ["p1"] * 3
    assert rows["ds"].tolist() == list(pd.date_range("2016-08-15", periods=3, freq="D"))
    assert rows["y"].tolist() == [11.0, 12.0, 13.0]
    assert rows["weather__temp"].tolist() == [20.0] * 3


@pytest.mark.parametrize(
    ("table", "expected"),
    [
        (_table([1]).drop_columns(["station"]), "prediction.input.columns"),
        (_table([1], extra=pa.array([1.0])), "prediction.input.columns"),
        (_table([]), "prediction.input.empty"),
        (_table([1]).set_column(0, "date", pa.array(["2016-08-15"])), "prediction.input.time"),
        (
            _table([1, 2]).set_column(0, "date", pa.array([None, END], pa.date32())),
            "prediction.input.null_time",
        ),
        (
            _table([1]).set_column(
                0, "date", pa.array([dt.datetime(2016, 8, 15, 12)], pa.timestamp("s"))
            ),
            "prediction.input.frequency",
        ),
        (_table([1], station=None), "prediction.input.null_key"),
        (_table([1], station="p9"), "prediction.input.unknown_series"),
        (_table([2, 1]), "prediction.input.order"),
        (_table([1, 1, 2]), "prediction.input.duplicate"),
        (_table([0, 1]), "prediction.input.overlap"),
        (_table([1, 3]), "prediction.input.gap"),
        (
            _table([1, 2]).set_column(2, "rides", pa.array([1.0, float("nan")])),
            "prediction.input.non_finite",
        ),
        (
            _table([1]).set_column(2, "rides", pa.array([float("inf")])),
            "prediction.input.non_finite",
        ),
    ],
)
def test_malformed_observations_are_refused_with_their_id(
    chicago: TaskSpec, table: pa.Table, expected: str
) -> None:
    assert _refusal(chicago, table, MODEL) == expected


def test_covariates_no_feed_covers_and_parties_without_series_are_refused(
    chicago: TaskSpec,
) -> None:
    assert _refusal(chicago, _table([1, 2, 3]), MODEL, feeds=_feeds(dt.date(2016, 8, 16))) == (
        "prediction.feed.stale"
    )
    assert _refusal(chicago, _table([1]), MODEL, feeds={}) == "prediction.feed.missing"
    assert _refusal(chicago, _table([1]), MODEL, party="events") == "prediction.input.not_holder"
    lagged = _model(_recipe(future=[], weather__temp=[14, 21]), {"p1": pd.Timestamp(END)})
    assert _refusal(chicago, _table([1]), lagged) == "prediction.input.unsupported"


def test_a_horizontal_holder_sends_only_its_own_series_with_its_own_covariates() -> None:
    spec = load_spec(ACCOMMODATION)
    end = pd.Timestamp("2017-10-01")
    model = _model(_recipe("QS", future=[], occupancy=[4, 8]), {"east/p1": end, "west/p1": end})
    table = pa.table(
        {
            "quarter": pa.array([dt.date(2018, 1, 1), dt.date(2018, 4, 1)], pa.date32()),
            "state": ["p1", "p1"],
            "takings": [5.0, 6.0],
            "occupancy": [0.5, 0.6],
        }
    )
    rows = observation_rows(spec, "east", table, model, {})
    assert rows["unique_id"].tolist() == ["east/p1", "east/p1"]
    assert rows["occupancy"].tolist() == [0.5, 0.6]
    # The bureau's CPI at those quarters is nobody's to send with a request.
    with_cpi = _model(_recipe("QS", future=[], occupancy=[4], cpi__cpi=[4]), {"east/p1": end})
    with pytest.raises(PeerRefused) as refused:
        observation_rows(spec, "east", table, with_cpi, {})
    assert refused.value.id == "prediction.input.unsupported"


@settings(max_examples=150, deadline=None)
@given(days=st.lists(st.integers(min_value=-3, max_value=8), min_size=1, max_size=8))
def test_only_a_gapless_increasing_run_right_after_the_history_is_taken(days: list[int]) -> None:
    spec = load_spec(CHICAGO)
    try:
        rows = observation_rows(spec, "transit", _table(days), MODEL, _feeds())
    except PeerRefused as exc:
        assert days != list(range(1, len(days) + 1))
        assert exc.id in {
            "prediction.input.order",
            "prediction.input.duplicate",
            "prediction.input.overlap",
            "prediction.input.gap",
        }
    else:
        assert days == list(range(1, len(days) + 1))
        assert len(rows) == len(days)


@pytest.mark.parametrize(
    "rule",
    [
        'rides = { action = "laplace", sensitivity = 1.0, epsilon = 0.5 }',
        'rides = { action = "round", digits = 3 }\n[datasets.policy]\nk_threshold = 5',
    ],
)
def test_a_policy_defined_over_the_whole_dataset_sends_no_observations(
    tmp_path: Path, rule: str
) -> None:
    """Fresh noise for the same rows in every request would be spent outside the budget, and
    a k-threshold over a handful of rows means nothing: refused before anything is sent."""
    text = CHICAGO.read_text().replace('rides = { action = "round", digits = 3 }', rule, 1)
    (tmp_path / "task.toml").write_text(text)
    spec = resolve_measurements(load_spec(tmp_path / "task.toml"), lambda c, t: b"\x11" * 32)
    client = ForecastClient(
        None,  # type: ignore[arg-type]  # refused before any chain or channel is used
        spec,
        party="transit",
        sign=lambda digest: b"",
        attester=attester_for("simulated", Component.GATEWAY),
    )
    with pytest.raises(DataError) as refused:
        client.forecast(observations=_table([1]))
    assert refused.value.id == "prediction.input.policy"


TOKYO = dt.timezone(dt.timedelta(hours=9))


def _tokyo(table: pa.Table, hour: int = 0) -> pa.Table:
    """The same observations, each day's time a Tokyo ``hour`` o'clock, zone-aware."""
    days = [dt.datetime.combine(d, dt.time(hour), tzinfo=TOKYO) for d in table["date"].to_pylist()]
    return table.set_column(0, "date", pa.array(days, pa.timestamp("us", tz="Asia/Tokyo")))


def test_aware_local_midnights_are_the_dates_training_rows_would_be(chicago: TaskSpec) -> None:
    """The training rows' zone rule: a Tokyo midnight of 15 August is 15 August (converted
    to UTC first it would be 14 August 15:00, off the grid and overlapping the history)."""
    rows = observation_rows(chicago, "transit", _tokyo(_table([1, 2, 3])), MODEL, _feeds())
    assert rows["ds"].tolist() == list(pd.date_range("2016-08-15", periods=3, freq="D"))
    assert rows["y"].tolist() == [11.0, 12.0, 13.0]


def test_an_aware_time_of_day_on_a_daily_model_is_refused_at_both_ends(chicago: TaskSpec) -> None:
    late = _tokyo(_table([1, 2]), hour=9)
    assert _refusal(chicago, late, MODEL) == "prediction.input.not_local_midnight"
    spec = resolve_measurements(chicago, lambda c, t: b"\x11" * 32)
    client = ForecastClient(
        None,  # type: ignore[arg-type]  # refused before any chain or channel is used
        spec,
        party="transit",
        sign=lambda digest: b"",
        attester=attester_for("simulated", Component.GATEWAY),
    )
    with pytest.raises(DataError) as refused:
        client.forecast(observations=late)
    assert refused.value.id == "prediction.input.not_local_midnight"
    assert refused.value.context == {"column": "date", "rows": 2}
    assert "2016" not in str(refused.value)
