"""The value of each party: exact Shapley values satisfy the axioms a party can check by hand
(efficiency, symmetry, null player, additivity), and the metrics come from utilsforecast on
the same folds for every model."""

from __future__ import annotations

import math
from itertools import combinations

import numpy as np
import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from chronoseal.analysis import score, shapley

PLAYERS = ["a", "b", "c", "d"]


def _games(n: int) -> st.SearchStrategy[dict[frozenset[str], float]]:
    players = PLAYERS[:n]
    coalitions = [frozenset(c) for k in range(n + 1) for c in combinations(players, k)]
    values = st.lists(
        st.floats(-10, 10, allow_nan=False), min_size=len(coalitions), max_size=len(coalitions)
    )
    return values.map(
        lambda v: {c: (0.0 if not c else x) for c, x in zip(coalitions, v, strict=True)}
    )


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 4).flatmap(lambda n: st.tuples(st.just(n), _games(n))))
def test_shapley_values_add_up_to_the_grand_coalition(case: tuple[int, dict]) -> None:
    n, game = case
    players = PLAYERS[:n]
    phi = shapley(players, lambda s: game[s])
    assert math.isclose(sum(phi.values()), game[frozenset(players)], abs_tol=1e-9)


@settings(max_examples=40, deadline=None)
@given(_games(3))
def test_a_party_that_never_changes_a_coalition_gets_nothing(game: dict) -> None:
    # make "c" a null player: v(S + c) = v(S)
    for s in list(game):
        if "c" in s:
            game[s] = game[s - {"c"}]
    phi = shapley(["a", "b", "c"], lambda s: game[s])
    assert math.isclose(phi["c"], 0.0, abs_tol=1e-9)


@settings(max_examples=40, deadline=None)
@given(_games(3), _games(3))
def test_shapley_is_additive(g1: dict, g2: dict) -> None:
    both = shapley(["a", "b", "c"], lambda s: g1[s] + g2[s])
    one = shapley(["a", "b", "c"], lambda s: g1[s])
    two = shapley(["a", "b", "c"], lambda s: g2[s])
    for p in both:
        assert math.isclose(both[p], one[p] + two[p], abs_tol=1e-9)


def test_symmetric_parties_get_the_same_value() -> None:
    game = {
        frozenset(): 0.0,
        frozenset("a"): 1.0,
        frozenset("b"): 1.0,
        frozenset("ab"): 3.0,
    }
    phi = shapley(["a", "b"], lambda s: game[s])
    assert phi == {"a": 1.5, "b": 1.5}


def _cv() -> tuple[pd.DataFrame, pd.DataFrame]:
    ds = pd.date_range("2024-01-01", periods=30, freq="D")
    y = np.tile([10.0, 12.0, 14.0], 10)
    train = pd.DataFrame({"unique_id": "s", "ds": ds[:24], "y": y[:24]})
    cv = pd.DataFrame(
        {
            "unique_id": "s",
            "ds": ds[24:],
            "cutoff": [ds[23]] * 3 + [ds[26]] * 3,
            "y": y[24:],
            "m": y[24:] + 1.0,
            "m-lo-80": y[24:] - 0.5,
            "m-hi-80": y[24:] + np.array([0.5, 0.5, -2, 0.5, 0.5, 0.5]),
        }
    )
    return cv, train


def test_metrics_are_utilsforecast_losses_per_window_then_averaged() -> None:
    cv, train = _cv()
    out = score(cv, ["m"], train, metrics=["mae", "mase", "coverage"], season_length=3, level=80)[
        "m"
    ]
    assert out["mae"] == 1.0
    # the in-sample seasonal-naive error of a period-3 series is 0: MASE is undefined, so it
    # is reported as missing rather than as infinity
    assert out["mase"] is None
    assert math.isclose(out["coverage"], (2 / 3 + 1) / 2)
