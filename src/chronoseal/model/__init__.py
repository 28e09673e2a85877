"""The forecasting families both trusted runtimes share, and the sealed model bundle.

Families come from the libraries made for the field (Nixtla's statsforecast, mlforecast with
LightGBM); a :class:`Recipe` (plain data, from the task spec) says what each model sees. The
analysis runtime back-tests and fits them and :func:`seal`\\ s the result; the prediction
runtime :func:`open_bundle`\\ s it only after the bundle hashes to the on-chain commitment.
The release format (what each party receives, checkable against the chain) lives here too.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from chronoseal._lazy import lazy_exports

# The release format is light and is all a gateway or a party's agent needs; the families,
# features and grid load pandas and the forecasting libraries on first use.
from ._release import ReleaseSet, document_hash, manifest_digest, verify_release

if TYPE_CHECKING:
    from ._bundle import LoadedModel, commitment, open_bundle, seal
    from ._common import Candidate, Fitted, quiet_libraries
    from ._cores import available_cores, cgroup_cpu_limit
    from ._families import (
        LIGHTGBM,
        choose_differences,
        cross_validate,
        fit,
        holdout_error,
        is_global,
        min_train,
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
    from ._grid import (
        Grid,
        LocalTimeError,
        TimeRangeError,
        as_float,
        is_time,
        to_utc,
    )
    from ._registry import Family, families, family_of
    from ._zones import ZoneTimeError, apply_zone_rule, is_aware, is_date_grid

__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "_bundle": ["LoadedModel", "commitment", "open_bundle", "seal"],
        "_cores": ["available_cores", "cgroup_cpu_limit"],
        "_common": ["Candidate", "Fitted", "quiet_libraries"],
        "_families": [
            "LIGHTGBM",
            "choose_differences",
            "cross_validate",
            "fit",
            "holdout_error",
            "is_global",
            "min_train",
            "uses_covariates",
        ],
        "_features": [
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
        "_grid": [
            "Grid",
            "LocalTimeError",
            "TimeRangeError",
            "as_float",
            "is_time",
            "to_utc",
        ],
        "_registry": ["Family", "families", "family_of"],
        "_zones": ["ZoneTimeError", "apply_zone_rule", "is_aware", "is_date_grid"],
    },
)

__all__ = [
    "DS",
    "ID",
    "LIGHTGBM",
    "Candidate",
    "Family",
    "Fitted",
    "Grid",
    "HolidayFeature",
    "LoadedModel",
    "LocalTimeError",
    "Recipe",
    "ReleaseSet",
    "TimeRangeError",
    "Y",
    "ZoneTimeError",
    "apply_zone_rule",
    "as_float",
    "available_cores",
    "cgroup_cpu_limit",
    "choose_differences",
    "combine_repeated",
    "commitment",
    "cross_validate",
    "document_hash",
    "families",
    "family_of",
    "fit",
    "holdout_error",
    "is_aware",
    "is_date_grid",
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
