"""The forecasting families both trusted runtimes share, and the sealed model bundle.

Families come from the libraries made for the field (Nixtla's statsforecast, mlforecast with
LightGBM); a :class:`Recipe` (plain data, from the task spec) says what each model sees. The
analysis runtime back-tests and fits them and :func:`seal`\\ s the result; the prediction
runtime :func:`open_bundle`\\ s it only after the bundle hashes to the on-chain commitment.
The release format (what each party receives, checkable against the chain) lives here too.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

# The release format is light and is all a gateway or a party's agent needs; the forecasting
# families pull in pandas, LightGBM, statsforecast and their BLAS thread pools (seconds of
# start-up, and spinning threads beside a gateway's stream), so they load on first use.
from ._release import ReleaseSet, document_hash, manifest_digest, verify_release

if TYPE_CHECKING:
    from ._bundle import LoadedModel, commitment, open_bundle, seal
    from ._families import (
        LIGHTGBM,
        Candidate,
        Fitted,
        choose_differences,
        cross_validate,
        fit,
        is_global,
        min_train,
        quiet_libraries,
        uses_covariates,
    )
    from ._features import (
        DS,
        ID,
        HolidayFeature,
        Recipe,
        Y,
        combine_repeated,
        model_frame,
        past_only_lags,
        series_ids,
    )
    from ._grid import Grid, as_float, is_aware, is_time, to_utc

_LAZY = {
    **dict.fromkeys(["LoadedModel", "commitment", "open_bundle", "seal"], "_bundle"),
    **dict.fromkeys(
        [
            "LIGHTGBM",
            "Candidate",
            "Fitted",
            "choose_differences",
            "cross_validate",
            "fit",
            "is_global",
            "min_train",
            "quiet_libraries",
            "uses_covariates",
        ],
        "_families",
    ),
    **dict.fromkeys(
        [
            "DS",
            "ID",
            "HolidayFeature",
            "Recipe",
            "Y",
            "combine_repeated",
            "model_frame",
            "past_only_lags",
            "series_ids",
        ],
        "_features",
    ),
    **dict.fromkeys(["Grid", "as_float", "is_aware", "is_time", "to_utc"], "_grid"),
}


def __getattr__(name: str) -> Any:
    """PEP 562: import the submodule that defines ``name`` when it is first asked for."""
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


__all__ = [
    "DS",
    "ID",
    "LIGHTGBM",
    "Candidate",
    "Fitted",
    "Grid",
    "HolidayFeature",
    "LoadedModel",
    "Recipe",
    "ReleaseSet",
    "Y",
    "as_float",
    "choose_differences",
    "combine_repeated",
    "commitment",
    "cross_validate",
    "document_hash",
    "fit",
    "is_aware",
    "is_global",
    "is_time",
    "manifest_digest",
    "min_train",
    "model_frame",
    "open_bundle",
    "past_only_lags",
    "quiet_libraries",
    "seal",
    "series_ids",
    "to_utc",
    "uses_covariates",
    "verify_release",
]
