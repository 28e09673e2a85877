"""The task's model families, from the libraries made for the field (Nixtla's statsforecast and
mlforecast with LightGBM): configured from a :class:`Recipe`, back-tested and fitted.

Each family is an object in the registry (:mod:`._registry`; one file each:
:mod:`._lightgbm`, :mod:`._statsforecast`); the functions here are what the runtimes call,
whatever the family. Every family returns statsforecast's cross-validation frame
(``unique_id``, ``ds``, ``cutoff``, ``y``, one column per model, ``-lo-``/``-hi-`` interval
columns), so every model is scored on the same folds by the same code.
"""

from __future__ import annotations

import pandas as pd

from ._common import Candidate, Fitted, quiet_libraries
from ._features import DS, ID, Recipe
from ._grid import Grid
from ._registry import family_of

LIGHTGBM = "mlforecast-lightgbm"


def uses_covariates(family: str) -> bool:
    return family_of(family).uses_covariates


def is_global(family: str) -> bool:
    """One model across all series (others' series can help), as opposed to one per series."""
    return family_of(family).is_global


def min_train(recipe: Recipe, intervals: bool) -> int:
    """Periods of history a family needs before its first forecast origin."""
    return family_of(recipe.family).min_train(recipe, intervals)


def cross_validate(
    frame: pd.DataFrame,
    candidate: Candidate,
    grid: Grid,
    *,
    windows: int,
    step: int,
    threads: int | None = None,
) -> pd.DataFrame:
    """Rolling-origin back-test of one candidate; statsforecast's long format."""
    family = family_of(candidate.recipe.family)
    data = frame if candidate.series is None else frame[frame[ID].isin(candidate.series)]
    with quiet_libraries():
        cv = family.cross_validate(
            data, candidate, grid, windows=windows, step=step, threads=threads
        )
    return pd.DataFrame(cv).reset_index(drop=True)


def fit(
    frame: pd.DataFrame, recipe: Recipe, grid: Grid, name: str, threads: int | None = None
) -> Fitted:
    """The released model: the family fitted on all of the joined history."""
    with quiet_libraries():
        return family_of(recipe.family).fit(frame, recipe, grid, name, threads)


def holdout_error(cv: pd.DataFrame, name: str) -> float:
    """A trial's mean absolute error on its holdout horizon."""
    return float((cv[name] - cv["y"]).abs().mean())


def choose_differences(
    frame: pd.DataFrame,
    recipe: Recipe,
    grid: Grid,
    first_cutoffs: pd.Series,
    threads: int | None = None,
) -> Recipe:
    """The family's choices made on the history before the first back-test window (for
    LightGBM: whether differencing the target helps), so no choice sees a scored period;
    the trials one after the other (the analysis runs them as jobs of its pool)."""
    family = family_of(recipe.family)
    trials = family.trials(recipe)
    if not trials:
        return recipe
    early = frame[frame[DS] <= frame[ID].map(first_cutoffs)].reset_index(drop=True)
    errors = [
        holdout_error(
            cross_validate(
                early,
                Candidate("trial", trial, intervals=False),
                grid,
                windows=1,
                step=1,
                threads=threads,
            ),
            "trial",
        )
        for trial in trials
    ]
    return family.choose(recipe, trials, errors)
