"""The join inside the TEE: what users rely on when they hand it their desensitized tables.

* A vertical join lines every covariate up with the target on time (and on the entity
  columns in ``join.on``), broadcasts a time-only covariate over every target series, names
  covariates ``<dataset>__<column>`` and returns statsforecast's long format sorted by
  ``(unique_id, ds)`` with naive UTC ``datetime64[ns]`` times and float values.
* A horizontal join scopes ``unique_id`` as ``party/entity``: two parties' series never
  collide, and ``series_party`` says whose each series is.
* Times are normalised to UTC; naive next to zone-aware times is refused unless
  ``join.naive_timezone`` says where the naive ones are, and a local time that a
  daylight-saving change makes non-existent or ambiguous is refused.
* Imperfect data (off-grid times, duplicate keys, target gaps, missing covariates) is repaired
  only as ``[join]`` allows and otherwise refused with a stable id, and every repair and
  refusal counts rows; covariates are never filled from the future.
* A refusal names the dataset and the column, and never carries a data value.
* The result does not depend on the order of the rows, keeps every observation unchanged and
  puts every series on a complete grid.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chronoseal.analysis import Panel, join_tables
from chronoseal.errors import AnalysisError
from chronoseal.spec import TaskSpec, parse_spec

SECRET_VALUE = 987654.321
SECRET_ENTITY = "SECRET-ENTITY"

# --- spec builder ---------------------------------------------------------------------------


def _dataset(
    party: str,
    name: str,
    *,
    freq: str,
    time: str = "date",
    entities: Sequence[str] = (),
    values: Sequence[str] = ("value",),
    drop: Sequence[str] = (),
    availability: str | None = "past_only",
) -> dict[str, Any]:
    columns = [time, *entities, *values]
    raw: dict[str, Any] = {
        "party": party,
        "name": name,
        "source": name,
        "time_column": time,
        "entity_columns": list(entities),
        "value_columns": list(values),
        "frequency": freq,
        "policy": {
            "columns": {c: {"action": "drop" if c in drop else "keep"} for c in columns},
        },
    }
    if availability is not None:
        raw["availability"] = availability
    return raw


def make_spec(
    *,
    freq: str = "D",
    kind: str = "vertical",
    on: Sequence[str] = ("date",),
    target: Mapping[str, Any] | None = None,
    others: Sequence[Mapping[str, Any]] = (),
    exogenous: str = "declared",
    **join: Any,
) -> TaskSpec:
    """A task with a target dataset (party ``shop``, entity ``store``, target ``sales``) and
    covariate datasets, each given as ``_dataset`` keyword arguments plus party and name."""
    target_kw: dict[str, Any] = {
        "party": "shop",
        "name": "sales",
        "entities": ("store",),
        "values": ("sales",),
    }
    target_kw.update(target or {})
    datasets = [
        _dataset(target_kw.pop("party"), target_kw.pop("name"), freq=freq, **target_kw),
        *[_dataset(o["party"], o["name"], freq=freq, **_rest(o)) for o in others],
    ]
    target_party = datasets[0]["party"]
    parties = list(dict.fromkeys(d["party"] for d in datasets))
    raw = {
        "spec_version": 1,
        "task": {
            "name": "join-test",
            "kind": "forecast",
            "deadline": dt.datetime(2030, 1, 1, tzinfo=dt.UTC),
        },
        "participants": [
            {
                "org": p,
                "roles": ["data_provider", "result_recipient"]
                if p == target_party
                else ["data_provider"],
            }
            for p in parties
        ],
        "datasets": datasets,
        "join": {"kind": kind, "on": list(on), **join},
        "model": {
            "family": "seasonal-naive",
            "target": {"dataset": datasets[0]["name"], "column": "sales"},
            "horizon": 1,
            "season_length": 1,
            "exogenous": exogenous,
        },
        "evaluation": {"windows": 1, "metrics": ["mase"]},
        "release": {
            "metrics": {"to": [target_party], "which": ["mase"]},
            "forecasts": {"to": [target_party]},
        },
        "measurements": {
            c: {"tee": "simulated", "value": "installed"}
            for c in ("gateway", "analysis", "prediction")
        },
    }
    return parse_spec(raw)


def _rest(o: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in o.items() if k not in {"party", "name"}}


WEATHER = {"party": "meteo", "name": "weather", "values": ("temp",)}
PROMO = {"party": "ads", "name": "promo", "entities": ("store",), "values": ("spend",)}


# --- table helpers --------------------------------------------------------------------------


def days(start: str, n: int, freq: str = "D") -> list[dt.datetime]:
    return [t.to_pydatetime() for t in pd.date_range(start, periods=n, freq=freq)]


def table(time: Sequence[Any], time_type: pa.DataType | None = None, **cols: Any) -> pa.Table:
    """An Arrow table with the time column ``date`` (naive timestamps unless told) first."""
    arrays: dict[str, pa.Array] = {
        "date": pa.array(list(time), type=time_type or pa.timestamp("us"))
    }
    for name, values in cols.items():
        arrays[name] = values if isinstance(values, pa.Array) else pa.array(list(values))
    return pa.table(arrays)


def sales(
    stores: Mapping[str, Sequence[float | None]],
    start: str = "2024-01-01",
    freq: str = "D",
    **extra: Sequence[Any],
) -> pa.Table:
    """The target table: one series per store, consecutive periods from ``start``."""
    time: list[dt.datetime] = []
    store: list[str] = []
    y: list[float | None] = []
    for s, values in stores.items():
        time += days(start, len(values), freq)
        store += [s] * len(values)
        y += list(values)
    return table(time, store=store, sales=pa.array(y, type=pa.float64()), **extra)


def refusal(spec: TaskSpec, tables: Mapping[str, pa.Table]) -> AnalysisError:
    with pytest.raises(AnalysisError) as info:
        join_tables(spec, tables)
    return info.value


def rows(panel: Panel, *columns: str) -> list[tuple[Any, ...]]:
    frame = panel.frame
    return [
        tuple(r)
        for r in frame[["unique_id", "ds", "y", *columns]].itertuples(index=False, name=None)
    ]


def ts(text: str) -> pd.Timestamp:
    return pd.Timestamp(text)


# --- vertical -------------------------------------------------------------------------------


def test_vertical_join_aligns_on_time_and_broadcasts_a_time_only_covariate() -> None:
    spec = make_spec(others=[WEATHER])
    weather = table(days("2023-12-31", 5), temp=[0.0, 1.0, 2.0, 3.0, 4.0])
    panel = join_tables(
        spec,
        {
            # rows deliberately out of order
            "shop": sales({"b": [5.0, 6.0, 7.0], "a": [1.0, 2.0, 3.0]}),
            "meteo": weather,
        },
    )
    assert list(panel.frame.columns) == ["unique_id", "ds", "y", "weather__temp"]
    assert rows(panel, "weather__temp") == [
        ("a", ts("2024-01-01"), 1.0, 1.0),
        ("a", ts("2024-01-02"), 2.0, 2.0),
        ("a", ts("2024-01-03"), 3.0, 3.0),
        ("b", ts("2024-01-01"), 5.0, 1.0),
        ("b", ts("2024-01-02"), 6.0, 2.0),
        ("b", ts("2024-01-03"), 7.0, 3.0),
    ]
    assert str(panel.frame["ds"].dtype) == "datetime64[ns]"
    assert panel.frame["y"].dtype == np.float64
    assert panel.frame["weather__temp"].dtype == np.float64
    assert panel.frame.index.equals(pd.RangeIndex(len(panel.frame)))
    assert [(c.name, c.party, c.dataset, c.column) for c in panel.covariates] == [
        ("weather__temp", "meteo", "weather", "temp")
    ]
    assert panel.series_party == {"a": "shop", "b": "shop"}
    assert panel.target_party == "shop"
    assert panel.providers == ["meteo"]
    assert panel.repairs == []


def test_vertical_join_matches_the_entity_column_in_join_on() -> None:
    spec = make_spec(on=("store",), others=[PROMO])
    promo = table(
        days("2024-01-01", 2) * 2,
        store=["b", "b", "a", "a"],
        spend=[20.0, 21.0, 10.0, 11.0],
    )
    panel = join_tables(spec, {"shop": sales({"a": [1.0, 2.0], "b": [3.0, 4.0]}), "ads": promo})
    assert rows(panel, "promo__spend") == [
        ("a", ts("2024-01-01"), 1.0, 10.0),
        ("a", ts("2024-01-02"), 2.0, 11.0),
        ("b", ts("2024-01-01"), 3.0, 20.0),
        ("b", ts("2024-01-02"), 4.0, 21.0),
    ]


def test_covariates_are_prefixed_by_dataset_and_the_targets_own_columns_too() -> None:
    spec = make_spec(
        target={"values": ("sales", "temp")},
        others=[WEATHER, {"party": "ads", "name": "promo", "values": ("temp", "spend")}],
    )
    panel = join_tables(
        spec,
        {
            "shop": sales({"a": [1.0, 2.0]}, temp=[30.0, 31.0]),
            "meteo": table(days("2024-01-01", 2), temp=[10.0, 11.0]),
            "ads": table(days("2024-01-01", 2), temp=[20.0, 21.0], spend=[True, False]),
        },
    )
    assert list(panel.frame.columns) == [
        "unique_id",
        "ds",
        "y",
        "sales__temp",
        "weather__temp",
        "promo__temp",
        "promo__spend",
    ]
    assert panel.frame["sales__temp"].tolist() == [30.0, 31.0]
    assert panel.frame["weather__temp"].tolist() == [10.0, 11.0]
    assert panel.frame["promo__temp"].tolist() == [20.0, 21.0]
    assert panel.frame["promo__spend"].tolist() == [1.0, 0.0]
    assert panel.providers == ["ads", "meteo"]


def test_dropped_columns_are_neither_expected_nor_used() -> None:
    spec = make_spec(others=[{**WEATHER, "values": ("temp", "wind"), "drop": ("wind",)}])
    panel = join_tables(
        spec,
        {"shop": sales({"a": [1.0, 2.0]}), "meteo": table(days("2024-01-01", 2), temp=[1, 2])},
    )
    assert [c.name for c in panel.covariates] == ["weather__temp"]


def test_exogenous_none_joins_no_covariate() -> None:
    spec = make_spec(others=[WEATHER], exogenous="none")
    panel = join_tables(
        spec,
        {"shop": sales({"a": [1.0, 2.0]}), "meteo": table(days("2024-01-01", 2), temp=[1, 2])},
    )
    assert list(panel.frame.columns) == ["unique_id", "ds", "y"]
    assert panel.covariates == []


def test_several_entity_columns_make_one_unique_id() -> None:
    spec = make_spec(target={"entities": ("store", "item")})
    t = sales({"a": [1.0, 2.0], "b": [3.0, 4.0]}, item=["x", "x", "y", "y"])
    panel = join_tables(spec, {"shop": t})
    assert sorted(panel.series_party) == ["a|x", "b|y"]


def test_entity_values_containing_the_separator_do_not_collide() -> None:
    spec = make_spec(target={"entities": ("store", "item")})
    tbl = table(
        days("2024-01-01", 2) * 2,
        store=["a|b", "a|b", "a", "a"],
        item=["c", "c", "b|c", "b|c"],
        sales=[1.0, 2.0, 3.0, 5.0],
    )
    panel = join_tables(spec, {"shop": tbl})
    assert len(panel.series_party) == 2
    assert panel.frame.groupby("unique_id")["y"].apply(list).tolist() == [[1.0, 2.0], [3.0, 5.0]]


def test_a_target_without_entity_columns_is_one_series_named_after_its_dataset() -> None:
    spec = make_spec(target={"entities": ()})
    panel = join_tables(spec, {"shop": table(days("2024-01-01", 3), sales=[1.0, 2.0, 4.0])})
    assert panel.frame["unique_id"].unique().tolist() == ["sales"]


@pytest.mark.parametrize(
    ("freq", "start", "n"),
    [
        ("D", "2024-01-01", 4),
        ("h", "2024-03-30 22:00", 6),
        ("30min", "2024-01-01 23:00", 4),
        ("W", "2024-01-07", 4),  # Sundays: pandas' W-SUN labels
        ("MS", "2024-01-01", 4),
        ("QS", "2024-01-01", 4),
    ],
)
def test_every_frequency_joins_on_its_grid(freq: str, start: str, n: int) -> None:
    spec = make_spec(freq=freq, others=[WEATHER])
    times = days(start, n, freq)
    panel = join_tables(
        spec,
        {
            "shop": sales({"a": [float(i) for i in range(n)]}, start=start, freq=freq),
            "meteo": table(times, temp=[10.0 + i for i in range(n)]),
        },
    )
    assert panel.frame["ds"].tolist() == [pd.Timestamp(t) for t in times]
    assert panel.frame["weather__temp"].tolist() == [10.0 + i for i in range(n)]
    assert panel.grid.alias == freq


# --- horizontal -----------------------------------------------------------------------------


def _horizontal(**join: Any) -> TaskSpec:
    return make_spec(
        kind="horizontal",
        target={"values": ("sales", "price")},
        others=[
            {
                "party": "rival",
                "name": "rival",
                "entities": ("store",),
                "values": ("sales", "price"),
            }
        ],
        **join,
    )


def test_horizontal_join_scopes_series_by_party() -> None:
    panel = join_tables(
        _horizontal(),
        {
            "shop": sales({"a": [1.0, 2.0]}, price=[9.0, 9.5]),
            "rival": sales({"a": [5.0, 6.0], "z": [7.0, 8.0]}, price=[1.0, 2.0, 3.0, 4.0]),
        },
    )
    assert rows(panel, "price") == [
        ("rival/a", ts("2024-01-01"), 5.0, 1.0),
        ("rival/a", ts("2024-01-02"), 6.0, 2.0),
        ("rival/z", ts("2024-01-01"), 7.0, 3.0),
        ("rival/z", ts("2024-01-02"), 8.0, 4.0),
        ("shop/a", ts("2024-01-01"), 1.0, 9.0),
        ("shop/a", ts("2024-01-02"), 2.0, 9.5),
    ]
    assert panel.series_party == {"shop/a": "shop", "rival/a": "rival", "rival/z": "rival"}
    assert panel.target_series() == ["shop/a"]
    assert panel.providers == ["rival"]
    assert [(c.name, c.party) for c in panel.covariates] == [("price", "*")]


def test_horizontal_join_without_covariates_is_sorted_too() -> None:
    spec = make_spec(
        kind="horizontal",
        exogenous="none",
        others=[{"party": "alpha", "name": "alpha", "entities": ("store",), "values": ("sales",)}],
    )
    panel = join_tables(
        spec,
        {"shop": sales({"a": [1.0, 2.0]}), "alpha": sales({"a": [3.0, 5.0]})},
    )
    assert panel.frame["unique_id"].tolist() == ["alpha/a", "alpha/a", "shop/a", "shop/a"]
    assert panel.frame.index.equals(pd.RangeIndex(4))


def test_horizontal_join_merges_a_time_only_covariate_onto_every_series() -> None:
    spec = make_spec(
        freq="QS",
        kind="horizontal",
        others=[
            {"party": "rival", "name": "rival", "entities": ("store",), "values": ("sales",)},
            {"party": "bureau", "name": "cpi", "values": ("cpi",)},
        ],
    )
    quarters = days("2024-01-01", 3, "QS")
    panel = join_tables(
        spec,
        {
            "shop": sales({"a": [1.0, 2.0, 3.0]}, freq="QS"),
            "rival": sales({"a": [4.0, 6.0, 5.0], "b": [7.0, 8.0, 9.0]}, freq="QS"),
            "bureau": table(quarters, cpi=[100, 101, 103]),
        },
    )
    assert list(panel.frame.columns) == ["unique_id", "ds", "y", "cpi__cpi"]
    assert panel.frame["unique_id"].tolist() == ["rival/a"] * 3 + ["rival/b"] * 3 + ["shop/a"] * 3
    assert panel.frame["cpi__cpi"].tolist() == [100.0, 101.0, 103.0] * 3
    assert panel.frame["ds"].tolist() == [pd.Timestamp(q) for q in quarters] * 3
    assert [(c.name, c.party, c.dataset) for c in panel.covariates] == [
        ("cpi__cpi", "bureau", "cpi")
    ]
    assert panel.series_party == {"shop/a": "shop", "rival/a": "rival", "rival/b": "rival"}
    assert panel.providers == ["bureau", "rival"]


# --- time zones -----------------------------------------------------------------------------


def test_date32_next_to_naive_timestamps_joins() -> None:
    spec = make_spec(others=[WEATHER])
    panel = join_tables(
        spec,
        {
            "shop": table(
                [dt.date(2024, 1, 1), dt.date(2024, 1, 2)],
                pa.date32(),
                store=["a", "a"],
                sales=[1.0, 2.0],
            ),
            "meteo": table(days("2024-01-01", 2), temp=[3.0, 4.0]),
        },
    )
    assert panel.frame["ds"].tolist() == [ts("2024-01-01"), ts("2024-01-02")]
    assert str(panel.frame["ds"].dtype) == "datetime64[ns]"
    assert panel.frame["weather__temp"].tolist() == [3.0, 4.0]


def test_aware_times_in_different_zones_are_normalised_to_utc() -> None:
    spec = make_spec(freq="h", others=[WEATHER])
    utc = pd.date_range("2024-06-01 10:00", periods=3, freq="h", tz="UTC")
    berlin = utc.tz_convert("Europe/Berlin")  # 12:00, 13:00, 14:00 local (CEST)
    panel = join_tables(
        spec,
        {
            "shop": table(
                utc.to_pydatetime(),
                pa.timestamp("us", tz="UTC"),
                store=["a"] * 3,
                sales=[1.0, 2.0, 3.0],
            ),
            "meteo": table(
                berlin.to_pydatetime(), pa.timestamp("ms", tz="Europe/Berlin"), temp=[5, 6, 7]
            ),
        },
    )
    assert panel.frame["ds"].tolist() == [
        ts("2024-06-01 10:00"),
        ts("2024-06-01 11:00"),
        ts("2024-06-01 12:00"),
    ]
    assert str(panel.frame["ds"].dtype) == "datetime64[ns]"
    assert panel.frame["weather__temp"].tolist() == [5.0, 6.0, 7.0]


def test_on_a_daily_grid_an_aware_local_midnight_joins_a_naive_one_on_its_date() -> None:
    """The zone rule: a Tokyo midnight names its own date (in UTC it is 15:00 the day
    before), so it lines up with the naive midnight of that date, no naive_timezone needed."""
    tokyo = pd.date_range("2024-03-08", periods=2, freq="D", tz="Asia/Tokyo")
    panel = join_tables(
        make_spec(others=[WEATHER]),
        {
            "shop": table(days("2024-03-08", 2), store=["a", "a"], sales=[1.0, 2.0]),
            "meteo": table(
                tokyo.to_pydatetime(), pa.timestamp("s", tz="Asia/Tokyo"), temp=[3.0, 4.0]
            ),
        },
    )
    assert panel.frame["ds"].tolist() == [ts("2024-03-08"), ts("2024-03-09")]
    assert panel.frame["weather__temp"].tolist() == [3.0, 4.0]


def _mixed_zone_tables() -> dict[str, pa.Table]:
    aware = pd.date_range("2024-06-01 10:00", periods=3, freq="h", tz="UTC")
    naive_berlin = [dt.datetime(2024, 6, 1, 12 + i) for i in range(3)]  # local CEST
    return {
        "shop": table(
            aware.to_pydatetime(),
            pa.timestamp("us", tz="UTC"),
            store=["a"] * 3,
            sales=[1.0, 2.0, 3.0],
        ),
        "meteo": table(naive_berlin, temp=[5.0, 6.0, 7.0]),
    }


def test_naive_next_to_aware_times_is_refused() -> None:
    exc = refusal(make_spec(freq="h", others=[WEATHER]), _mixed_zone_tables())
    assert exc.id == "analysis.join.timezone_mix"
    assert "weather" in str(exc)
    assert "naive_timezone" in str(exc)


def test_naive_times_are_read_in_the_declared_zone() -> None:
    spec = make_spec(freq="h", others=[WEATHER], naive_timezone="Europe/Berlin")
    panel = join_tables(spec, _mixed_zone_tables())
    assert panel.frame["ds"].tolist() == [
        ts("2024-06-01 10:00"),
        ts("2024-06-01 11:00"),
        ts("2024-06-01 12:00"),
    ]
    assert panel.frame["weather__temp"].tolist() == [5.0, 6.0, 7.0]


@pytest.mark.parametrize(
    "local",
    [
        dt.datetime(2024, 3, 31, 2, 0),  # clocks jump 02:00 -> 03:00: does not exist
        dt.datetime(2024, 10, 27, 2, 0),  # clocks fall back 03:00 -> 02:00: ambiguous
    ],
)
def test_a_local_time_a_dst_change_makes_invalid_is_refused(local: dt.datetime) -> None:
    spec = make_spec(freq="h", others=[WEATHER], naive_timezone="Europe/Berlin")
    tables = _mixed_zone_tables()
    around = [local - dt.timedelta(hours=1), local, local + dt.timedelta(hours=2)]
    tables["meteo"] = table(around, temp=[SECRET_VALUE] * 3)
    exc = refusal(spec, tables)
    assert exc.id == "analysis.join.time_ambiguous"
    assert exc.context["dataset"] == "weather"
    assert exc.context["column"] == "date"
    assert "weather" in str(exc) and "'date'" in str(exc)
    assert "02:00" not in str(exc) and "2024" not in str(exc)


# --- off-grid times and duplicates ----------------------------------------------------------


def _off_grid_weather() -> pa.Table:
    return table(
        [
            dt.datetime(2024, 1, 1, 0),
            dt.datetime(2024, 1, 2, 6, 30),
            dt.datetime(2024, 1, 3, 23, 59),
        ],
        temp=[1.0, 2.0, 3.0],
    )


def test_off_grid_times_are_refused_with_their_count() -> None:
    spec = make_spec(others=[WEATHER])
    exc = refusal(spec, {"shop": sales({"a": [1.0, 2.0, 3.0]}), "meteo": _off_grid_weather()})
    assert exc.id == "analysis.join.off_grid"
    assert exc.context == {"dataset": "weather", "column": "date", "rows": 2}


def test_off_grid_times_are_floored_when_allowed() -> None:
    spec = make_spec(others=[WEATHER], off_grid="floor")
    panel = join_tables(spec, {"shop": sales({"a": [1.0, 2.0, 3.0]}), "meteo": _off_grid_weather()})
    assert panel.frame["weather__temp"].tolist() == [1.0, 2.0, 3.0]
    assert [(r.id, r.dataset, r.column, r.rows) for r in panel.repairs] == [
        ("analysis.join.off_grid", "weather", "date", 2)
    ]


@pytest.mark.parametrize(
    ("freq", "when", "snapped"),
    [
        ("h", "2024-01-01 10:59:59", "2024-01-01 10:00"),
        ("30min", "2024-01-01 10:45", "2024-01-01 10:30"),
        ("W", "2024-01-03", "2024-01-07"),  # the week ending on Sunday 7 January
        ("MS", "2024-02-17 13:00", "2024-02-01"),
        ("QS", "2024-05-20", "2024-04-01"),
    ],
)
def test_floor_snaps_to_the_period_label(freq: str, when: str, snapped: str) -> None:
    spec = make_spec(freq=freq, target={"entities": ()}, off_grid="floor")
    on_grid = pd.Timestamp(snapped)
    nxt = pd.date_range(on_grid, periods=2, freq={"W": "W-SUN"}.get(freq, freq))[1]
    panel = join_tables(
        spec,
        {
            "shop": table(
                [pd.Timestamp(when).to_pydatetime(), nxt.to_pydatetime()], sales=[1.0, 2.0]
            )
        },
    )
    assert panel.frame["ds"].tolist() == [on_grid, nxt]


def test_floored_times_that_collide_are_duplicates() -> None:
    spec = make_spec(others=[WEATHER], off_grid="floor")
    weather = table(
        [dt.datetime(2024, 1, 1, 1), dt.datetime(2024, 1, 1, 13), dt.datetime(2024, 1, 2)],
        temp=[1.0, 3.0, 5.0],
    )
    exc = refusal(spec, {"shop": sales({"a": [1.0, 2.0]}), "meteo": weather})
    assert exc.id == "analysis.join.duplicate_keys"
    assert exc.context == {"dataset": "weather", "column": "date", "rows": 1}

    spec = make_spec(others=[WEATHER], off_grid="floor", duplicates="mean")
    panel = join_tables(spec, {"shop": sales({"a": [1.0, 2.0]}), "meteo": weather})
    assert panel.frame["weather__temp"].tolist() == [2.0, 5.0]
    assert [r.id for r in panel.repairs] == [
        "analysis.join.off_grid",
        "analysis.join.duplicate_keys",
    ]


def _duplicated_sales() -> pa.Table:
    t = days("2024-01-01", 3)
    return table(
        [t[0], t[1], t[1], t[1], t[2], t[0]],
        store=["a", "a", "a", "a", "a", "b"],
        sales=[1.0, 4.0, 2.0, 3.0, 9.0, 7.0],
    )


def test_duplicate_keys_are_refused() -> None:
    exc = refusal(make_spec(), {"shop": _duplicated_sales()})
    assert exc.id == "analysis.join.duplicate_keys"
    assert exc.context == {"dataset": "sales", "column": "date", "rows": 2}


def test_the_same_time_for_different_entities_is_no_duplicate() -> None:
    panel = join_tables(make_spec(), {"shop": sales({"a": [1.0, 2.0], "b": [1.0, 3.0]})})
    assert len(panel.frame) == 4


@pytest.mark.parametrize(
    ("rule", "combined"),
    [("mean", 3.0), ("sum", 9.0), ("min", 2.0), ("max", 4.0), ("last", 3.0)],
)
def test_duplicate_keys_are_combined_as_the_rule_says(rule: str, combined: float) -> None:
    spec = make_spec(duplicates=rule, off_grid="refuse")
    t = days("2024-01-01", 3)
    tbl = table(
        [t[0], t[1], t[1], t[1], t[2]],
        store=["a"] * 5,
        sales=[1.0, 4.0, 2.0, 3.0, 9.0],
    )
    panel = join_tables(spec, {"shop": tbl})
    assert panel.frame["y"].tolist() == [1.0, combined, 9.0]
    assert [(r.id, r.rows) for r in panel.repairs] == [("analysis.join.duplicate_keys", 2)]


def test_duplicate_covariate_rows_on_an_entity_key_are_combined_per_entity() -> None:
    spec = make_spec(on=("store",), others=[PROMO], duplicates="sum")
    d = days("2024-01-01", 2)
    promo = table(
        [d[0], d[0], d[1], d[0], d[1]],
        store=["a", "a", "a", "b", "b"],
        spend=[1.0, 2.0, 4.0, 8.0, 16.0],
    )
    panel = join_tables(spec, {"shop": sales({"a": [1.0, 2.0], "b": [3.0, 4.0]}), "ads": promo})
    assert panel.frame["promo__spend"].tolist() == [3.0, 4.0, 8.0, 16.0]


def test_duplicate_rows_without_a_value_stay_a_gap_under_every_rule() -> None:
    # A sum of nulls is no observation: it must not become an observed zero.
    d = days("2024-01-01", 3)
    tbl = table([d[0], d[1], d[1], d[2]], store=["a"] * 4, sales=pa.array([1.0, None, None, 3.0]))
    for rule in ("mean", "sum", "min", "max", "last"):
        exc = refusal(make_spec(duplicates=rule), {"shop": tbl})
        assert exc.id == "analysis.target.gaps", rule
        assert exc.context["rows"] == 1
        panel = join_tables(make_spec(duplicates=rule, target_gaps="interpolate"), {"shop": tbl})
        assert panel.frame["y"].tolist() == [1.0, 2.0, 3.0], rule


# --- target gaps ----------------------------------------------------------------------------


def _gappy_sales() -> pa.Table:
    d = days("2024-01-01", 6)
    return table(
        [d[0], d[3], d[4], d[0], d[1], d[2]],
        store=["a", "a", "a", "b", "b", "b"],
        sales=[1.0, 4.0, 2.0, 10.0, None, 30.0],
    )


def test_target_gaps_are_refused_with_the_number_of_missing_periods() -> None:
    exc = refusal(make_spec(), {"shop": _gappy_sales()})
    assert exc.id == "analysis.target.gaps"
    assert exc.context == {"dataset": "sales", "column": "sales", "rows": 3}


@pytest.mark.parametrize(
    ("rule", "a", "b"),
    [
        ("interpolate", [1.0, 2.0, 3.0, 4.0, 2.0], [10.0, 20.0, 30.0]),
        ("ffill", [1.0, 1.0, 1.0, 4.0, 2.0], [10.0, 10.0, 30.0]),
        ("zero", [1.0, 0.0, 0.0, 4.0, 2.0], [10.0, 0.0, 30.0]),
    ],
)
def test_target_gaps_are_filled_inside_each_series(
    rule: str, a: list[float], b: list[float]
) -> None:
    panel = join_tables(make_spec(target_gaps=rule), {"shop": _gappy_sales()})
    frame = panel.frame
    assert frame.loc[frame["unique_id"] == "a", "y"].tolist() == a
    assert frame.loc[frame["unique_id"] == "b", "y"].tolist() == b
    assert frame.loc[frame["unique_id"] == "a", "ds"].tolist() == [
        pd.Timestamp(t) for t in days("2024-01-01", 5)
    ]
    assert [(r.id, r.rows) for r in panel.repairs] == [("analysis.target.gaps", 3)]


def test_interpolation_never_reaches_across_series() -> None:
    # Series 'a' ends where 'b' starts: nothing of 'b' may leak into 'a' or vice versa, and
    # a series is never extended beyond its own first and last observation.
    d = days("2024-01-01", 4)
    tbl = table(
        [d[0], d[3], d[1], d[2]],
        store=["a", "a", "b", "b"],
        sales=[0.0, 3.0, 100.0, 50.0],
    )
    panel = join_tables(make_spec(target_gaps="interpolate"), {"shop": tbl})
    assert rows(panel) == [
        ("a", ts("2024-01-01"), 0.0),
        ("a", ts("2024-01-02"), 1.0),
        ("a", ts("2024-01-03"), 2.0),
        ("a", ts("2024-01-04"), 3.0),
        ("b", ts("2024-01-02"), 100.0),
        ("b", ts("2024-01-03"), 50.0),
    ]


def test_leading_and_trailing_null_targets_are_not_gaps() -> None:
    tbl = sales({"a": [None, 1.0, 2.0, None]})
    panel = join_tables(make_spec(), {"shop": tbl})
    assert rows(panel) == [("a", ts("2024-01-02"), 1.0), ("a", ts("2024-01-03"), 2.0)]


# --- covariate gaps -------------------------------------------------------------------------


def _late_weather() -> pa.Table:
    # starts on day 2, misses day 4; the target runs days 1..5
    d = days("2024-01-01", 5)
    return table([d[1], d[2], d[4]], temp=[20.0, 30.0, 50.0])


def test_a_covariate_missing_where_the_target_exists_is_refused() -> None:
    spec = make_spec(others=[WEATHER])
    exc = refusal(spec, {"shop": sales({"a": [1.0, 2.0, 3.0, 4.0, 5.0]}), "meteo": _late_weather()})
    assert exc.id == "analysis.covariate.gaps"
    assert exc.context == {"dataset": "weather", "column": "temp", "rows": 2}


def test_covariate_ffill_never_fills_backward_and_trims_the_target_start() -> None:
    spec = make_spec(others=[WEATHER], covariate_gaps="ffill")
    panel = join_tables(
        spec,
        {
            "shop": sales({"a": [1.0, 2.0, 3.0, 4.0, 5.0], "b": [6, 7, 8, 9, 10]}),
            "meteo": _late_weather(),
        },
    )
    expected = [
        (ts("2024-01-02"), 20.0),
        (ts("2024-01-03"), 30.0),
        (ts("2024-01-04"), 30.0),
        (ts("2024-01-05"), 50.0),
    ]
    for uid in ("a", "b"):
        part = panel.frame[panel.frame["unique_id"] == uid]
        assert list(zip(part["ds"], part["weather__temp"], strict=True)) == expected
    assert panel.frame.loc[panel.frame["unique_id"] == "a", "y"].tolist() == [2.0, 3.0, 4.0, 5.0]
    repairs = {r.id: r for r in panel.repairs}
    assert repairs["analysis.covariate.gaps"].rows == 4
    assert repairs["analysis.covariate.gaps"].dataset == "weather"
    assert repairs["analysis.covariate.trimmed"].rows == 2  # day 1 of each series
    assert panel.frame.index.equals(pd.RangeIndex(len(panel.frame)))


def test_covariate_zero_fills_every_missing_period() -> None:
    spec = make_spec(others=[WEATHER], covariate_gaps="zero")
    panel = join_tables(
        spec, {"shop": sales({"a": [1.0, 2.0, 3.0, 4.0, 5.0]}), "meteo": _late_weather()}
    )
    assert panel.frame["weather__temp"].tolist() == [0.0, 20.0, 30.0, 0.0, 50.0]
    assert "analysis.covariate.trimmed" not in {r.id for r in panel.repairs}


def test_a_series_whose_covariate_never_exists_is_trimmed_and_leaves_the_panel() -> None:
    spec = make_spec(on=("store",), others=[PROMO], covariate_gaps="ffill")
    promo = table(days("2024-01-01", 2), store=["a", "a"], spend=[1.0, 2.0])
    panel = join_tables(spec, {"shop": sales({"a": [1.0, 2.0], "b": [3.0, 4.0]}), "ads": promo})
    assert panel.frame["unique_id"].unique().tolist() == ["a"]
    assert panel.series_party == {"a": "shop"}
    assert panel.target_series() == ["a"]
    trimmed = [r for r in panel.repairs if r.id == "analysis.covariate.trimmed"]
    assert [r.rows for r in trimmed] == [2]


def test_covariates_that_never_coincide_are_no_overlap_naming_the_latest() -> None:
    stock = {"party": "inv", "name": "stock", "entities": ("store",), "values": ("units",)}
    spec = make_spec(on=("store",), others=[PROMO, stock], covariate_gaps="ffill")
    exc = refusal(
        spec,
        {
            "shop": sales({"a": [1.0, 2.0, 3.0], SECRET_ENTITY: [4.0, 5.0, 6.0]}),
            "ads": table(days("2024-01-01", 3), store=["a"] * 3, spend=[SECRET_VALUE] * 3),
            "inv": table(days("2024-01-02", 2), store=[SECRET_ENTITY] * 2, units=[1.0, 2.0]),
        },
    )
    assert exc.id == "analysis.join.no_overlap"
    assert exc.context == {"dataset": "stock", "column": "units"}
    assert "'stock'" in str(exc) and "'units'" in str(exc)
    assert SECRET_ENTITY not in str(exc) and "987654" not in str(exc)


def test_a_covariate_outside_the_targets_time_range_is_no_overlap() -> None:
    spec = make_spec(others=[WEATHER], covariate_gaps="ffill")
    exc = refusal(
        spec,
        {
            "shop": sales({"a": [1.0, 2.0]}),
            "meteo": table(days("2025-01-01", 2), temp=[SECRET_VALUE, 1.0]),
        },
    )
    assert exc.id == "analysis.join.no_overlap"
    assert exc.context["dataset"] == "weather"
    assert str(SECRET_VALUE) not in str(exc)


def test_a_covariate_that_starts_after_the_target_ends_is_no_overlap_even_with_ffill() -> None:
    # covariate at 2024-01-05 only: ffill never carries it back into 01-01..01-02
    spec = make_spec(others=[WEATHER], covariate_gaps="ffill")
    exc = refusal(
        spec,
        {"shop": sales({"a": [1.0, 2.0]}), "meteo": table(days("2024-01-05", 1), temp=[1.0])},
    )
    assert exc.id == "analysis.join.no_overlap"


def test_an_entity_covariate_for_other_entities_only_is_no_overlap() -> None:
    spec = make_spec(on=("store",), others=[PROMO], covariate_gaps="zero")
    promo = table(days("2024-01-01", 2), store=[SECRET_ENTITY] * 2, spend=[1.0, 2.0])
    exc = refusal(spec, {"shop": sales({"a": [1.0, 2.0]}), "ads": promo})
    assert exc.id == "analysis.join.no_overlap"
    assert exc.context["dataset"] == "promo"
    assert SECRET_ENTITY not in str(exc)


# --- target refusals and malformed input ----------------------------------------------------


def test_an_all_null_target_is_refused() -> None:
    exc = refusal(make_spec(), {"shop": sales({"a": [None, None]})})
    assert exc.id == "analysis.target.all_null"
    assert exc.context == {"dataset": "sales", "column": "sales"}


def test_a_constant_series_is_refused() -> None:
    exc = refusal(
        make_spec(), {"shop": sales({"a": [1.0, 2.0], SECRET_ENTITY: [SECRET_VALUE] * 3})}
    )
    assert exc.id == "analysis.target.constant"
    assert exc.context["rows"] == 1
    assert exc.context["column"] == "sales"


def test_null_times_are_refused() -> None:
    tbl = table(
        [dt.datetime(2024, 1, 1), None, dt.datetime(2024, 1, 3)],
        store=["a", "a", "a"],
        sales=[1.0, 2.0, 3.0],
    )
    exc = refusal(make_spec(), {"shop": tbl})
    assert exc.id == "analysis.join.null_time"
    assert exc.context == {"dataset": "sales", "column": "date", "rows": 1}


def test_null_entity_keys_are_refused() -> None:
    tbl = sales({"a": [1.0, 2.0, 3.0]})
    tbl = tbl.set_column(1, "store", pa.array(["a", None, None]))
    exc = refusal(make_spec(), {"shop": tbl})
    assert exc.id == "analysis.join.null_key"
    assert exc.context == {"dataset": "sales", "column": "store", "rows": 2}


@pytest.mark.parametrize("column", ["date", "temp"])
def test_a_missing_column_is_refused(column: str) -> None:
    weather = table(days("2024-01-01", 2), temp=[1.0, 2.0])
    weather = weather.drop_columns([column])
    exc = refusal(make_spec(others=[WEATHER]), {"shop": sales({"a": [1.0, 2.0]}), "meteo": weather})
    assert exc.id == "analysis.join.missing_column"
    assert exc.context["dataset"] == "weather"
    assert exc.context["column"] == column


def test_a_time_column_that_is_no_time_is_refused() -> None:
    weather = pa.table({"date": ["2024-01-01", "2024-01-02"], "temp": [1.0, 2.0]})
    exc = refusal(make_spec(others=[WEATHER]), {"shop": sales({"a": [1.0, 2.0]}), "meteo": weather})
    assert exc.id == "analysis.join.time_type"
    assert exc.context == {"dataset": "weather", "column": "date"}


def test_a_missing_party_table_is_refused() -> None:
    exc = refusal(make_spec(others=[WEATHER]), {"shop": sales({"a": [1.0, 2.0]})})
    assert exc.id == "analysis.intake.missing_party"
    assert exc.context["parties"] == ["meteo"]
    assert "'weather'" in str(exc)


def test_a_constant_or_infinite_target_names_its_own_dataset() -> None:
    spec = make_spec(target={"name": "till"})
    exc = refusal(spec, {"shop": sales({"a": [1.0, 2.0], "b": [3.0, 3.0]})})
    assert exc.id == "analysis.target.constant"
    assert exc.context == {"dataset": "till", "column": "sales", "rows": 1}
    assert "'till'" in str(exc) and "'sales'" in str(exc)
    exc = refusal(spec, {"shop": sales({"a": [1.0, float("inf"), 2.0]})})
    assert exc.id == "analysis.target.non_finite"
    assert exc.context == {"dataset": "till", "column": "sales", "rows": 1}
    assert "'till'" in str(exc) and "inf" not in str(exc).replace("infinite", "")


def test_a_constant_series_of_another_party_names_that_partys_dataset() -> None:
    exc = refusal(
        _horizontal(),
        {
            "shop": sales({"a": [1.0, 2.0]}, price=[9.0, 9.5]),
            "rival": sales({"a": [5.0, 5.0]}, price=[1.0, 2.0]),
        },
    )
    assert exc.id == "analysis.target.constant"
    assert exc.context["dataset"] == "rival"
    assert "'rival'" in str(exc)


def test_times_beyond_what_the_runtime_can_hold_are_refused_without_the_value() -> None:
    tbl = table(
        [dt.datetime(2024, 1, 1), dt.datetime(2999, 1, 2), dt.datetime(1500, 3, 4)],
        store=["a"] * 3,
        sales=[1.0, 2.0, 3.0],
    )
    exc = refusal(make_spec(), {"shop": tbl})
    assert exc.id == "analysis.join.time_range"
    assert exc.context == {"dataset": "sales", "column": "date"}
    assert "2999" not in str(exc) and "1500" not in str(exc)
    dates = table([dt.date(2024, 1, 1), dt.date(9999, 12, 31)], pa.date32(), sales=[1.0, 2.0])
    exc = refusal(make_spec(target={"entities": ()}), {"shop": dates})
    assert exc.id == "analysis.join.time_range"
    assert "9999" not in str(exc)


def test_dates_are_days_that_no_time_zone_moves() -> None:
    # A date names its day: reading naive times in Berlin must not turn 2 January into
    # 1 January 23:00 UTC (off the daily grid, or a day early once floored).
    spec = make_spec(others=[WEATHER], naive_timezone="Europe/Berlin", off_grid="floor")
    panel = join_tables(
        spec,
        {
            "shop": table(
                [dt.date(2024, 1, 2), dt.date(2024, 1, 3)],
                pa.date32(),
                store=["a", "a"],
                sales=[1.0, 2.0],
            ),
            "meteo": table(
                days("2024-01-01", 4), pa.timestamp("s", tz="UTC"), temp=[1.0, 2.0, 3.0, 4.0]
            ),
        },
    )
    assert rows(panel, "weather__temp") == [
        ("a", ts("2024-01-02"), 1.0, 2.0),
        ("a", ts("2024-01-03"), 2.0, 3.0),
    ]
    assert panel.repairs == []


# --- refusals never carry data values -------------------------------------------------------

Refusing = Callable[[], tuple[TaskSpec, dict[str, pa.Table]]]


def _secret_sales(**kw: Any) -> pa.Table:
    return sales({SECRET_ENTITY: [SECRET_VALUE, 1.0, 2.0]}, **kw)


def _secret_weather(times: Sequence[Any] | None = None) -> pa.Table:
    return table(times or days("2024-01-01", 3), temp=[SECRET_VALUE] * 3)


CASES: dict[str, Refusing] = {
    "analysis.join.off_grid": lambda: (
        make_spec(others=[WEATHER]),
        {"shop": _secret_sales(), "meteo": _secret_weather([dt.datetime(2024, 1, 1, 7)] * 3)},
    ),
    "analysis.join.duplicate_keys": lambda: (
        make_spec(others=[WEATHER]),
        {"shop": _secret_sales(), "meteo": _secret_weather([dt.datetime(2024, 1, 1)] * 3)},
    ),
    "analysis.target.gaps": lambda: (
        make_spec(),
        {"shop": sales({SECRET_ENTITY: [SECRET_VALUE, None, 2.0]})},
    ),
    "analysis.covariate.gaps": lambda: (
        make_spec(others=[WEATHER]),
        {"shop": _secret_sales(), "meteo": _secret_weather(days("2024-01-02", 3))},
    ),
    "analysis.join.no_overlap": lambda: (
        make_spec(others=[WEATHER]),
        {"shop": _secret_sales(), "meteo": _secret_weather(days("2023-01-01", 3))},
    ),
    "analysis.target.constant": lambda: (
        make_spec(),
        {"shop": sales({SECRET_ENTITY: [SECRET_VALUE] * 3})},
    ),
    "analysis.join.null_time": lambda: (
        make_spec(),
        {
            "shop": table(
                [None, dt.datetime(2024, 1, 1)],
                store=[SECRET_ENTITY] * 2,
                sales=[SECRET_VALUE, 1.0],
            )
        },
    ),
    "analysis.join.null_key": lambda: (
        make_spec(),
        {
            "shop": table(
                days("2024-01-01", 2), store=[SECRET_ENTITY, None], sales=[SECRET_VALUE, 1.0]
            )
        },
    ),
    "analysis.join.timezone_mix": lambda: (
        make_spec(freq="h", others=[WEATHER]),
        {
            "shop": _secret_sales(freq="h"),
            "meteo": table(
                days("2024-01-01", 3, "h"), pa.timestamp("s", tz="UTC"), temp=[SECRET_VALUE] * 3
            ),
        },
    ),
    "analysis.join.not_local_midnight": lambda: (
        make_spec(others=[WEATHER]),
        {
            "shop": _secret_sales(),
            "meteo": table(
                days("2024-01-01 09:00", 3), pa.timestamp("s", tz="UTC"), temp=[SECRET_VALUE] * 3
            ),
        },
    ),
    "analysis.join.time_range": lambda: (
        make_spec(),
        {"shop": _secret_sales().set_column(0, "date", pa.array([dt.datetime(2987, 6, 5)] * 3))},
    ),
    "analysis.target.non_finite": lambda: (
        make_spec(),
        {"shop": sales({SECRET_ENTITY: [SECRET_VALUE, float("inf"), 2.0]})},
    ),
    "analysis.join.time_ambiguous": lambda: (
        make_spec(freq="h", others=[WEATHER], naive_timezone="Europe/Berlin"),
        {
            "shop": sales(
                {SECRET_ENTITY: [SECRET_VALUE, 1.0, 2.0]}, start="2024-03-31 00:00", freq="h"
            ),
            "meteo": table(
                days("2024-03-31", 3, "h"), pa.timestamp("s", tz="UTC"), temp=[SECRET_VALUE] * 3
            ),
        },
    ),
}


@pytest.mark.parametrize("expected", sorted(CASES))
def test_refusals_name_dataset_and_column_but_no_value(expected: str) -> None:
    spec, tables = CASES[expected]()
    exc = refusal(spec, tables)
    assert exc.id == expected
    text = str(exc)
    dataset, column = exc.context.get("dataset"), exc.context.get("column")
    if expected == "analysis.join.timezone_mix":  # names the datasets on either side
        assert "'sales' (column 'date')" in text and "'weather' (column 'date')" in text
    else:
        assert dataset is not None and column is not None
        assert str(dataset) in text
        assert str(column) in text
    for secret in (SECRET_ENTITY, str(SECRET_VALUE), "987654", "98765"):
        assert secret not in text
        assert secret not in repr(exc.context)


# --- properties -----------------------------------------------------------------------------


@st.composite
def _daily_panels(
    draw: st.DrawFn,
) -> tuple[pa.Table, pa.Table, list[tuple[str, pd.Timestamp, float]]]:
    """Regular daily series with rows missing at random, their observations, and a weather
    table that covers every day; the rows of both tables in a random order."""
    start = pd.Timestamp("2024-01-01") + pd.Timedelta(days=draw(st.integers(0, 400)))
    observed: list[tuple[str, pd.Timestamp, float]] = []
    for store in draw(st.lists(st.sampled_from("abcde"), min_size=1, max_size=3, unique=True)):
        values = draw(
            st.lists(
                st.floats(-1e6, 1e6, allow_nan=False, width=32),
                min_size=2,
                max_size=20,
                unique=True,
            )
        )
        offset = draw(st.integers(0, 5))
        keep = draw(st.lists(st.booleans(), min_size=len(values), max_size=len(values)))
        kept = [i for i, k in enumerate(keep) if k]
        if len(kept) < 2:
            kept = [0, len(values) - 1]
        for i in kept:
            observed.append((store, start + pd.Timedelta(days=offset + i), float(values[i])))
    order = draw(st.permutations(range(len(observed))))
    shuffled = [observed[i] for i in order]
    target = table(
        [t.to_pydatetime() for _, t, _ in shuffled],
        store=[s for s, _, _ in shuffled],
        sales=pa.array([y for _, _, y in shuffled], type=pa.float64()),
    )
    span = pd.date_range(start, start + pd.Timedelta(days=30), freq="D")
    weather_order = draw(st.permutations(range(len(span))))
    weather = table(
        [span[i].to_pydatetime() for i in weather_order],
        temp=[float(i) for i in weather_order],
    )
    return target, weather, observed


_PROPERTY = settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@_PROPERTY
@given(_daily_panels())
def test_gap_filled_series_are_complete_and_keep_every_observation(
    case: tuple[pa.Table, pa.Table, list[tuple[str, pd.Timestamp, float]]],
) -> None:
    target, weather, observed = case
    spec = make_spec(others=[WEATHER], target_gaps="ffill")
    frame = join_tables(spec, {"shop": target, "meteo": weather}).frame
    assert not frame.duplicated(["unique_id", "ds"]).any()
    assert frame.equals(frame.sort_values(["unique_id", "ds"]).reset_index(drop=True))
    for uid, part in frame.groupby("unique_id"):
        mine = [t for s, t, _ in observed if s == uid]
        expected = pd.date_range(min(mine), max(mine), freq="D")
        assert part["ds"].tolist() == expected.tolist()
    by_key = {(u, t): y for u, t, y in frame[["unique_id", "ds", "y"]].itertuples(index=False)}
    for store, t, y in observed:
        assert by_key[(store, t)] == y
    assert frame["y"].notna().all()
    first = pd.Timestamp(weather.column("date")[0].as_py())
    start = first - pd.Timedelta(days=int(weather.column("temp")[0].as_py()))
    assert (frame["weather__temp"] == (frame["ds"] - start).dt.days.astype(float)).all()


@_PROPERTY
@given(_daily_panels(), st.randoms(use_true_random=False))
def test_the_order_of_the_input_rows_does_not_matter(
    case: tuple[pa.Table, pa.Table, list[tuple[str, pd.Timestamp, float]]],
    rng: Any,
) -> None:
    target, weather, _ = case
    spec = make_spec(others=[WEATHER], target_gaps="ffill")
    first = join_tables(spec, {"shop": target, "meteo": weather})
    order = list(range(target.num_rows))
    rng.shuffle(order)
    weather_order = list(range(weather.num_rows))
    rng.shuffle(weather_order)
    second = join_tables(spec, {"shop": target.take(order), "meteo": weather.take(weather_order)})
    pd.testing.assert_frame_equal(first.frame, second.frame)
    assert first.series_party == second.series_party
    assert first.repairs == second.repairs
