"""The desensitization policy as the parties approve it: the schema and its validation.

The transforms themselves live in :mod:`chronoseal.privacy`; the spec only says, for every
column a dataset exposes, what may happen to it. Default deny: a column the policy does not
name is never read, and a declared column the policy leaves uncovered is an error.
"""

from __future__ import annotations

import math
import re
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

_FREQ = re.compile(r"^(?:[1-9][0-9]*)?(?:s|min|h|D|W|MS|M|QS|Q|YS|Y)$")


def is_frequency(value: str) -> bool:
    """Accept the pandas-style aliases statsforecast/mlforecast users already write."""
    return bool(_FREQ.fullmatch(value))


class _Strict(BaseModel):
    # strict: "14", 14.0 or true is not a horizon; "yes" is not a boolean
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class Keep(_Strict):
    action: Literal["keep"]


class Drop(_Strict):
    action: Literal["drop"]


class Pseudonymize(_Strict):
    """HMAC-SHA256 under a per-task key created inside the analysis runtime."""

    action: Literal["pseudonymize"]


#: Bounds every numeric parameter to what its transform can honour: outside them a rule is a
#: silent no-op (rounding to 10**400, noise of epsilon 1e9) or destroys the data (NaN noise).
MAX_TEXT_KEEP = 1024
ROUND_DIGITS = 15
MULTIPLE_MIN, MULTIPLE_MAX = 1e-12, 1e15
SENSITIVITY_MIN, SENSITIVITY_MAX = 1e-9, 1e15
EPSILON_MIN, EPSILON_MAX = 1e-3, 10.0
DELTA_MIN, DELTA_MAX = 1e-12, 1e-2


class Mask(_Strict):
    action: Literal["mask"]
    keep_prefix: int = Field(default=0, ge=0, le=MAX_TEXT_KEEP)
    keep_suffix: int = Field(default=0, ge=0, le=MAX_TEXT_KEEP)
    char: str = Field(default="*", min_length=1, max_length=1)


class Truncate(_Strict):
    action: Literal["truncate"]
    length: int = Field(ge=1, le=MAX_TEXT_KEEP)


class Generalize(_Strict):
    """Numbers into ranges (``bins``) or categories into coarser ones (``mapping``)."""

    action: Literal["generalize"]
    bins: list[float] | None = Field(default=None, max_length=10_000)
    mapping: dict[str, str] | None = Field(default=None, min_length=1, max_length=100_000)
    default: str | None = None

    @model_validator(mode="after")
    def _one_kind(self) -> Generalize:
        if (self.bins is None) == (self.mapping is None):
            raise ValueError("generalize needs exactly one of 'bins' (numbers) or 'mapping'")
        if self.bins is not None:
            if len(self.bins) < 2:
                raise ValueError("generalize 'bins' needs at least two edges")
            if any(b >= a for b, a in zip(self.bins, self.bins[1:], strict=False)) or not all(
                math.isfinite(b) for b in self.bins
            ):
                raise ValueError("generalize 'bins' must be finite and strictly increasing")
        return self


class Round(_Strict):
    """To ``digits`` decimals (-15..15: a double holds no more) or to a ``multiple``."""

    action: Literal["round"]
    digits: int | None = Field(default=None, ge=-ROUND_DIGITS, le=ROUND_DIGITS)
    multiple: float | None = Field(
        default=None, ge=MULTIPLE_MIN, le=MULTIPLE_MAX, allow_inf_nan=False
    )

    @model_validator(mode="after")
    def _one_kind(self) -> Round:
        if (self.digits is None) == (self.multiple is None):
            raise ValueError("round needs exactly one of 'digits' or 'multiple'")
        return self


class Clip(_Strict):
    action: Literal["clip"]
    min: float = Field(allow_inf_nan=False)
    max: float = Field(allow_inf_nan=False)

    @model_validator(mode="after")
    def _ordered(self) -> Clip:
        if not self.min < self.max:
            raise ValueError(f"clip needs min < max (got min={self.min}, max={self.max})")
        return self


class Laplace(_Strict):
    """Laplace noise with scale sensitivity/epsilon; epsilon is charged to the party's budget."""

    action: Literal["laplace"]
    sensitivity: float = Field(ge=SENSITIVITY_MIN, le=SENSITIVITY_MAX, allow_inf_nan=False)
    epsilon: float = Field(ge=EPSILON_MIN, le=EPSILON_MAX, allow_inf_nan=False)


class Gaussian(_Strict):
    """Gaussian noise for (epsilon, delta)-DP; both are charged to the party's budget."""

    action: Literal["gaussian"]
    sensitivity: float = Field(ge=SENSITIVITY_MIN, le=SENSITIVITY_MAX, allow_inf_nan=False)
    epsilon: float = Field(ge=EPSILON_MIN, le=1.0, allow_inf_nan=False)
    delta: float = Field(ge=DELTA_MIN, le=DELTA_MAX, allow_inf_nan=False)


ColumnPolicy = Annotated[
    Keep | Drop | Pseudonymize | Mask | Truncate | Generalize | Round | Clip | Laplace | Gaussian,
    Field(discriminator="action"),
]

#: What may be done to each kind of column (the time column is the join axis).
TIME_ACTIONS = frozenset({"keep", "drop"})
ENTITY_ACTIONS = frozenset({"keep", "drop", "pseudonymize", "mask", "truncate", "generalize"})
VALUE_ACTIONS = frozenset(
    {"keep", "drop", "generalize", "round", "clip", "laplace", "gaussian", "mask", "truncate"}
)


class Resample(_Strict):
    """Aggregate to a coarser frequency before anything leaves the party."""

    to: str
    agg: Literal["sum", "mean", "min", "max", "last", "count"] = "mean"


class TimeShift(_Strict):
    """Shift every timestamp by a task-secret offset of at most ``max_days``."""

    max_days: int = Field(ge=1, le=3650)


class DatasetPolicy(_Strict):
    columns: dict[str, ColumnPolicy]
    k_threshold: int | None = Field(default=None, ge=2, le=1_000_000)
    resample: Resample | None = None
    time_shift: TimeShift | None = None
