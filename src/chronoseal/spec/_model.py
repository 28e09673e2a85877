"""The task specification every party reviews and approves; its canonical hash is the task id."""

from __future__ import annotations

import datetime as dt
import re
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from ._policy import DatasetPolicy

_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,62}$")
HEX32 = re.compile(r"^(0x)?[0-9a-fA-F]{64}$")


def is_name(value: str) -> bool:
    """Org, dataset and task names: short, lower-case, safe in ids, paths and logs."""
    return bool(_NAME.fullmatch(value))


class _Strict(BaseModel):
    # strict: "14", 14.0 or true is not a horizon; "yes" is not a boolean
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class Role(StrEnum):
    DATA_PROVIDER = "data_provider"
    RESULT_RECIPIENT = "result_recipient"


class TaskKind(StrEnum):
    FORECAST = "forecast"
    ANOMALY = "anomaly"


class Tee(StrEnum):
    """The TEE types chronoseal knows, spelled once: evidence, pins, the CLI and deployment
    use these; the chain stores them as integers (``chronoseal.ledger.ChainTee``), converted
    only at the ledger's edge. PSA tokens are appraised but not registered on chain."""

    SGX = "sgx"
    TDX = "tdx"
    SEV_SNP = "sev-snp"
    CSV = "csv"
    CCA = "cca"
    PSA = "psa"
    SIMULATED = "simulated"


#: The TEEs a task can pin (every :class:`Tee` the chain registers). A literal rather than
#: ``Tee`` so that a spec's refusal keeps naming exactly these; tests/spec keeps the two equal.
PinnableTee = Literal["simulated", "sgx", "tdx", "sev-snp", "csv", "cca"]


class Component(StrEnum):
    """Which chronoseal component a TEE runs. A task pins measurements for the first three;
    ``client`` is a party's forecast requester, attested like the others on the channel."""

    GATEWAY = "gateway"
    ANALYSIS = "analysis"
    PREDICTION = "prediction"
    CLIENT = "client"
    #: A Dask worker of the analysis runtime (``[compute]``): pinned when the task uses any.
    ANALYSIS_WORKER = "analysis_worker"


class TaskInfo(_Strict):
    name: str
    kind: Annotated[TaskKind, Field(strict=False)]
    description: str = Field(default="", max_length=4096)
    # TOML gives a datetime; a JSON copy of a spec gives its RFC 3339 string
    deadline: Annotated[dt.datetime, Field(strict=False)]
    #: The end of the training window (:meth:`training_end`). A date: the last day the model
    #: trains on, up to the end of that day (UTC). On a task whose every dataset is sub-daily,
    #: an RFC 3339 time with zone on the task's grid: the last time trained on (held in UTC).
    #: Gateways stream the rows up to it; their feature feeds to the prediction runtime carry
    #: the rows after it. None: all rows train, and feeds carry what appears later.
    data_until: dt.datetime | dt.date | None = None

    @field_validator("data_until", mode="before")
    @classmethod
    def _a_date_or_a_zoned_time(cls, value: object) -> object:
        # Strict: a TOML date or offset date-time only; a string, a local date-time (no zone)
        # or a time of day is refused rather than read in some zone.
        if value is None or type(value) is dt.date:
            return value
        if isinstance(value, dt.datetime):
            if value.utcoffset() is None:
                raise ValueError(
                    "a time needs its zone (RFC 3339, e.g. 2024-03-08T23:00:00Z); "
                    "for a whole day write a date (2024-03-08)"
                )
            return value.astimezone(dt.UTC)
        raise ValueError(
            "must be a TOML date (data_until = 2024-03-08) or, on a sub-daily task, a time "
            f"with zone (data_until = 2024-03-08T23:00:00Z), not a {type(value).__name__}"
        )

    def training_end(self) -> dt.datetime | None:
        """The first instant (UTC) after the training window: the day after a date cut, the
        time itself for a time cut (which the window holds), None without a cut."""
        until = self.data_until
        if until is None or isinstance(until, dt.datetime):
            return until
        return dt.datetime.combine(until + dt.timedelta(days=1), dt.time(), tzinfo=dt.UTC)

    #: The crypto suite of the data plane every party agrees to with the task: "standard"
    #: (AES-256-GCM frames, SHA-256/BLAKE2b commitments) or "gmt" (SM4-GCM frames, SM3 commitments
    #: and leaves: GM/T 0002/0004). TLS stays TLS 1.3 either way (the OpenSSL here has no SM
    #: cipher suites). Left out of the canonical JSON when "standard", so existing task ids
    #: do not change.
    crypto: Literal["standard", "gmt"] = "standard"


class Participant(_Strict):
    org: str
    roles: list[Annotated[Role, Field(strict=False)]] = Field(min_length=1)


Availability = Literal["future_known", "past_only"]
"""When a covariate's value for time t exists: ``future_known`` ones (a calendar, a weather
*forecast*) are known for the whole horizon and enter the model at their own time;
``past_only`` ones (another party's measurements) enter only as lags of at least the horizon."""


class Dataset(_Strict):
    """A party's table as the task sees it; ``source`` is the party's own logical name for it.

    ``availability`` (and per column ``column_availability``) says when each value column is
    known, so that no covariate reaches the model before it could exist.
    """

    party: str
    name: str
    source: str = Field(min_length=1)
    time_column: str
    entity_columns: list[str] = Field(default_factory=list)
    value_columns: list[str] = Field(min_length=1)
    frequency: str
    policy: DatasetPolicy
    availability: Availability | None = None
    column_availability: dict[str, Availability] = Field(default_factory=dict)

    def columns(self) -> list[str]:
        return [self.time_column, *self.entity_columns, *self.value_columns]

    def released(self, column: str) -> bool:
        """Whether the column leaves the party (default deny: no rule, nothing leaves)."""
        rule = self.policy.columns.get(column)
        return rule is not None and rule.action != "drop"

    def released_columns(self) -> list[str]:
        """The columns the party's desensitized batches carry, in stream order."""
        return [c for c in self.columns() if self.released(c)]

    def availability_of(self, column: str) -> Availability | None:
        return self.column_availability.get(column, self.availability)

    def effective_frequency(self) -> str:
        """The frequency of what leaves the party: its resampling target, if any."""
        return self.policy.resample.to if self.policy.resample is not None else self.frequency


class Join(_Strict):
    """How the runtime aligns the parties' tables, and what it does with imperfect data.

    Vertical: parties hold different columns of the same entities and times; horizontal:
    series of the same kind, unioned with ``unique_id`` scoped by party. Every rule defaults to
    ``refuse``: the runtime never repairs data in a way the parties did not approve.
    """

    kind: Literal["vertical", "horizontal"]
    on: list[str] = Field(min_length=1)
    naive_timezone: str | None = None
    off_grid: Literal["refuse", "floor"] = "refuse"
    duplicates: Literal["refuse", "mean", "sum", "min", "max", "last"] = "refuse"
    target_gaps: Literal["refuse", "interpolate", "ffill", "zero"] = "refuse"
    covariate_gaps: Literal["refuse", "ffill", "zero"] = "refuse"


class Target(_Strict):
    dataset: str
    column: str


#: When ``local_input_size`` is unset, a local statsforecast model fits on the last
#: ``INPUT_SEASONS`` of its longest season of each series (at least ``INPUT_HORIZONS``
#: horizons, at least ``INPUT_MIN`` periods): enough to estimate every seasonal state many
#: times over, and a cost per series that no longer grows with the length of its history.
INPUT_SEASONS, INPUT_HORIZONS, INPUT_MIN = 20, 10, 100
#: statsforecast's ETS, like R's ``forecast::ets``, fits no seasonal model beyond 24 periods.
ETS_MAX_SEASON = 24


class Model(_Strict):
    """``exogenous = "declared"`` uses every released covariate as its dataset declares
    (``availability``); ``"none"`` uses the target's own history only. ``holidays`` adds a
    public holiday calendar (a country code for the ``holidays`` package) to the calendar
    features; ``local_input_size`` bounds the history each local statsforecast model fits on
    (statsforecast's ``input_size``; derived from the seasons and horizon when unset, see
    :meth:`input_size`), global models always see all of it."""

    family: str
    target: Target
    horizon: int = Field(ge=1, le=10_000)
    season_length: int = Field(ge=1, le=10_000)
    exogenous: Literal["declared", "none"] = "declared"
    holidays: str | None = Field(default=None, min_length=2, max_length=16)
    seasonalities: list[Annotated[int, Field(ge=1, le=100_000)]] = Field(
        default_factory=list, max_length=4
    )
    local_input_size: int | None = Field(default=None, ge=2, le=100_000_000)

    def longest_season(self) -> int:
        return max([self.season_length, *self.seasonalities])

    def input_size(self) -> int:
        """Periods of each series' history a local model fits on (the spec's, or derived)."""
        if self.local_input_size is not None:
            return self.local_input_size
        return max(INPUT_SEASONS * self.longest_season(), INPUT_HORIZONS * self.horizon, INPUT_MIN)

    def statistical_baseline(self) -> str:
        """The family of the statistical single-party baseline: AutoETS, or MSTL where the
        task has several seasons or one longer than ETS can fit."""
        if self.seasonalities or self.season_length > ETS_MAX_SEASON:
            return "statsforecast-mstl"
        return "statsforecast-autoets"


class Evaluation(_Strict):
    """Rolling-origin back-test, as statsforecast's ``cross_validation(h, n_windows,
    step_size)``; ``level`` is the prediction-interval level scored by ``coverage``."""

    windows: int = Field(ge=1, le=100)
    step_size: int | None = Field(default=None, ge=1, le=1_000_000)
    metrics: list[str] = Field(min_length=1)
    level: int = Field(default=90, ge=50, le=99)
    short_series: Literal["refuse", "drop"] = "refuse"

    def step(self, horizon: int) -> int:
        return self.step_size if self.step_size is not None else horizon


class MetricsRelease(_Strict):
    to: list[str] = Field(min_length=1)
    which: list[str] = Field(min_length=1)


class ForecastRelease(_Strict):
    """Who may ask the prediction runtime for forecasts, and how much."""

    to: list[str] = Field(min_length=1)
    #: Forecast requests each recipient may make over the task's life (refusals not counted).
    max_queries: int | None = Field(default=None, ge=1, le=1_000_000_000)
    #: Requests per recipient per minute; beyond it ``prediction.request.rate_limited``.
    per_minute: int | None = Field(default=None, ge=1, le=1_000_000)


class ContributionRelease(_Strict):
    """Who learns each data provider's value to the model (its MASE change)."""

    to: list[str] = Field(min_length=1)


class Release(_Strict):
    metrics: MetricsRelease
    forecasts: ForecastRelease
    contribution: ContributionRelease | None = None


class MeasurementPin(_Strict):
    """The code a component must run: a 32-byte digest registered and approved on chain."""

    tee: PinnableTee
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
    #: The code of the analysis runtime's Dask workers; a task without it runs its analysis
    #: in the runtime's own TEE only (``chronoseal run --workers`` needs it).
    analysis_worker: MeasurementPin | None = None

    def pins(self) -> dict[Component, MeasurementPin]:
        pins = {
            Component.GATEWAY: self.gateway,
            Component.ANALYSIS: self.analysis,
            Component.PREDICTION: self.prediction,
        }
        if self.analysis_worker is not None:
            pins[Component.ANALYSIS_WORKER] = self.analysis_worker
        return pins


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

    def dataset(self, name: str) -> Dataset | None:
        return next((d for d in self.datasets if d.name == name), None)

    def target_dataset(self) -> Dataset:
        ds = self.dataset(self.model.target.dataset)
        if ds is None:
            raise ValueError(f"no dataset named {self.model.target.dataset!r}")
        return ds

    def series_datasets(self) -> list[Dataset]:
        """The datasets that hold series of the target: the target dataset (vertical), or
        every dataset releasing the target column (horizontal)."""
        if self.join.kind == "vertical":
            return [self.target_dataset()]
        column = self.model.target.column
        return [d for d in self.datasets if column in d.value_columns and d.released(column)]

    def feed_datasets(self) -> list[Dataset]:
        """The datasets whose rows a forecast needs at prediction time: every released
        covariate that is known in advance, outside the target dataset."""
        target = self.model.target.dataset
        return [
            ds
            for ds in self.datasets
            if ds.name != target
            and any(
                ds.released(c) and ds.availability_of(c) == "future_known" for c in ds.value_columns
            )
        ]
