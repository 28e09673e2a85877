"""The join inside the runtime: statsforecast's long format from the parties' desensitized
tables, imperfect data handled only as ``[join]`` says (every default refuses), and every
refusal naming a dataset, a column and a count — never a value."""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chronoseal.analysis import join_tables
from chronoseal.errors import AnalysisError
from chronoseal.spec import TaskSpec, parse_spec

SECRET = 987654.321

BASE: dict[str, Any] = {
    "spec_version": 1,
    "task": {"name": "t", "kind": "forecast", "deadline": "2030-01-01T00:00:00Z"},
    "participants": [
        {"org": "shop", "roles": ["data_provider", "result_recipient"]},
        {"org": "meteo", "roles": ["data_provider"]},
    ],
    "datasets": [
        {
            "party": "shop",
            "name": "sales",
            "source": "sales",
            "time_column": "t",
            "entity_columns": ["store"],
            "value_columns": ["units"],
            "frequency": "D",
            "policy": {
                "columns": {
                    "t": {"action": "keep"},
                    "store": {"action": "keep"},
                    "units": {"action": "keep"},
                }
            },
        },
        {
            "party": "meteo",
            "name": "weather",
            "source": "weather",
            "time_column": "t",
            "value_columns": ["temp"],
            "frequency": "D",
            "availability": "future_known",
            "policy": {"columns": {"t": {"action": "keep"}, "temp": {"action": "keep"}}},
        },
    ],
    "join": {"kind": "vertical", "on": ["t"]},
    "model": {
        "family": "mlforecast-lightgbm",
        "target": {"dataset": "sales", "column": "units"},
        "horizon": 2,
        "season_length": 7,
    },
    "evaluation": {"windows": 1, "metrics": ["mase"]},
    "release": {"metrics": {"to": ["shop"], "which": ["mase"]}, "forecasts": {"to": ["shop"]}},
    "measurements": {
        c: {"tee": "simulated", "value": "00" * 32} for c in ("gateway", "analysis", "prediction")
    },
}


def _spec(freq: str = "D", **join: Any) -> TaskSpec:
    raw = copy.deepcopy(BASE)
    raw["join"].update(join)
    for ds in raw["datasets"]:
        ds["frequency"] = freq
    return parse_spec(raw)


def _sales(times: Any, stores: list[str] | None = None, units: Any = None) -> pa.Table:
    times = pa.array(times) if not isinstance(times, pa.Array) else times
    n = len(times)
    return pa.table(
        {
            "t": times,
            "store": pa.array(stores or ["s1"] * n, type=pa.string()),
            "units": pa.array(units if units is not None else np.arange(n) % 5 + 1.0),
        }
    )


def _weather(times: Any, temp: Any = None) -> pa.Table:
    times = pa.array(times) if not isinstance(times, pa.Array) else times
    return pa.table(
        {"t": times, "temp": pa.array(temp if temp is not None else np.arange(len(times)) * 0.5)}
    )


def _days(n: int, start: str = "2024-01-01") -> list[Any]:
    return [d.date() for d in pd.date_range(start, periods=n, freq="D")]


def _refused(spec: TaskSpec, tables: dict[str, pa.Table], id: str) -> AnalysisError:
    with pytest.raises(AnalysisError) as info:
        join_tables(spec, tables)
    assert info.value.id == id
    assert str(SECRET) not in str(info.value) and "SECRET-ENTITY" not in str(info.value)
    return info.value


def test_a_vertical_join_is_statsforecasts_long_format() -> None:
    days = _days(10)
    stores = ["b"] * 10 + ["a"] * 10
    panel = join_tables(_spec(), {"shop": _sales(days + days, stores), "meteo": _weather(days)})
    frame = panel.frame
    assert list(frame.columns) == ["unique_id", "ds", "y", "weather__temp"]
    assert frame["unique_id"].tolist() == ["a"] * 10 + ["b"] * 10  # sorted by series, then time
    assert str(frame["ds"].dtype) == "datetime64[ns]"
    # the time-only covariate is broadcast over both stores
    assert frame.groupby("unique_id")["weather__temp"].apply(tuple).nunique() == 1
    assert panel.covariates[0].party == "meteo" and panel.providers == ["meteo"]


def test_zone_aware_times_become_utc() -> None:
    ts = pd.date_range("2024-03-01", periods=48, freq="h", tz="UTC")
    berlin = pa.array(ts.tz_convert("Europe/Berlin"), type=pa.timestamp("s", tz="Europe/Berlin"))
    utc = pa.array(ts, type=pa.timestamp("s", tz="UTC"))
    panel = join_tables(_spec("h"), {"shop": _sales(berlin), "meteo": _weather(utc)})
    assert panel.frame["ds"].iloc[0] == pd.Timestamp("2024-03-01 00:00")
    assert panel.frame["weather__temp"].notna().all()


def test_naive_next_to_aware_is_refused_unless_the_zone_is_named() -> None:
    ts = pd.date_range("2024-03-01", periods=48, freq="h")
    naive = pa.array(ts, type=pa.timestamp("s"))
    aware = pa.array(ts.tz_localize("Europe/Berlin"), type=pa.timestamp("s", tz="Europe/Berlin"))
    tables = {"shop": _sales(naive), "meteo": _weather(aware)}
    error = _refused(_spec("h"), tables, "analysis.join.timezone_mix")
    assert error.context == {"naive": ["sales"], "aware": ["weather"]}
    panel = join_tables(_spec("h", naive_timezone="Europe/Berlin"), tables)
    assert panel.frame["ds"].iloc[0] == pd.Timestamp("2024-02-29 23:00")
    assert panel.frame["weather__temp"].notna().all()


def test_a_local_time_that_does_not_exist_is_refused() -> None:
    ts = pd.date_range("2024-03-31 00:00", periods=6, freq="h")  # 02:00 does not exist in Berlin
    naive = pa.array(ts, type=pa.timestamp("s"))
    aware = pa.array(ts.tz_localize("UTC"), type=pa.timestamp("s", tz="UTC"))
    error = _refused(
        _spec("h", naive_timezone="Europe/Berlin"),
        {"shop": _sales(naive), "meteo": _weather(aware)},
        "analysis.join.time_ambiguous",
    )
    assert error.context["dataset"] == "sales"


def test_off_grid_times_are_refused_or_floored() -> None:
    ts = list(pd.date_range("2024-01-01", periods=24, freq="h"))
    ts[5] += pd.Timedelta(minutes=7)
    ts[9] += pd.Timedelta(minutes=59)
    shop = _sales(pa.array(ts, type=pa.timestamp("s")))
    meteo = _weather(
        pa.array(pd.date_range("2024-01-01", periods=24, freq="h"), type=pa.timestamp("s"))
    )
    error = _refused(_spec("h"), {"shop": shop, "meteo": meteo}, "analysis.join.off_grid")
    assert error.context["rows"] == 2
    panel = join_tables(_spec("h", off_grid="floor"), {"shop": shop, "meteo": meteo})
    assert len(panel.frame) == 24
    assert [r.id for r in panel.repairs] == ["analysis.join.off_grid"]


@pytest.mark.parametrize(
    ("rule", "value"), [("mean", 3.5), ("sum", 7.0), ("min", 3.0), ("max", 4.0), ("last", 4.0)]
)
def test_duplicate_keys_are_refused_or_combined(rule: str, value: float) -> None:
    days = _days(6)
    shop = _sales([*days, days[2]], units=[1.0, 2, 3, 4, 5, 6, 4.0])
    meteo = _weather(days)
    error = _refused(_spec(), {"shop": shop, "meteo": meteo}, "analysis.join.duplicate_keys")
    assert error.context["rows"] == 1
    panel = join_tables(_spec(duplicates=rule), {"shop": shop, "meteo": meteo})
    assert panel.frame["y"].iloc[2] == value and len(panel.frame) == 6


@pytest.mark.parametrize(("rule", "value"), [("interpolate", 2.5), ("ffill", 1.0), ("zero", 0.0)])
def test_target_gaps_are_refused_or_filled(rule: str, value: float) -> None:
    days = _days(8)
    kept = days[:3] + days[5:]
    shop = _sales(kept, units=[1.0, 1.0, 1.0, 4.0, 4.0, 4.0])
    meteo = _weather(days)
    error = _refused(_spec(), {"shop": shop, "meteo": meteo}, "analysis.target.gaps")
    assert error.context["rows"] == 2
    panel = join_tables(_spec(target_gaps=rule), {"shop": shop, "meteo": meteo})
    assert len(panel.frame) == 8
    assert panel.frame["y"].iloc[3] == pytest.approx(value if rule != "interpolate" else 2.0)


def test_covariate_gaps_are_filled_forward_only_and_the_target_trimmed() -> None:
    days = _days(10)
    meteo = _weather(days[2:5] + days[6:], temp=[1.0, 2.0, 3.0, 5.0, 6.0, 7.0, 8.0])
    shop = _sales(days)
    error = _refused(_spec(), {"shop": shop, "meteo": meteo}, "analysis.covariate.gaps")
    assert error.context == {"dataset": "weather", "column": "temp", "rows": 3}
    panel = join_tables(_spec(covariate_gaps="ffill"), {"shop": shop, "meteo": meteo})
    # never filled backwards from the future: the series starts where the weather does
    assert panel.frame["ds"].iloc[0] == pd.Timestamp(days[2])
    assert panel.frame["weather__temp"].tolist() == [1.0, 2.0, 3.0, 3.0, 5.0, 6.0, 7.0, 8.0]
    assert {r.id for r in panel.repairs} == {
        "analysis.covariate.gaps",
        "analysis.covariate.trimmed",
    }
    zero = join_tables(_spec(covariate_gaps="zero"), {"shop": shop, "meteo": meteo})
    assert len(zero.frame) == 10 and zero.frame["weather__temp"].iloc[0] == 0.0


def test_a_covariate_with_no_overlap_is_refused() -> None:
    error = _refused(
        _spec(),
        {"shop": _sales(_days(10)), "meteo": _weather(_days(10, "2030-01-01"))},
        "analysis.join.no_overlap",
    )
    assert error.context["dataset"] == "weather"


def test_bad_targets_and_keys_are_refused_without_their_values() -> None:
    days = _days(6)
    meteo = _weather(days)
    _refused(
        _spec(),
        {"shop": _sales(days, units=[None] * 6), "meteo": meteo},
        "analysis.target.all_null",
    )
    _refused(
        _spec(),
        {"shop": _sales(days, units=[SECRET] * 6), "meteo": meteo},
        "analysis.target.constant",
    )
    shop = _sales(days, stores=["SECRET-ENTITY"] * 5 + [None])  # type: ignore[list-item]
    error = _refused(_spec(), {"shop": shop, "meteo": meteo}, "analysis.join.null_key")
    assert error.context == {"dataset": "sales", "column": "store", "rows": 1}
    times = pa.array([*days[:5], None], type=pa.date32())
    _refused(_spec(), {"shop": _sales(times), "meteo": meteo}, "analysis.join.null_time")
    _refused(
        _spec(),
        {"shop": _sales(days).drop(["units"]), "meteo": meteo},
        "analysis.join.missing_column",
    )
    _refused(_spec(), {"shop": _sales(days)}, "analysis.intake.missing_party")


def _horizontal() -> TaskSpec:
    raw = copy.deepcopy(BASE)
    raw["participants"].append({"org": "rival", "roles": ["data_provider", "result_recipient"]})
    rival = copy.deepcopy(raw["datasets"][0])
    rival.update(party="rival", name="rival_sales", source="sales")
    raw["datasets"].insert(1, rival)
    raw["join"] = {"kind": "horizontal", "on": ["t"]}
    return parse_spec(raw)


def test_a_horizontal_join_scopes_series_by_party_and_adds_covariate_datasets() -> None:
    days = _days(8)
    panel = join_tables(
        _horizontal(),
        {
            "shop": _sales(days, units=np.arange(8) + 1.0),
            "rival": _sales(days, units=np.arange(8) * 2 + 1.0),  # same store name "s1"
            "meteo": _weather(days),
        },
    )
    assert sorted(panel.frame["unique_id"].unique()) == ["rival/s1", "shop/s1"]
    assert panel.series_party == {"shop/s1": "shop", "rival/s1": "rival"}
    assert panel.target_series() == ["shop/s1"]
    assert panel.frame["weather__temp"].notna().all()
    assert panel.providers == ["meteo", "rival"]


@settings(max_examples=30, deadline=None)
@given(
    st.lists(st.booleans(), min_size=12, max_size=40),
    st.randoms(use_true_random=False),
)
def test_filled_series_are_complete_and_keep_every_observation(keep: list[bool], rnd: Any) -> None:
    keep[0] = keep[-1] = True
    days = _days(len(keep))
    observed = [d for d, k in zip(days, keep, strict=True) if k]
    units = [float(i % 7 + 1) for i, _ in enumerate(observed)]
    units[0] = 100.0  # never constant
    order = list(range(len(observed)))
    rnd.shuffle(order)
    shop = _sales([observed[i] for i in order], units=[units[i] for i in order])
    spec = _spec(target_gaps="ffill")
    panel = join_tables(spec, {"shop": shop, "meteo": _weather(days)})
    frame = panel.frame
    assert frame["ds"].tolist() == [pd.Timestamp(d) for d in days]
    assert not frame.duplicated(["unique_id", "ds"]).any()
    got = dict(zip(frame["ds"], frame["y"], strict=True))
    assert all(got[pd.Timestamp(d)] == u for d, u in zip(observed, units, strict=True))
    again = join_tables(spec, {"shop": _sales(observed, units=units), "meteo": _weather(days)})
    pd.testing.assert_frame_equal(frame, again.frame)
