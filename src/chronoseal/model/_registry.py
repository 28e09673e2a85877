"""Model families as objects: what a family can do, and the registry that names them.

A family is one file (``_lightgbm.py``, ``_statsforecast.py``) implementing :class:`Family`
and registering itself here; the back-test, the fit, the sealed bundle and the prediction
runtime ask the registry, never compare family names. The spec's vocabulary of families
(:data:`chronoseal.spec.MODEL_FAMILIES`, what a party reviews) and the registry must agree:
``tests/model/test_registry.py`` checks it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Protocol

from chronoseal.errors import ModelError

if TYPE_CHECKING:
    import pandas as pd

    from ._common import Candidate, Fitted, Part
    from ._features import Recipe
    from ._grid import Grid


class Family(Protocol):
    """One model family: how it back-tests, fits, seals, loads and forecasts."""

    name: str
    #: Takes covariates (other parties' data can change its forecasts in a vertical join).
    uses_covariates: bool
    #: One model across all series (others' series can help), not one per series.
    is_global: bool

    def min_train(self, recipe: Recipe, intervals: bool) -> int:
        """Periods of history needed before its first forecast origin."""
        ...

    def trials(self, recipe: Recipe) -> list[Recipe]:
        """Variants of the recipe to try on the history before the first back-test window
        (none: the recipe is used as it is)."""
        ...

    def choose(self, recipe: Recipe, trials: list[Recipe], errors: list[float]) -> Recipe:
        """The recipe to back-test, from each trial's holdout mean absolute error."""
        ...

    def cross_validate(
        self,
        data: pd.DataFrame,
        candidate: Candidate,
        grid: Grid,
        *,
        windows: int,
        step: int,
        threads: int | None,
    ) -> pd.DataFrame:
        """Rolling-origin back-test in statsforecast's long format."""
        ...

    def fit(
        self, frame: pd.DataFrame, recipe: Recipe, grid: Grid, name: str, threads: int | None
    ) -> Fitted:
        """The family fitted on all of the joined history."""
        ...

    def seal(self, fitted: Fitted, name: str) -> tuple[list[Part], dict[str, Any] | None]:
        """The bundle parts of a fitted model, and its interval settings (if any)."""
        ...

    def load(
        self,
        manifest: Mapping[str, Any],
        parts: Mapping[str, bytes],
        history: pd.DataFrame,
        recipe: Recipe,
        grid: Grid,
    ) -> Any:
        """The library object from a bundle whose commitment was checked."""
        ...

    def predict(
        self,
        model: Any,
        history: pd.DataFrame,
        name: str,
        h: int,
        x_df: pd.DataFrame | None,
        level: int | None,
        grid: Grid,
        forward: bool,
    ) -> pd.DataFrame:
        """``h`` periods per series; ``forward``: the fitted model runs over ``history``,
        newer than its fit, without refitting."""
        ...

    def extend(
        self, model: Any, history: pd.DataFrame, recipe: Recipe, grid: Grid, name: str
    ) -> tuple[Any, bool]:
        """The model over a longer ``history`` (nothing refit), and whether later
        predictions must run it forward."""
        ...

    def model_inputs(self, frame: pd.DataFrame, recipe: Recipe, grid: Grid) -> pd.DataFrame:
        """The covariate columns the library reads from a frame (holidays as columns for a
        library that has no calendar features of its own)."""
        ...

    def future_inputs_needed(self, recipe: Recipe) -> bool:
        """Whether a forecast of this recipe reads covariates for the forecast periods."""
        ...


_REGISTRY: dict[str, Family] = {}


def register(family: Family) -> Family:
    if family.name in _REGISTRY:
        raise ValueError(f"model family {family.name!r} is registered twice")
    _REGISTRY[family.name] = family
    return family


def family_of(name: str) -> Family:
    """The registered family called ``name``; unknown names are refused."""
    _load_builtin()
    family = _REGISTRY.get(name)
    if family is None:
        known = ", ".join(sorted(_REGISTRY))
        raise ModelError(
            f"no model family {name!r} is implemented (known: {known})",
            id="model.family.unknown",
        )
    return family


def families() -> list[str]:
    _load_builtin()
    return sorted(_REGISTRY)


def _load_builtin() -> None:
    if not _REGISTRY:
        # Here, not at the top: each loads its library (LightGBM, statsforecast).
        from . import _lightgbm, _statsforecast

        for family in (_lightgbm.FAMILY, *_statsforecast.FAMILIES):
            register(family)
