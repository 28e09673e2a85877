"""A PromQL query over a fixed window of a Prometheus-compatible store (Prometheus,
VictoriaMetrics), read through ``/api/v1/query_range`` page by page.

The server caps the points per series of one query (Prometheus: 11,000; VictoriaMetrics:
``-search.maxPointsPerTimeseries``, 30,000 by default), so the window is cut into pages of at
most :data:`MAX_STEPS` steps on the grid ``start + k * step``; each page's steps follow the
last one's, so the pages partition the grid and their rows are in time order. A page holds
about :data:`PAGE_POINTS` points: its step count adapts to the number of series the previous
page returned, so memory stays bounded however many series the query matches (and the
adaptation depends only on the data, so a re-read pages the same way). The window is fixed
in the URL (``start``, ``end``): data keeps arriving in such a store, and only a fixed window
reads the same rows twice.

Labels become string entity columns (an absent label is the empty string, as in PromQL),
the sample value one float column (``value=NAME``, default ``value``); or, with
``query.NAME=PROMQL`` once per column, one float column per query, the queries' series
joined on the time and the requested labels (a full outer join: a row where one query has
a sample, the others' columns null where they have none). A step at which a
series has no sample (before it starts, after a stale marker, past the lookback) is no row;
a NaN sample is a missing value (null): the task's gap rules fill or refuse both.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from itertools import chain
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from chronoseal.errors import DataError

from ._series import PAGE_TIME, TIME_TYPE, SeriesSource, bad_param, parse_duration_ms, parse_instant
from ._url import SourceUrl

#: Steps per page at most (one more at the end of the window): under Prometheus's 11,000
#: points per series per query.
MAX_STEPS = 10_000
#: Points per page the paging aims for (about 10 MB of JSON decoded at a time).
PAGE_POINTS = 200_000
#: Steps of the first page, before the series count is known.
FIRST_STEPS = 100
_LABEL = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_METRIC_SELECTOR = re.compile(r"^\s*([A-Za-z_:][A-Za-z0-9_:]*)\s*(\{.*\})?\s*$", re.DOTALL)


def _seconds(ms: int) -> str:
    return f"{ms // 1000}.{ms % 1000:03d}"


class PrometheusSource(SeriesSource):
    """The samples a PromQL query yields at each step of a fixed window."""

    _pages_sorted = True

    def __init__(self, location: SourceUrl, base_dir: Path | None = None) -> None:
        super().__init__(location, base_dir)
        self._step = parse_duration_ms(location, "step")
        start, end = parse_instant(location, "start"), parse_instant(location, "end")
        if start is None or end is None or end < start:
            raise bad_param(location, "the window needs start <= end")
        if start % 1_000_000 or end % 1_000_000:
            raise bad_param(location, "start and end are read to the millisecond")
        self._start, self._end = start // 1_000_000, end // 1_000_000
        named = [
            (k.removeprefix("query."), v) for k, v in location.params if k.startswith("query.")
        ]
        if named:
            self._queries = named
        else:
            value = location.param("value") or "value"
            if not _LABEL.fullmatch(value):
                raise bad_param(location, f"value={value!r} is not a column name")
            self._queries = [(value, location.param("query") or "")]
        self._values = [name for name, _ in self._queries]
        self._steps = (self._end - self._start) // self._step + 1

    def _window(self) -> dict[str, str]:
        return {"start": _seconds(self._start), "end": _seconds(self._end)}

    def _api(self, path: str, params: dict[str, str]) -> Any:
        doc = self._http.get_json(path, params)
        if not isinstance(doc, dict) or doc.get("status") != "success":
            kind = doc.get("errorType") if isinstance(doc, dict) else None
            error = doc.get("error") if isinstance(doc, dict) else doc
            # Prometheus: bad_data (HTTP 400); VictoriaMetrics: "422".
            if kind in ("bad_data", "422"):
                raise DataError(
                    f"{self.url}: the server cannot run the query: {error}",
                    id="data.source.bad_url",
                    context={"source": self.url},
                )
            raise DataError(
                f"{self.url}: the server answered {kind or 'an error'}: {error}",
                id="data.source.unavailable",
                context={"source": self.url},
            )
        return doc.get("data")

    def _columns(self) -> pa.Schema:
        # Every label name in the store within the window: cheap, and a superset of the
        # labels the query's series can carry.
        labels = self._api("/api/v1/labels", self._window()) or []
        columns = [pa.field(str(name), pa.string()) for name in labels if name not in self._values]
        values = [pa.field(name, pa.float64()) for name in self._values]
        return pa.schema([*sorted(columns, key=lambda f: f.name), *values])

    def _probe(self) -> None:
        selectors = [_METRIC_SELECTOR.match(q) for _, q in self._queries]
        metrics = [m.group(1) for m in selectors if m is not None]
        if metrics:
            names = set(self._api("/api/v1/label/__name__/values", self._window()) or [])
            for metric in metrics:
                if metric not in names:
                    raise DataError(
                        f"{self.url}: the store has no metric {metric!r} in the window",
                        id="data.source.missing",
                        context={"source": self.url, "metric": metric},
                    )
        for page in self._pages(self._values):
            if page.num_rows:
                return
        raise DataError(
            f"{self.url}: the query yields no sample in the window",
            id="data.source.empty",
            context={"source": self.url},
        )

    def _range(self, query: str, start: int, end: int) -> list[dict[str, Any]]:
        data = self._api(
            "/api/v1/query_range",
            {
                "query": query,
                "start": _seconds(start),
                "end": _seconds(end),
                "step": _seconds(self._step),
            },
        )
        if not isinstance(data, dict) or data.get("resultType") != "matrix":
            kind = data.get("resultType") if isinstance(data, dict) else None
            raise DataError(
                f"{self.url}: the query yields a {kind}, not a range of series",
                id="data.source.bad_url",
                context={"source": self.url},
            )
        result: list[dict[str, Any]] = data.get("result") or []
        return result

    def _pages(self, names: list[str]) -> Iterator[pa.Table]:
        # The queries of the requested value columns (all of them when none is requested):
        # a row is an instant and label set at which at least one of them has a sample.
        wanted = [n for n in names if n in self._values] or self._values
        queries = [(n, q) for n, q in self._queries if n in wanted]
        labels = [n for n in names if n not in self._values]
        first, steps = 0, FIRST_STEPS
        while first < self._steps:
            # Never a page of one step (VictoriaMetrics answers start == end with nothing
            # where a longer range has a point), nor a last page of one.
            left = self._steps - first
            count = min(max(steps, 2), MAX_STEPS, left)
            if left - count == 1:
                count = left
            start = self._start + first * self._step
            end = start + (count - 1) * self._step
            results = [(n, self._range(q, start, end)) for n, q in queries]
            if len(results) == 1:
                yield self._page(results[0][1], labels, results[0][0])
            else:
                yield self._joined(results, labels)
            first += count
            series = sum(len(result) for _, result in results)
            steps = max(1, PAGE_POINTS // max(1, series))

    def _joined(
        self, results: list[tuple[str, list[dict[str, Any]]]], labels: list[str]
    ) -> pa.Table:
        """Several queries' series side by side: joined on the time and requested labels."""
        keys = [PAGE_TIME, *labels]
        joined: pa.Table | None = None
        for name, result in results:
            table = self._page(result, labels, name, ordered=False)
            if joined is None:
                joined = table
            else:
                joined = joined.join(table, keys=keys, join_type="full outer")
        assert joined is not None
        values = [name for name, _ in results]
        sort = [(k, "ascending") for k in [*keys, *values]]
        return joined.sort_by(sort, null_placement="at_end")

    def _page(
        self, result: list[dict[str, Any]], labels: list[str], value: str, *, ordered: bool = True
    ) -> pa.Table:
        """One query's series as rows (time, ``labels``, ``value``); ``ordered``: sorted."""
        samples = [series.get("values") or [] for series in result]
        lengths = [len(s) for s in samples]
        # [t0, v0, t1, v1, ...] in C loops, then every other item: no per-point Python code.
        flat = list(chain.from_iterable(chain.from_iterable(samples)))
        times, values = flat[0::2], flat[1::2]
        ms = pc.round(pc.multiply(pa.array(times, pa.float64()), 1000.0))
        stamps = pc.multiply(ms.cast(pa.int64()), 1000).cast(TIME_TYPE)
        number = pa.array(values, pa.string()).cast(pa.float64())
        number = pc.if_else(pc.is_nan(number), pa.scalar(None, pa.float64()), number)
        which = pa.array(np.repeat(np.arange(len(lengths), dtype=np.int32), lengths))
        columns: dict[str, pa.Array] = {PAGE_TIME: stamps}
        for name in labels:
            found = [str((s.get("metric") or {}).get(name, "")) for s in result]
            columns[name] = pa.array(found, pa.string()).take(which)
        columns[value] = number
        table = pa.table(columns)
        if len(result) < 2 or not ordered:
            return table
        # Sorted here by (time, the series' requested labels, value): the labels compared
        # once per series (Python orders text by code point, as UTF-8 bytes do), so the sort
        # itself is on numbers alone.
        key = [[str((s.get("metric") or {}).get(n, "")) for n in labels] for s in result]
        ranks = [0] * len(result)
        for rank, i in enumerate(sorted(range(len(result)), key=key.__getitem__)):
            ranks[i] = rank
        order = pc.sort_indices(
            pa.table({"t": stamps, "rank": pa.array(ranks, pa.int32()).take(which), "v": number}),
            sort_keys=[("t", "ascending"), ("rank", "ascending"), ("v", "ascending")],
            null_placement="at_end",
        )
        return table.take(order)
