"""A party's own configuration: where its data lives and what it consents to release.

It never leaves the party's domain. The consent section is what the party's reviewer compares
a proposed task against before approving it on chain.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from ._load import read_config
from ._policy import ColumnPolicy


class _Strict(BaseModel):
    # strict: "14", 14.0 or true is not a horizon; "yes" is not a boolean
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class PartyInfo(_Strict):
    name: str
    display_name: str = ""


class Consent(_Strict):
    """Per column of each of the party's datasets: the actions it accepts, nothing else."""

    columns: dict[str, dict[str, list[str]]] = Field(default_factory=dict)
    max_epsilon: float | None = Field(default=None, gt=0, allow_inf_nan=False)
    result_recipients: list[str] | None = None

    def accepts(self, dataset: str, column: str, rule: ColumnPolicy) -> bool:
        return rule.action in self.columns.get(dataset, {}).get(column, [])


class Budget(_Strict):
    """Total differential-privacy loss a party lets all tasks together spend on one source."""

    epsilon: float = Field(gt=0, allow_inf_nan=False)
    delta: float = Field(default=0.0, ge=0, lt=1, allow_inf_nan=False)


class PartyConfig(_Strict):
    """``io_timeout``: seconds any read or write on this party's attested channels may wait
    for the peer before the gateway gives up (a stopped or half-open peer)."""

    party: PartyInfo
    io_timeout: float = Field(default=120.0, gt=0, le=3600, allow_inf_nan=False)
    sources: dict[str, str] = Field(default_factory=dict)
    consent: Consent = Field(default_factory=Consent)
    budgets: dict[str, Budget] = Field(
        default_factory=dict, description="per source name (the key in [sources])"
    )


def load_party_config(path: str | Path) -> PartyConfig:
    return read_config(Path(path), "party config", PartyConfig, invalid_id="config.party.invalid")
