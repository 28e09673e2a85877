"""A requester's own newest observations, sent with a forecast request (``--input``).

A recipient that holds series of the model (the target dataset's party in a vertical join,
any series holder in a horizontal one) may send the rows it has observed since the training
window, desensitized by its gateway under the task's policy. The runtime turns them into the
model's rows exactly as the analysis runtime's join did (UTC times on the model's grid,
series ids from the released entity columns) and checks them before anything is forecast:
the released columns and nothing else, times on the grid in strictly increasing order per
series, only series the model knows (and, horizontally, the requester's own), starting right
after each series' history without a gap, finite values. The covariates the model needs at
those times come from the requester's own rows or from the feeds; a past-only covariate of
another party cannot be had for them, so such a model takes no input. Each refusal has its
id and names counts, never a value.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa

from chronoseal.errors import PeerRefused
from chronoseal.model import (
    DS,
    ID,
    Grid,
    LoadedModel,
    LocalTimeError,
    TimeRangeError,
    Y,
    ZoneTimeError,
    as_float,
    is_time,
    series_ids,
    to_utc,
)
from chronoseal.spec import Dataset, TaskSpec

#: The most an input may carry: observations since training, not a second training set.
MAX_INPUT_BYTES = 16 * 1024 * 1024
MAX_INPUT_ROWS = 100_000


def _refuse(message: str, id: str) -> PeerRefused:
    return PeerRefused(message, id=id)


def input_dataset(spec: TaskSpec, party: str) -> Dataset:
    """The series dataset ``party`` holds: the one its observations belong to."""
    held = [d for d in spec.series_datasets() if d.party == party]
    if not held:
        raise _refuse(
            f"{party} holds no series of this model, so it has no observations of its own to "
            "send with a request (only the holder of a series dataset can)",
            "prediction.input.not_holder",
        )
    return held[0]


def covariate_name(spec: TaskSpec, dataset: Dataset, column: str) -> str:
    """A covariate's name in the model, as the join named it: ``dataset__column``, except a
    horizontal join's columns of the series datasets themselves (shared by every holder)."""
    holder = any(d.name == dataset.name for d in spec.series_datasets())
    return column if spec.join.kind == "horizontal" and holder else f"{dataset.name}__{column}"


def observation_rows(
    spec: TaskSpec,
    party: str,
    table: pa.Table,
    model: LoadedModel,
    feeds: dict[str, pd.DataFrame],
) -> pd.DataFrame:
    """The model's rows (``unique_id``, ``ds``, ``y`` and the raw covariates the recipe
    uses) for ``party``'s desensitized observations, or a refusal."""
    ds = input_dataset(spec, party)
    recipe = model.recipe
    released = ds.released_columns()
    names = table.column_names
    if sorted(names) != sorted(released) or len(set(names)) != len(names):
        extra = sorted(set(names) - set(released))
        absent = [c for c in released if c not in names]
        raise _refuse(
            f"the observations of {ds.name!r} must carry exactly its released columns "
            f"({', '.join(released)})"
            + (f"; missing {', '.join(absent)}" if absent else "")
            + (f"; not released: {', '.join(extra)}" if extra else ""),
            "prediction.input.columns",
        )
    n = table.num_rows
    if n == 0:
        raise _refuse("the observations hold no rows", "prediction.input.empty")
    if n > MAX_INPUT_ROWS:
        raise _refuse(
            f"the observations hold {n} rows; at most {MAX_INPUT_ROWS} are taken with a request",
            "prediction.input.too_large",
        )
    column = table.column(ds.time_column)
    if not is_time(column.type):
        raise _refuse(
            f"time column {ds.time_column!r} is {column.type}, not a date or timestamp",
            "prediction.input.time",
        )
    try:
        times = to_utc(column, spec.join.naive_timezone, recipe.freq)
    except (TimeRangeError, LocalTimeError) as exc:
        raise _refuse(
            f"column {ds.time_column!r}: {exc.message}", "prediction.input.time"
        ) from None
    except ZoneTimeError as exc:
        raise _refuse(
            f"column {ds.time_column!r}: {exc.message}", "prediction.input.not_local_midnight"
        ) from None
    nulls = int(times.isna().sum())
    if nulls:
        raise _refuse(
            f"{nulls} of {n} observations have no time in {ds.time_column!r}",
            "prediction.input.null_time",
        )
    grid = Grid.parse(recipe.freq)
    snapped = grid.snap(times)
    off = int((snapped != times).sum())
    if off and spec.join.off_grid == "refuse":
        raise _refuse(
            f"{off} of {n} times in {ds.time_column!r} are not on the model's {grid.alias!r} grid "
            "(wrong frequency?)",
            "prediction.input.frequency",
        )
    frame = pd.DataFrame({DS: snapped.to_numpy()})
    keys = [c for c in ds.entity_columns if ds.released(c)]
    for key in keys:
        values = pd.Series(table.column(key).to_pandas()).astype("string")
        blank = int(values.isna().sum())
        if blank:
            raise _refuse(
                f"{blank} of {n} observations have no value in entity column {key!r}",
                "prediction.input.null_key",
            )
        frame[key] = values.to_numpy()
    uid = series_ids(frame, keys, ds.name)
    if spec.join.kind == "horizontal":
        uid = party + "/" + uid.astype("object")
    frame[ID] = uid.to_numpy()
    unknown = sorted(set(frame[ID]) - set(model.series))
    if unknown:
        raise _refuse(
            f"the observations name {len(unknown)} series the model does not know",
            "prediction.input.unknown_series",
        )
    _check_order(frame, grid, model)
    frame[Y] = as_float(pd.Series(table.column(spec.model.target.column).to_pandas())).to_numpy()
    own = {covariate_name(spec, ds, c): c for c in ds.value_columns if ds.released(c)}
    for name in [*recipe.future_known, *recipe.past_only]:
        if name in own:
            frame[name] = as_float(pd.Series(table.column(own[name]).to_pandas())).to_numpy()
    foreign_past = [c for c in recipe.past_only if c not in own]
    if foreign_past:
        raise _refuse(
            f"the model lags past-only covariates of other parties ({', '.join(foreign_past)}); "
            "their values at the observed times are not known here, so it takes no input",
            "prediction.input.unsupported",
        )
    frame = _with_feeds(spec, frame, [c for c in recipe.future_known if c not in own], feeds)
    values = [Y, *[c for c in [*recipe.future_known, *recipe.past_only] if c in frame]]
    bad = int((~np.isfinite(frame[values].to_numpy(dtype="float64")).all(axis=1)).sum())
    if bad:
        raise _refuse(
            f"{bad} of {n} observations have a missing or infinite value",
            "prediction.input.non_finite",
        )
    return frame[[ID, DS, *values]].reset_index(drop=True)


def _check_order(frame: pd.DataFrame, grid: Grid, model: LoadedModel) -> None:
    """Per series: strictly increasing as sent, starting the period after its history ends
    and leaving no period out (a lag over a gap would be computed from the wrong value)."""
    last = model.history.groupby(ID, sort=True)[DS].max()
    for uid, rows in frame.groupby(ID, sort=True):
        times = pd.DatetimeIndex(rows[DS])
        if times.has_duplicates:
            raise _refuse(
                f"{int(times.duplicated().sum())} observations repeat a (series, time) key",
                "prediction.input.duplicate",
            )
        if not times.is_monotonic_increasing:
            raise _refuse(
                "the observations of a series are not in increasing time order",
                "prediction.input.order",
            )
        end = pd.Timestamp(last[uid])
        early = int((times <= end).sum())
        if early:
            raise _refuse(
                f"{early} observations of a series are at or before the end of the model's "
                f"history ({end.date() if end == end.normalize() else end}): send only newer rows",
                "prediction.input.overlap",
            )
        expected = grid.range(end, times[-1])[1:]
        if len(expected) != len(times) or not (expected == times).all():
            raise _refuse(
                f"the observations of a series leave {len(expected) - len(times)} periods out "
                f"between the model's history ({end}) and their last time",
                "prediction.input.gap",
            )


def _with_feeds(
    spec: TaskSpec, frame: pd.DataFrame, wanted: list[str], feeds: dict[str, pd.DataFrame]
) -> pd.DataFrame:
    """The future-known covariates of other parties at the observed times, from their feeds;
    a feed that does not reach back over them is stale for this request."""
    for name in wanted:
        feed = next((f for f in feeds.values() if name in f.columns), None)
        if feed is None:
            raise _refuse(f"no feed carries {name}", "prediction.feed.missing")
        frame = frame.merge(feed[[DS, name]], on=DS, how="left")
        gaps = int(frame[name].isna().sum())
        if gaps:
            raise _refuse(
                f"the feed carrying {name} does not cover {gaps} of the observed periods",
                "prediction.feed.stale",
            )
    return frame
