"""The task specification every party reviews and approves; its canonical hash is the task id."""

from __future__ import annotations

import datetime as dt
import re
from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from ._policy import DatasetPolicy

_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,62}$")
HEX32 = re.compile(r"^(0x)?[0-9a-fA-F]{64}$")


def is_name(value: str) -> bool:
    """Org, dataset and task names: short, lower-case, safe in ids, paths and logs."""
    return bool(_NAME.fullmatch(value))


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Role(StrEnum):
    DATA_PROVIDER = "data_provider"
    RESULT_RECIPIENT = "result_recipient"


class TaskKind(StrEnum):
    FORECAST = "forecast"
    ANOMALY = "anomaly"


class Component(StrEnum):
    """Which chronoseal component a TEE runs. A task pins measurements for the first three;
    ``client`` is a party's forecast requester, attested like the others on the channel."""

    GATEWAY = "gateway"
    ANALYSIS = "analysis"
    PREDICTION = "prediction"
    CLIENT = "client"


class TaskInfo(_Strict):
    name: str
    kind: TaskKind
    description: str = ""
    deadline: dt.datetime


class Participant(_Strict):
    org: str
    roles: list[Role] = Field(min_length=1)


class Dataset(_Strict):
    """A party's table as the task sees it; ``source`` is the party's own logical name for it."""

    party: str
    name: str
    source: str = Field(min_length=1)
    time_column: str
    entity_columns: list[str] = Field(default_factory=list)
    value_columns: list[str] = Field(min_length=1)
    frequency: str
    policy: DatasetPolicy

    def columns(self) -> list[str]:
        return [self.time_column, *self.entity_columns, *self.value_columns]


class Join(_Strict):
    """Vertical: parties hold different columns of the same entities and times."""

    kind: Literal["vertical", "horizontal"]
    on: list[str] = Field(min_length=1)


class Target(_Strict):
    dataset: str
    column: str


class Model(_Strict):
    family: str
    target: Target
    horizon: int = Field(ge=1, le=10_000)
    season_length: int = Field(ge=1, le=10_000)
    exogenous: Literal["future_known", "none"] = "future_known"


class Evaluation(_Strict):
    windows: int = Field(ge=1, le=100)
    step_size: int | None = Field(default=None, ge=1)
    metrics: list[str] = Field(min_length=1)


class MetricsRelease(_Strict):
    to: list[str] = Field(min_length=1)
    which: list[str] = Field(min_length=1)


class ForecastRelease(_Strict):
    to: list[str] = Field(min_length=1)


class Release(_Strict):
    metrics: MetricsRelease
    forecasts: ForecastRelease


class MeasurementPin(_Strict):
    """The code a component must run: a 32-byte digest registered and approved on chain."""

    tee: Literal["simulated", "sgx", "tdx", "sev-snp", "csv", "cca"]
    value: str

    @property
    def digest(self) -> bytes:
        if not HEX32.fullmatch(self.value):
            raise ValueError(f"measurement {self.value!r} is not resolved to 32 hex bytes")
        return bytes.fromhex(self.value.removeprefix("0x"))


class Measurements(_Strict):
    gateway: MeasurementPin
    analysis: MeasurementPin
    prediction: MeasurementPin

    def pins(self) -> dict[Component, MeasurementPin]:
        return {
            Component.GATEWAY: self.gateway,
            Component.ANALYSIS: self.analysis,
            Component.PREDICTION: self.prediction,
        }


class TaskSpec(_Strict):
    spec_version: Literal[1] = 1
    task: TaskInfo
    participants: list[Participant] = Field(min_length=1)
    datasets: list[Dataset] = Field(min_length=1)
    join: Join
    model: Model
    evaluation: Evaluation
    release: Release
    measurements: Measurements

    def participant(self, org: str) -> Participant | None:
        return next((p for p in self.participants if p.org == org), None)

    def datasets_of(self, org: str) -> list[Dataset]:
        return [d for d in self.datasets if d.party == org]

    def data_providers(self) -> list[str]:
        return [p.org for p in self.participants if Role.DATA_PROVIDER in p.roles]
