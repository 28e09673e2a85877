"""The sealed model bundle: what is committed on chain is exactly what forecasts after the
hand-over, and a bundle that does not hash to the commitment is never parsed, let alone
unpickled."""

from __future__ import annotations

import hashlib
import pickle

import numpy as np
import pandas as pd
import pytest

from chronoseal.errors import ModelError
from chronoseal.model import Grid, Recipe, commitment, fit, open_bundle, seal

TASK = hashlib.sha256(b"task").digest()


def _frame(n: int = 200) -> pd.DataFrame:
    rng = np.random.default_rng(1)
    rows = []
    for uid, level in (("a", 20.0), ("b", 50.0)):
        ds = pd.date_range("2021-01-01", periods=n, freq="D")
        y = level + 3 * np.sin(np.arange(n) * 2 * np.pi / 7) + rng.normal(scale=0.3, size=n)
        temp = rng.normal(size=n)
        rows.append(pd.DataFrame({"unique_id": uid, "ds": ds, "y": y, "temp": temp, "promo": 0.0}))
    return pd.concat(rows, ignore_index=True)


def _recipe(family: str) -> Recipe:
    return Recipe(
        family=family,
        freq="D",
        horizon=7,
        season_length=7,
        seasonalities=[],
        level=80,
        lags=[1, 7],
        rolling=[(1, 7)],
        expanding=True,
        calendar=["dayofweek"],
        holidays="US",
        future_known=["promo"],
        past_only={"temp": [7, 14]},
    )


def _future(frame: pd.DataFrame, h: int) -> pd.DataFrame:
    last = frame["ds"].max()
    ds = pd.date_range(last, periods=h + 1, freq="D")[1:]
    return pd.DataFrame(
        [(u, t, 1.0) for u in ("a", "b") for t in ds], columns=["unique_id", "ds", "promo"]
    )


@pytest.mark.parametrize(
    "family", ["mlforecast-lightgbm", "statsforecast-autoarima", "seasonal-naive"]
)
def test_a_reopened_bundle_forecasts_exactly_what_the_fitted_model_did(family: str) -> None:
    frame = _frame()
    fitted = fit(frame, _recipe(family), Grid.parse("D"), "joint")
    bundle = seal(fitted, task_id=TASK, name="joint")
    assert seal(fitted, task_id=TASK, name="joint") == bundle  # deterministic bytes
    loaded = open_bundle(bundle, commitment(bundle))
    assert loaded.series == ["a", "b"]
    out = loaded.predict(7, _future(frame, 7), level=80)
    assert list(out.columns[:3]) == ["unique_id", "ds", "joint"]
    assert {"joint-lo-80", "joint-hi-80"} <= set(out.columns)
    assert len(out) == 14 and out["joint"].notna().all()
    if family == "mlforecast-lightgbm":
        from chronoseal.model._bundle import _future_inputs

        x_df = _future_inputs(
            fitted.recipe, fitted.train, _future(frame, 7), 7, Grid.parse("D"), fitted.past
        )
        direct = fitted.model.predict(7, X_df=x_df, level=[80])
        np.testing.assert_allclose(out["joint"], direct["joint"])
        np.testing.assert_allclose(out["joint-hi-80"], direct["joint-hi-80"])


def test_a_bundle_that_does_not_match_its_commitment_is_never_unpickled(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fitted = fit(_frame(), _recipe("statsforecast-autoarima"), Grid.parse("D"), "joint")
    bundle = seal(fitted, task_id=TASK, name="joint")
    expected = commitment(bundle)
    calls: list[bytes] = []
    monkeypatch.setattr(pickle, "loads", lambda data: calls.append(data))
    tampered = bytearray(bundle)
    tampered[-10] ^= 1
    with pytest.raises(ModelError) as info:
        open_bundle(bytes(tampered), expected)
    assert info.value.id == "model.bundle.commitment_mismatch"
    with pytest.raises(ModelError):
        open_bundle(bundle + b"\0", expected)
    assert calls == []


@pytest.mark.parametrize(
    "garbage",
    [b"", b"chronoseal-model/1\n", b"chronoseal-model/1\n\xff\xff\xff\xff", b"PK\x03\x04zip"],
)
def test_malformed_bundles_are_refused_with_an_id(garbage: bytes) -> None:
    with pytest.raises(ModelError) as info:
        open_bundle(garbage, commitment(garbage))
    assert info.value.id == "model.bundle.malformed"


def test_forecasting_without_the_future_known_covariates_is_refused() -> None:
    fitted = fit(_frame(), _recipe("mlforecast-lightgbm"), Grid.parse("D"), "joint")
    bundle = seal(fitted, task_id=TASK, name="joint")
    with pytest.raises(ModelError) as info:
        open_bundle(bundle, commitment(bundle)).predict(7)
    assert info.value.id == "model.predict.missing_future"


@pytest.mark.parametrize(
    "family",
    [
        "seasonal-naive",
        "statsforecast-autoets",
        "statsforecast-autoarima",
        "statsforecast-mstl",
        "mlforecast-lightgbm",
    ],
)
def test_newer_observations_move_the_forecast_origin_without_refitting(family: str) -> None:
    frame = _frame()
    cut = frame.groupby("unique_id").head(190).reset_index(drop=True)
    newer = frame.groupby("unique_id").tail(10).reset_index(drop=True)
    fitted = fit(cut, _recipe(family), Grid.parse("D"), "joint")
    bundle = seal(fitted, task_id=TASK, name="joint")
    loaded = open_bundle(bundle, commitment(bundle))
    before = loaded.predict(7, _future(cut, 7), level=80)
    # The same history again: the fitted model run forward over it forecasts what it did.
    same = loaded.with_observations(newer.iloc[0:0]).predict(7, _future(cut, 7), level=80)
    np.testing.assert_allclose(same["joint"], before["joint"], rtol=1e-6)
    extended = loaded.with_observations(newer)
    out = extended.predict(7, _future(frame, 7), level=80)
    assert out["ds"].min() == frame["ds"].max() + pd.Timedelta(days=1)
    assert len(out) == 14 and out[["joint", "joint-lo-80", "joint-hi-80"]].notna().all(axis=None)
    assert (out["joint-lo-80"] <= out["joint-hi-80"]).all()
    # The opened model is unchanged: another request without observations sees no new rows.
    again = loaded.predict(7, _future(cut, 7), level=80)
    pd.testing.assert_frame_equal(again, before)
    if family == "seasonal-naive":
        for uid in ("a", "b"):
            last_season = newer[newer["unique_id"] == uid]["y"].to_numpy()[-7:]
            np.testing.assert_allclose(out[out["unique_id"] == uid]["joint"], last_season)
