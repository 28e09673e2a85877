"""The parties' desensitized tables joined into statsforecast's long format, inside the TEE.

Vertical: the target dataset gives ``unique_id`` (its entity columns) and ``y``; every other
dataset contributes covariates aligned on time and the entity columns named in ``join.on``.
Horizontal: every dataset gives series of the target column, unioned with ``unique_id``
scoped by party (``party/entity``) so no two parties' series collide.

Imperfect data is handled only as ``[join]`` says (naive vs aware times, off-grid
timestamps, duplicate keys, gaps in the target, covariates missing where the target exists);
every default is *refuse*. A refusal names the dataset, the column and a row count, never a
value, and the runtime aborts the task on chain with its id.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import pyarrow as pa

from chronoseal.errors import AnalysisError
from chronoseal.model import (
    DS,
    ID,
    Grid,
    LocalTimeError,
    TimeRangeError,
    Y,
    ZoneTimeError,
    as_float,
    combine_repeated,
    is_aware,
    is_date_grid,
    is_time,
    series_ids,
    to_utc,
)
from chronoseal.spec import Availability, Dataset, TaskSpec

log = logging.getLogger("chronoseal.analysis")


@dataclass(frozen=True)
class Covariate:
    """One model input besides the target's history, with who holds it and when it exists."""

    name: str
    party: str
    dataset: str
    column: str
    availability: Availability


@dataclass(frozen=True)
class Repair:
    """Something the join did to the data because ``[join]`` allowed it (counts only)."""

    id: str
    dataset: str
    column: str
    rows: int


@dataclass
class Panel:
    """The joined frame (``unique_id``, ``ds``, ``y`` + covariates) and where it came from."""

    frame: pd.DataFrame
    grid: Grid
    target_party: str
    covariates: list[Covariate]
    series_party: dict[str, str]
    repairs: list[Repair] = field(default_factory=list)

    @property
    def providers(self) -> list[str]:
        """Data providers other than the target party that contribute something (a horizontal
        join's shared covariates, party ``*``, are every series holder's own)."""
        seen = {c.party for c in self.covariates} | set(self.series_party.values())
        return sorted(seen - {self.target_party, "*"})

    def target_series(self) -> list[str]:
        return sorted(u for u, p in self.series_party.items() if p == self.target_party)

    def columns_of(self, parties: frozenset[str] | set[str]) -> list[str]:
        """Covariates a coalition holds (a horizontal join's shared columns: always)."""
        return [c.name for c in self.covariates if c.party in parties or c.party == "*"]


def _refuse(message: str, id: str, **context: object) -> AnalysisError:
    return AnalysisError(message, id=id, context=context)


def join_tables(spec: TaskSpec, tables: Mapping[str, pa.Table]) -> Panel:
    """Join every data provider's table (keyed by party) as the spec says."""
    grid = Grid.parse(spec.target_dataset().effective_frequency())
    datasets = {d.name: d for d in spec.datasets}
    absent = [d for d in datasets.values() if d.party not in tables]
    if absent:
        missing = sorted({d.party for d in absent})
        raise _refuse(
            f"no data arrived from {', '.join(missing)} (dataset(s) "
            f"{', '.join(repr(d.name) for d in absent)})",
            "analysis.intake.missing_party",
            parties=missing,
        )
    empty = [d for d in datasets.values() if tables[d.party].num_rows == 0]
    if empty:
        raise _refuse(
            f"no rows arrived for {', '.join(repr(d.name) for d in empty)} (nothing in the "
            "training window, or an empty source)",
            "analysis.join.no_rows",
            dataset=empty[0].name,
        )
    _check_zones(spec, tables, grid)
    repairs: list[Repair] = []
    frames = {
        name: _normalised(spec, ds, tables[ds.party], grid, repairs)
        for name, ds in datasets.items()
    }
    panel = _joined(spec, frames, grid, repairs)
    _check_target(spec, panel)
    for r in repairs:
        log.info("join: %s on %s.%s, %d rows", r.id, r.dataset, r.column, r.rows)
    return panel


def _check_zones(spec: TaskSpec, tables: Mapping[str, pa.Table], grid: Grid) -> None:
    """Naive and aware times mix only with ``join.naive_timezone`` on a sub-daily grid; on a
    grid of dates every time is its local date (:func:`~chronoseal.model.apply_zone_rule`),
    so no zone is needed to line them up."""
    aware: list[str] = []
    naive: list[str] = []
    where: dict[str, str] = {}
    for ds in spec.datasets:
        table = tables[ds.party]
        if ds.time_column not in table.column_names:
            raise _refuse(
                f"dataset {ds.name!r} arrived without its time column {ds.time_column!r}",
                "analysis.join.missing_column",
                dataset=ds.name,
                column=ds.time_column,
            )
        kind = table.schema.field(ds.time_column).type
        if not is_time(kind):
            raise _refuse(
                f"dataset {ds.name!r}: time column {ds.time_column!r} is {kind}, not a date or "
                "timestamp",
                "analysis.join.time_type",
                dataset=ds.name,
                column=ds.time_column,
            )
        (aware if is_aware(kind) else naive).append(ds.name)
        where[ds.name] = f"{ds.name!r} (column {ds.time_column!r})"
    if aware and naive and spec.join.naive_timezone is None and not is_date_grid(grid.alias):
        raise _refuse(
            f"dataset(s) {', '.join(where[n] for n in naive)} carry naive times and "
            f"{', '.join(where[n] for n in aware)} zone-aware ones; set join.naive_timezone "
            "to the zone the naive times are in",
            "analysis.join.timezone_mix",
            naive=naive,
            aware=aware,
        )


def _normalised(
    spec: TaskSpec, ds: Dataset, table: pa.Table, grid: Grid, repairs: list[Repair]
) -> pd.DataFrame:
    """One dataset as (keys…, ds, values…): UTC times on the grid, one row per key."""
    wanted = [c for c in ds.columns() if ds.released(c)]
    absent = [c for c in wanted if c not in table.column_names]
    if absent:
        raise _refuse(
            f"dataset {ds.name!r} arrived without column(s) {', '.join(absent)}",
            "analysis.join.missing_column",
            dataset=ds.name,
            column=absent[0],
        )
    n = table.num_rows
    try:
        times = to_utc(table.column(ds.time_column), spec.join.naive_timezone, grid.alias)
    except TimeRangeError as exc:
        raise _refuse(
            f"dataset {ds.name!r}, column {ds.time_column!r}: {exc.message}",
            "analysis.join.time_range",
            dataset=ds.name,
            column=ds.time_column,
        ) from None
    except LocalTimeError as exc:
        raise _refuse(
            f"dataset {ds.name!r}, column {ds.time_column!r}: {exc.message}",
            "analysis.join.time_ambiguous",
            dataset=ds.name,
            column=ds.time_column,
        ) from None
    except ZoneTimeError as exc:
        raise _refuse(
            f"dataset {ds.name!r}, column {ds.time_column!r}: {exc.message}",
            "analysis.join.not_local_midnight",
            dataset=ds.name,
            column=ds.time_column,
            rows=exc.count,
        ) from None
    nulls = int(times.isna().sum())
    if nulls:
        raise _refuse(
            f"dataset {ds.name!r}: {nulls} of {n} rows have no time in {ds.time_column!r}",
            "analysis.join.null_time",
            dataset=ds.name,
            column=ds.time_column,
            rows=nulls,
        )
    snapped = grid.snap(times)
    off = int((snapped != times).sum())
    if off:
        if spec.join.off_grid == "refuse":
            raise _refuse(
                f"dataset {ds.name!r}: {off} of {n} timestamps in {ds.time_column!r} are not on "
                f"the {grid.alias!r} grid (join.off_grid = 'floor' snaps them to their period)",
                "analysis.join.off_grid",
                dataset=ds.name,
                column=ds.time_column,
                rows=off,
            )
        repairs.append(Repair("analysis.join.off_grid", ds.name, ds.time_column, off))
    out = pd.DataFrame({DS: snapped.to_numpy()})
    for col in _keys_of(spec, ds):
        values = pd.Series(table.column(col).to_pandas()).astype("string")
        blank = int(values.isna().sum())
        if blank:
            raise _refuse(
                f"dataset {ds.name!r}: {blank} of {n} rows have no value in entity column {col!r}",
                "analysis.join.null_key",
                dataset=ds.name,
                column=col,
                rows=blank,
            )
        out[col] = values.to_numpy()
    for col in ds.value_columns:
        if ds.released(col):
            out[col] = as_float(pd.Series(table.column(col).to_pandas())).to_numpy()
    return _deduplicated(spec, ds, out, repairs)


def _keys_of(spec: TaskSpec, ds: Dataset) -> list[str]:
    """Entity columns that identify a row: a series dataset's own, a covariate dataset's
    those in ``join.on``."""
    released = [c for c in ds.entity_columns if ds.released(c)]
    if any(d.name == ds.name for d in spec.series_datasets()):
        return released
    return [c for c in released if c in spec.join.on]


def _deduplicated(
    spec: TaskSpec, ds: Dataset, frame: pd.DataFrame, repairs: list[Repair]
) -> pd.DataFrame:
    keys = [DS, *_keys_of(spec, ds)]
    dup = int(frame.duplicated(keys).sum())
    if not dup:
        return frame.sort_values([*keys[1:], DS], kind="stable").reset_index(drop=True)
    rule = spec.join.duplicates
    if rule == "refuse":
        raise _refuse(
            f"dataset {ds.name!r}: {dup} rows repeat an (entity, {ds.time_column}) key "
            "(join.duplicates chooses how to combine them)",
            "analysis.join.duplicate_keys",
            dataset=ds.name,
            column=ds.time_column,
            rows=dup,
        )
    repairs.append(Repair("analysis.join.duplicate_keys", ds.name, ds.time_column, dup))
    return combine_repeated(frame, [*keys[1:], DS], rule)


def _covariates_of(spec: TaskSpec, ds: Dataset, prefix: bool) -> list[Covariate]:
    if spec.model.exogenous == "none":
        return []
    out = []
    for col in ds.value_columns:
        if not ds.released(col):
            continue
        if spec.join.kind == "horizontal" and col == spec.model.target.column:
            continue
        if ds.name == spec.model.target.dataset and col == spec.model.target.column:
            continue
        availability = ds.availability_of(col)
        if availability is None:
            raise _refuse(
                f"dataset {ds.name!r}: covariate {col!r} does not say when it is known",
                "analysis.covariate.availability",
                dataset=ds.name,
                column=col,
            )
        name = f"{ds.name}__{col}" if prefix else col
        out.append(Covariate(name, ds.party, ds.name, col, availability))
    return out


def _joined(
    spec: TaskSpec, frames: dict[str, pd.DataFrame], grid: Grid, repairs: list[Repair]
) -> Panel:
    """Series from the series datasets, then every other dataset's covariates on them."""
    target = spec.target_dataset()
    horizontal = spec.join.kind == "horizontal"
    column = spec.model.target.column
    shared = _covariates_of(spec, target, prefix=not horizontal)
    parts: list[pd.DataFrame] = []
    lookups: list[pd.DataFrame] = []
    series_party: dict[str, str] = {}
    holders = spec.series_datasets()
    for ds in holders:
        frame = frames[ds.name]
        keys = _keys_of(spec, ds)
        uid = series_ids(frame, keys, ds.name)
        if horizontal:
            uid = ds.party + "/" + uid.astype("object")
        part = pd.DataFrame({ID: uid.to_numpy(), DS: frame[DS].to_numpy(), Y: frame[column]})
        for c in shared:
            part[c.name] = frame[c.column].to_numpy()
        part = _fill_target(spec, part, grid, ds, repairs)
        on_keys = [k for k in keys if k in spec.join.on]
        lookups.append(
            pd.DataFrame(
                {ID: uid.to_numpy(), **{k: frame[k].to_numpy() for k in on_keys}}
            ).drop_duplicates(ID)
        )
        series_party.update(dict.fromkeys(part[ID].unique().tolist(), ds.party))
        parts.append(part)
    panel = pd.concat(parts, ignore_index=True)
    lookup = pd.concat(lookups, ignore_index=True)
    # A horizontal join's shared covariates are every series holder's own column.
    covariates = (
        [Covariate(c.name, "*", c.dataset, c.column, c.availability) for c in shared]
        if horizontal
        else list(shared)
    )
    for ds in spec.datasets:
        if any(h.name == ds.name for h in holders):
            continue
        these = _covariates_of(spec, ds, prefix=True)
        if not these:
            continue
        frame = frames[ds.name]
        join_keys = [k for k in _keys_of(spec, ds) if k in lookup.columns]
        right = frame[[*join_keys, DS, *[c.column for c in these]]].rename(
            columns={c.column: c.name for c in these}
        )
        left = panel.merge(lookup[[ID, *join_keys]], on=ID, how="left") if join_keys else panel
        merged = left.merge(right, on=[*join_keys, DS], how="left", validate="many_to_one")
        if not bool(merged[[c.name for c in these]].notna().any(axis=None)):
            raise _refuse(
                f"dataset {ds.name!r} has no row at any {ds.time_column!r} (and key) of the "
                f"target {target.name!r}: nothing to join",
                "analysis.join.no_overlap",
                dataset=ds.name,
                column=ds.time_column,
            )
        panel = merged.drop(columns=join_keys)
        covariates += these
    panel = _fill_covariates(spec, panel, covariates, repairs)
    # A series whose covariates never all exist was trimmed away: it is no series of the task.
    present = set(panel[ID].unique().tolist())
    series_party = {u: p for u, p in series_party.items() if u in present}
    return Panel(panel, grid, target.party, covariates, series_party, repairs)


def _fill_target(
    spec: TaskSpec, panel: pd.DataFrame, grid: Grid, ds: Dataset, repairs: list[Repair]
) -> pd.DataFrame:
    """Every series on the full grid between its first and last observation."""
    column = spec.model.target.column
    observed = panel[panel[Y].notna()]
    if observed.empty:
        raise _refuse(
            f"dataset {ds.name!r}: the target column {column!r} is empty (all null)",
            "analysis.target.all_null",
            dataset=ds.name,
            column=column,
        )
    bounds = observed.groupby(ID, sort=True)[DS].agg(["min", "max"])
    index = pd.MultiIndex.from_tuples(
        [(uid, t) for uid, (lo, hi) in bounds.iterrows() for t in grid.range(lo, hi)],
        names=[ID, DS],
    )
    full = panel.set_index([ID, DS]).reindex(index)
    gaps = int(full[Y].isna().sum())
    if gaps:
        rule = spec.join.target_gaps
        if rule == "refuse":
            series = int(full[Y].isna().groupby(level=ID).any().sum())
            raise _refuse(
                f"dataset {ds.name!r}: the target {column!r} misses {gaps} periods inside "
                f"{series} series (join.target_gaps chooses a fill)",
                "analysis.target.gaps",
                dataset=ds.name,
                column=column,
                rows=gaps,
            )
        repairs.append(Repair("analysis.target.gaps", ds.name, column, gaps))
        by_series = full[Y].groupby(level=ID, group_keys=False)
        if rule == "zero":
            full[Y] = full[Y].fillna(0.0)
        elif rule == "ffill":
            full[Y] = by_series.ffill()
        else:
            full[Y] = by_series.apply(lambda s: s.interpolate(method="linear", limit_area="inside"))
    return full.reset_index()


def _fill_covariates(
    spec: TaskSpec, panel: pd.DataFrame, covariates: list[Covariate], repairs: list[Repair]
) -> pd.DataFrame:
    """Covariates where the target exists: filled forward in time only (never from the
    future), and the target trimmed where a covariate has not started yet."""
    panel = panel.sort_values([ID, DS], kind="stable").reset_index(drop=True)
    if not covariates:
        return panel
    rule = spec.join.covariate_gaps
    for c in covariates:
        missing = int(panel[c.name].isna().sum())
        if not missing:
            continue
        if rule == "refuse":
            raise _refuse(
                f"dataset {c.dataset!r}: covariate {c.column!r} is missing at {missing} "
                "target periods (join.covariate_gaps chooses a fill)",
                "analysis.covariate.gaps",
                dataset=c.dataset,
                column=c.column,
                rows=missing,
            )
        repairs.append(Repair("analysis.covariate.gaps", c.dataset, c.column, missing))
        if rule == "zero":
            panel[c.name] = panel[c.name].fillna(0.0)
        else:
            panel[c.name] = panel.groupby(ID, sort=False)[c.name].ffill()
    names = [c.name for c in covariates]
    # The covariate that starts last is the one that leaves nothing, if anything does.
    latest = max(covariates, key=lambda c: int(panel[c.name].isna().sum()))
    started = panel[names].notna().all(axis=1).groupby(panel[ID]).cummax()
    trimmed = int((~started).sum())
    if trimmed:
        repairs.append(Repair("analysis.covariate.trimmed", "*", ID, trimmed))
        panel = panel[started.to_numpy()].reset_index(drop=True)
    if panel.empty:
        raise _refuse(
            f"no target period has every covariate (dataset {latest.dataset!r}, column "
            f"{latest.column!r} starts last): nothing to train on",
            "analysis.join.no_overlap",
            dataset=latest.dataset,
            column=latest.column,
        )
    return panel


def _check_target(spec: TaskSpec, panel: Panel) -> None:
    frame = panel.frame
    column = spec.model.target.column
    # The dataset each series came from: the target's, or (horizontal) its party's.
    holder = {d.party: d.name for d in reversed(spec.series_datasets())}

    def datasets_of(uids: object) -> list[str]:
        return sorted({holder[panel.series_party[u]] for u in pd.unique(pd.Series(uids))})

    finite = np.isfinite(frame[Y].to_numpy(dtype="float64"))
    if not bool(finite.all()):
        bad = int((~finite).sum())
        where = datasets_of(frame[ID].to_numpy()[~finite])
        raise _refuse(
            f"dataset {', '.join(map(repr, where))}: the target {column!r} has {bad} missing "
            "or infinite values after the join",
            "analysis.target.non_finite",
            dataset=where[0],
            column=column,
            rows=bad,
        )
    spread = frame.groupby(ID)[Y].agg(lambda s: s.max() - s.min())
    flat = spread.index[(spread == 0).to_numpy()]
    if len(flat):
        where = datasets_of(flat)
        raise _refuse(
            f"dataset {', '.join(map(repr, where))}: {len(flat)} of {len(spread)} series of "
            f"the target {column!r} are constant: no model can be scored on them (MASE is "
            "undefined)",
            "analysis.target.constant",
            dataset=where[0],
            column=column,
            rows=len(flat),
        )
    panel.frame = panel.frame[[ID, DS, Y, *[c.name for c in panel.covariates]]]
