"""What the model families share: bundle parts, Arrow framing, the candidate and fitted
types. No family lookup here, so each family's file imports it without an import cycle."""

from __future__ import annotations

import logging
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import pandas as pd
import pyarrow as pa

from ._features import DS, ID, Recipe

log = logging.getLogger("chronoseal.model")

#: The media type of a bundle part that is an Arrow IPC stream (data, never code).
ARROW = "application/vnd.apache.arrow.stream"


@dataclass(frozen=True)
class Part:
    """One part of a sealed bundle: a name, a media type and its bytes."""

    name: str
    media_type: str
    data: bytes


@contextmanager
def quiet_libraries() -> Iterator[None]:
    """Library advisories (convergence notes, deprecations) go to the log, not to stderr:
    inside a TEE nobody reads stderr, and none of them changes a result."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield
    for w in caught:
        log.debug("library warning: %s: %s", w.category.__name__, w.message)


def arrow_bytes(frame: pd.DataFrame) -> bytes:
    """A frame as an Arrow IPC stream: data, never code, in a sealed bundle."""
    table = pa.Table.from_pandas(frame, preserve_index=False)
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return bytes(sink.getvalue().to_pybytes())


def from_arrow(data: bytes) -> pd.DataFrame:
    return pa.ipc.open_stream(data).read_all().to_pandas()


@dataclass(frozen=True)
class Candidate:
    """One model to back-test: a family's recipe and the series it may learn from."""

    name: str
    recipe: Recipe
    series: tuple[str, ...] | None = None
    intervals: bool = True


@dataclass
class Fitted:
    """A family fitted on the whole panel: the library object, the frame it saw, and the
    recent raw values of past-only covariates (their future lags come from these)."""

    recipe: Recipe
    model: Any
    train: pd.DataFrame
    past: pd.DataFrame | None = None


def recent_past(frame: pd.DataFrame, recipe: Recipe) -> pd.DataFrame | None:
    """The raw values of past-only covariates that their lags at the next horizon read."""
    if not recipe.past_only:
        return None
    keep = max(k for ks in recipe.past_only.values() for k in ks)
    cols = [ID, DS, *recipe.past_only]
    return frame[cols].groupby(ID, sort=False).tail(keep).reset_index(drop=True)
