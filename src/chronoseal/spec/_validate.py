"""Cross-field rules a schema cannot express; every broken rule becomes one located problem."""

from __future__ import annotations

import datetime as dt
import re
from collections import Counter
from collections.abc import Iterator
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from chronoseal.errors import SpecProblem

from ._model import ETS_MAX_SEASON, HEX32, Dataset, Role, TaskKind, TaskSpec, is_name
from ._policy import ENTITY_ACTIONS, TIME_ACTIONS, VALUE_ACTIONS, is_frequency

_FAMILIES = frozenset(
    {
        "mlforecast-lightgbm",
        "statsforecast-autoets",
        "statsforecast-autoarima",
        "statsforecast-autotheta",
        "statsforecast-mstl",
        "seasonal-naive",
    }
)
#: Model families the analysis runtime implements, per task kind. An anomaly task flags the
#: points outside the back-tested prediction interval of any forecasting family.
MODEL_FAMILIES: dict[TaskKind, frozenset[str]] = {
    TaskKind.FORECAST: _FAMILIES,
    TaskKind.ANOMALY: _FAMILIES,
}
#: Families that use covariates; the others forecast each series from its own history.
EXOGENOUS_FAMILIES = frozenset({"mlforecast-lightgbm", "statsforecast-autoarima"})
METRICS: dict[TaskKind, frozenset[str]] = {
    TaskKind.FORECAST: frozenset({"mae", "rmse", "mase", "smape", "mape", "coverage"}),
    TaskKind.ANOMALY: frozenset({"anomaly_rate", "mae", "rmse", "mase", "smape", "coverage"}),
}
INSTALLED = "installed"


def validate(spec: TaskSpec) -> list[SpecProblem]:
    return list(_problems(spec))


def _problems(spec: TaskSpec) -> Iterator[SpecProblem]:
    yield from _names(spec)
    yield from _participants(spec)
    for i, ds in enumerate(spec.datasets):
        yield from _dataset(spec, ds, f"datasets[{i}]")
    yield from _join_and_model(spec)
    yield from _join_shape(spec)
    yield from _covariates(spec)
    yield from _calendar(spec)
    yield from _release(spec)
    yield from _measurements(spec)


def _names(spec: TaskSpec) -> Iterator[SpecProblem]:
    if not is_name(spec.task.name):
        yield SpecProblem("task.name", _bad_name(spec.task.name))
    if spec.task.deadline.tzinfo is None:
        yield SpecProblem("task.deadline", "give a time zone (e.g. 2027-01-31T00:00:00Z)")
    yield from _data_until(spec)


#: Seconds per step of the sub-daily frequency units (a frequency alias's suffix).
_SUB_DAILY = {"s": 1, "min": 60, "h": 3600}


def _step_seconds(freq: str) -> int | None:
    """The step of a sub-daily frequency alias (``30min`` -> 1800), None for a day or more."""
    m = re.fullmatch(r"([1-9][0-9]*)?(s|min|h)", freq)
    return None if m is None else int(m.group(1) or 1) * _SUB_DAILY[m.group(2)]


def _data_until(spec: TaskSpec) -> Iterator[SpecProblem]:
    """A time cut only on a task whose every dataset is sub-daily, on every dataset's grid
    (in the clock its naive times are read in); any cut ends before the deadline."""
    until, deadline = spec.task.data_until, spec.task.deadline
    if until is None:
        return
    if isinstance(until, dt.datetime):
        daily = [
            ds.name
            for ds in spec.datasets
            if _step_seconds(ds.frequency) is None
            or _step_seconds(ds.effective_frequency()) is None
        ]
        if daily:
            yield SpecProblem(
                "task.data_until",
                f"a time cut needs sub-daily data, but {', '.join(map(repr, daily))} "
                f"{'is' if len(daily) == 1 else 'are'} daily or coarser: give the last day "
                f"as a date ({until.date().isoformat()})",
            )
            return
        zone = spec.join.naive_timezone
        clock = until.astimezone(ZoneInfo(zone)) if zone and _is_zone(zone) else until
        wall = int((clock.replace(tzinfo=None) - dt.datetime(1970, 1, 1)).total_seconds())
        for freq in sorted(
            {f for ds in spec.datasets for f in (ds.frequency, ds.effective_frequency())}
        ):
            step = _step_seconds(freq)
            if step is not None and (wall % step or until.microsecond):
                yield SpecProblem(
                    "task.data_until",
                    f"{until.isoformat().replace('+00:00', 'Z')} is not on the task's "
                    f"{freq!r} grid: give a time the data hold (a whole step of every "
                    "dataset's frequency)",
                )
                break
        late = deadline.tzinfo is not None and until >= deadline
    else:
        end = spec.task.training_end()
        late = deadline.tzinfo is not None and end is not None and end > deadline
    if late:
        yield SpecProblem(
            "task.data_until",
            f"the training window ends after the task's deadline ({deadline.isoformat()}): "
            "the model must be trained on data from before it",
        )


def _bad_name(name: str) -> str:
    return f"{name!r} must be lower-case letters, digits, '-' or '_', starting with a letter"


def _participants(spec: TaskSpec) -> Iterator[SpecProblem]:
    for org, n in Counter(p.org for p in spec.participants).items():
        if n > 1:
            yield SpecProblem("participants", f"org {org!r} is listed {n} times")
    for i, p in enumerate(spec.participants):
        if not is_name(p.org):
            yield SpecProblem(f"participants[{i}].org", _bad_name(p.org))
        if len(set(p.roles)) != len(p.roles):
            yield SpecProblem(f"participants[{i}].roles", "a role is listed twice")
        if Role.DATA_PROVIDER in p.roles and not spec.datasets_of(p.org):
            yield SpecProblem(
                f"participants[{i}]", f"data provider {p.org!r} has no dataset in [[datasets]]"
            )
    if not spec.data_providers():
        yield SpecProblem("participants", "no participant has the role 'data_provider'")
    for name, n in Counter(d.name for d in spec.datasets).items():
        if n > 1:
            yield SpecProblem("datasets", f"dataset name {name!r} is used {n} times")


def _dataset(spec: TaskSpec, ds: Dataset, at: str) -> Iterator[SpecProblem]:
    if not is_name(ds.name):
        yield SpecProblem(f"{at}.name", _bad_name(ds.name))
    party = spec.participant(ds.party)
    if party is None:
        yield SpecProblem(f"{at}.party", f"{ds.party!r} is not a participant")
    elif Role.DATA_PROVIDER not in party.roles:
        yield SpecProblem(f"{at}.party", f"{ds.party!r} lacks the role 'data_provider'")
    if not is_frequency(ds.frequency):
        yield SpecProblem(
            f"{at}.frequency", f"{ds.frequency!r} is not a frequency alias (e.g. D, W, h, 15min)"
        )
    for col, n in Counter(ds.columns()).items():
        if n > 1:
            yield SpecProblem(at, f"column {col!r} is declared {n} times")
    declared = set(ds.columns())
    named = set(ds.policy.columns)
    for col in sorted(declared - named):
        yield SpecProblem(
            f"{at}.policy.columns", f"column {col!r} has no policy (every column needs one)"
        )
    for col in sorted(named - declared):
        yield SpecProblem(
            f"{at}.policy.columns.{col}",
            "policy names a column the dataset does not declare (declare it or remove the rule)",
        )
    allowed = {ds.time_column: TIME_ACTIONS}
    allowed.update({c: ENTITY_ACTIONS for c in ds.entity_columns})
    allowed.update({c: VALUE_ACTIONS for c in ds.value_columns})
    for col, rule in ds.policy.columns.items():
        ok = allowed.get(col)
        if ok is not None and rule.action not in ok:
            yield SpecProblem(
                f"{at}.policy.columns.{col}.action",
                f"{rule.action!r} is not allowed on this column (allowed: {', '.join(sorted(ok))})",
            )
    if ds.policy.columns.get(ds.time_column, None) is not None and (
        ds.policy.columns[ds.time_column].action == "drop"
    ):
        yield SpecProblem(
            f"{at}.policy.columns.{ds.time_column}", "the time column cannot be dropped"
        )
    if ds.policy.resample is not None and not is_frequency(ds.policy.resample.to):
        yield SpecProblem(
            f"{at}.policy.resample.to", f"{ds.policy.resample.to!r} is not a frequency"
        )
    if ds.policy.k_threshold is not None and not ds.entity_columns:
        yield SpecProblem(
            f"{at}.policy.k_threshold", "k-threshold needs entity columns to group by"
        )


def _join_and_model(spec: TaskSpec) -> Iterator[SpecProblem]:
    shifts = {d.policy.time_shift for d in spec.datasets}
    if spec.join.kind == "vertical" and len(shifts) > 1:
        yield SpecProblem(
            "datasets",
            "datasets joined on time must declare the same time_shift (or none): the "
            "task-secret offset depends on it, and different offsets misalign the join",
        )
    for col in spec.join.on:
        for i, ds in enumerate(spec.datasets):
            if col not in ds.columns():
                yield SpecProblem("join.on", f"join column {col!r} is missing from datasets[{i}]")
            elif ds.policy.columns.get(col) is not None and ds.policy.columns[col].action == "drop":
                yield SpecProblem("join.on", f"join column {col!r} is dropped in datasets[{i}]")
    fams = MODEL_FAMILIES[spec.task.kind]
    if spec.model.family not in fams:
        yield SpecProblem(
            "model.family",
            f"{spec.model.family!r} is not a {spec.task.kind} family ({', '.join(sorted(fams))})",
        )
    target = next((d for d in spec.datasets if d.name == spec.model.target.dataset), None)
    if target is None:
        yield SpecProblem("model.target.dataset", f"no dataset named {spec.model.target.dataset!r}")
    elif spec.model.target.column not in target.value_columns:
        yield SpecProblem(
            "model.target.column", f"{spec.model.target.column!r} is not a value column of it"
        )
    elif target.policy.columns.get(spec.model.target.column, None) is not None and (
        target.policy.columns[spec.model.target.column].action == "drop"
    ):
        yield SpecProblem("model.target.column", "the target column is dropped by its policy")
    known = METRICS[spec.task.kind]
    for i, m in enumerate(spec.evaluation.metrics):
        if m not in known:
            yield SpecProblem(
                f"evaluation.metrics[{i}]", f"unknown metric {m!r} ({', '.join(sorted(known))})"
            )


def _join_shape(spec: TaskSpec) -> Iterator[SpecProblem]:
    """What the runtime's join needs to be well defined: one grid, unambiguous keys."""
    target = spec.dataset(spec.model.target.dataset)
    if target is None:
        return
    if spec.join.naive_timezone is not None and not _is_zone(spec.join.naive_timezone):
        yield SpecProblem(
            "join.naive_timezone",
            f"{spec.join.naive_timezone!r} is not an IANA time zone (e.g. UTC, Europe/Berlin)",
        )
    freq = target.effective_frequency()
    for i, ds in enumerate(spec.datasets):
        if ds.effective_frequency() != freq:
            yield SpecProblem(
                f"datasets[{i}].frequency",
                f"{ds.name!r} is released at {ds.effective_frequency()!r} but the target at "
                f"{freq!r}: resample it to {freq!r} in its policy",
            )
    column = spec.model.target.column
    holders = (
        [target]
        if spec.join.kind == "vertical"
        else [d for d in spec.datasets if column in d.value_columns and d.released(column)]
    )
    for i, ds in enumerate(spec.datasets):
        loose = [c for c in ds.entity_columns if ds.released(c) and c not in spec.join.on]
        if ds not in holders and loose:
            yield SpecProblem(
                f"datasets[{i}].entity_columns",
                f"entity column(s) {', '.join(loose)} of a covariate dataset must be in "
                "join.on (or dropped), or one target row would match several of its rows",
            )
    if spec.join.kind == "vertical":
        return
    mine = set(_covariate_columns(spec, target))
    for i, ds in enumerate(spec.datasets):
        if ds not in holders:
            continue
        differ = sorted(set(_covariate_columns(spec, ds)) ^ mine)
        if differ:
            yield SpecProblem(
                f"datasets[{i}].value_columns",
                "the datasets of a horizontal join that hold the target need the same "
                f"covariates; {', '.join(differ)} differ from the target dataset's",
            )


def _is_zone(name: str) -> bool:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return False
    return True


def _covariate_columns(spec: TaskSpec, ds: Dataset) -> list[str]:
    """Released value columns the model may use besides the target."""
    return [
        c
        for c in ds.value_columns
        if ds.released(c)
        and not (ds.name == spec.model.target.dataset and c == spec.model.target.column)
        and not (spec.join.kind == "horizontal" and c == spec.model.target.column)
    ]


def _covariates(spec: TaskSpec) -> Iterator[SpecProblem]:
    """Every covariate says when it is known; otherwise leakage is one default away."""
    for i, ds in enumerate(spec.datasets):
        for col in sorted(ds.column_availability):
            if col not in ds.value_columns:
                yield SpecProblem(
                    f"datasets[{i}].column_availability.{col}", "not a value column of it"
                )
            elif col not in _covariate_columns(spec, ds):
                yield SpecProblem(
                    f"datasets[{i}].column_availability.{col}",
                    "the target or a dropped column is not a covariate",
                )
        if spec.model.exogenous != "declared":
            continue
        missing = [c for c in _covariate_columns(spec, ds) if ds.availability_of(c) is None]
        if missing:
            yield SpecProblem(
                f"datasets[{i}].availability",
                f"say when {', '.join(missing)} are known: availability = 'future_known' "
                "(a calendar, a forecast) or 'past_only' (measurements), per dataset or in "
                "column_availability — or set model.exogenous = 'none'",
            )


def _calendar(spec: TaskSpec) -> Iterator[SpecProblem]:
    model = spec.model
    if model.holidays is not None:
        if not _is_holiday_calendar(model.holidays):
            yield SpecProblem(
                "model.holidays",
                f"{model.holidays!r} is not a holiday calendar: a country code, optionally "
                "with a subdivision (US, DE-BY, AU-VIC)",
            )
        if any(d.policy.time_shift is not None for d in spec.datasets):
            yield SpecProblem(
                "model.holidays",
                "holiday features need true dates, but a policy shifts time by a secret offset",
            )
    for i, s in enumerate(model.seasonalities):
        if s < 2 or s == model.season_length:
            yield SpecProblem(
                f"model.seasonalities[{i}]",
                "an extra seasonal period must be at least 2 and differ from season_length",
            )
    if model.seasonalities and model.family != "statsforecast-mstl":
        yield SpecProblem(
            "model.seasonalities", "extra seasonalities are used by statsforecast-mstl only"
        )
    if model.family == "statsforecast-autoets" and model.season_length > ETS_MAX_SEASON:
        yield SpecProblem(
            "model.family",
            f"statsforecast-autoets fits no seasonal model beyond {ETS_MAX_SEASON} periods "
            f"(season_length is {model.season_length}): use statsforecast-mstl",
        )


def _is_holiday_calendar(code: str) -> bool:
    import holidays  # the calendar data is only needed when a task names one

    country, _, subdiv = code.partition("-")
    try:
        holidays.country_holidays(country, subdiv=subdiv or None, years=2000)
    except NotImplementedError:
        return False
    return True


def _release(spec: TaskSpec) -> Iterator[SpecProblem]:
    orgs = {p.org for p in spec.participants}
    if spec.release.contribution is not None:
        for i, org in enumerate(spec.release.contribution.to):
            if org not in orgs:
                yield SpecProblem(f"release.contribution.to[{i}]", f"{org!r} is not a participant")
    for i, org in enumerate(spec.release.metrics.to):
        if org not in orgs:
            yield SpecProblem(f"release.metrics.to[{i}]", f"{org!r} is not a participant")
    for i, m in enumerate(spec.release.metrics.which):
        if m not in spec.evaluation.metrics:
            yield SpecProblem(
                f"release.metrics.which[{i}]", f"{m!r} is not computed (add it to evaluation)"
            )
    for i, org in enumerate(spec.release.forecasts.to):
        p = spec.participant(org)
        if p is None:
            yield SpecProblem(f"release.forecasts.to[{i}]", f"{org!r} is not a participant")
        elif Role.RESULT_RECIPIENT not in p.roles:
            yield SpecProblem(
                f"release.forecasts.to[{i}]", f"{org!r} lacks the role 'result_recipient'"
            )


def _measurements(spec: TaskSpec) -> Iterator[SpecProblem]:
    for comp, pin in spec.measurements.pins().items():
        at = f"measurements.{comp.value}.value"
        if pin.value == INSTALLED:
            if pin.tee != "simulated":
                yield SpecProblem(at, "'installed' is only meaningful for tee = 'simulated'")
        elif not HEX32.fullmatch(pin.value):
            yield SpecProblem(at, "must be 64 hex digits (the digest registered on chain)")
