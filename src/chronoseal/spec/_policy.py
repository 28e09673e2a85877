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
    model_config = ConfigDict(extra="forbid", frozen=True)


class Keep(_Strict):
    action: Literal["keep"]


class Drop(_Strict):
    action: Literal["drop"]


class Pseudonymize(_Strict):
    """HMAC-SHA256 under a per-task key created inside the analysis runtime."""

    action: Literal["pseudonymize"]


class Mask(_Strict):
    action: Literal["mask"]
    keep_prefix: int = Field(default=0, ge=0)
    keep_suffix: int = Field(default=0, ge=0)
    char: str = Field(default="*", min_length=1, max_length=1)


class Truncate(_Strict):
    action: Literal["truncate"]
    length: int = Field(ge=1)


class Generalize(_Strict):
    """Numbers into ranges (``bins``) or categories into coarser ones (``mapping``)."""

    action: Literal["generalize"]
    bins: list[float] | None = None
    mapping: dict[str, str] | None = None
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
    action: Literal["round"]
    digits: int | None = None
    multiple: float | None = Field(default=None, gt=0)

    @model_validator(mode="after")
    def _one_kind(self) -> Round:
        if (self.digits is None) == (self.multiple is None):
            raise ValueError("round needs exactly one of 'digits' or 'multiple'")
        return self


class Clip(_Strict):
    action: Literal["clip"]
    min: float
    max: float

    @model_validator(mode="after")
    def _ordered(self) -> Clip:
        if not self.min < self.max:
            raise ValueError(f"clip needs min < max (got min={self.min}, max={self.max})")
        return self


class Laplace(_Strict):
    """Laplace noise with scale sensitivity/epsilon; epsilon is charged to the party's budget."""

    action: Literal["laplace"]
    sensitivity: float = Field(gt=0, allow_inf_nan=False)
    epsilon: float = Field(gt=0, allow_inf_nan=False)


class Gaussian(_Strict):
    """Gaussian noise for (epsilon, delta)-DP; both are charged to the party's budget."""

    action: Literal["gaussian"]
    sensitivity: float = Field(gt=0, allow_inf_nan=False)
    epsilon: float = Field(gt=0, allow_inf_nan=False)
    delta: float = Field(gt=0, lt=1)


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
    k_threshold: int | None = Field(default=None, ge=2)
    resample: Resample | None = None
    time_shift: TimeShift | None = None
