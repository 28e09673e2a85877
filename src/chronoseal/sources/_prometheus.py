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
the sample value one float column (``value=NAME``, default ``value``). A step at which a
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
        self._query_text = location.param("query") or ""
        self._step = parse_duration_ms(location, "step")
        start, end = parse_instant(location, "start"), parse_instant(location, "end")
        if start is None or end is None or end < start:
            raise bad_param(location, "the window needs start <= end")
        if start % 1_000_000 or end % 1_000_000:
            raise bad_param(location, "start and end are read to the millisecond")
        self._start, self._end = start // 1_000_000, end // 1_000_000
        self._value = location.param("value") or "value"
        if not _LABEL.fullmatch(self._value):
            raise bad_param(location, f"value={self._value!r} is not a column name")
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
        columns = [pa.field(str(name), pa.string()) for name in labels if name != self._value]
        return pa.schema(
            [*sorted(columns, key=lambda f: f.name), pa.field(self._value, pa.float64())]
        )

    def _probe(self) -> None:
        selector = _METRIC_SELECTOR.match(self._query_text)
        if selector is not None:
            names = self._api("/api/v1/label/__name__/values", self._window()) or []
            if selector.group(1) not in names:
                raise DataError(
                    f"{self.url}: the store has no metric {selector.group(1)!r} in the window",
                    id="data.source.missing",
                    context={"source": self.url, "metric": selector.group(1)},
                )
        for page in self._pages([self._value]):
            if page.num_rows:
                return
        raise DataError(
            f"{self.url}: the query yields no sample in the window",
            id="data.source.empty",
            context={"source": self.url},
        )

    def _pages(self, names: list[str]) -> Iterator[pa.Table]:
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
            data = self._api(
                "/api/v1/query_range",
                {
                    "query": self._query_text,
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
            result = data.get("result") or []
            yield self._page(result, names)
            first += count
            steps = max(1, PAGE_POINTS // max(1, len(result)))

    def _page(self, result: list[dict[str, Any]], names: list[str]) -> pa.Table:
        samples = [series.get("values") or [] for series in result]
        lengths = [len(s) for s in samples]
        # [t0, v0, t1, v1, ...] in C loops, then every other item: no per-point Python code.
        flat = list(chain.from_iterable(chain.from_iterable(samples)))
        times, values = flat[0::2], flat[1::2]
        ms = pc.round(pc.multiply(pa.array(times, pa.float64()), 1000.0))
        stamps = pc.multiply(ms.cast(pa.int64()), 1000).cast(TIME_TYPE)
        number = pa.array(values, pa.string()).cast(pa.float64())
        number = pc.if_else(pc.is_nan(number), pa.scalar(None, pa.float64()), number)
        which = None
        if len(result) > 1:
            which = pa.array(np.repeat(np.arange(len(lengths), dtype=np.int32), lengths))
        columns: dict[str, pa.Array] = {PAGE_TIME: stamps}
        for name in names:
            if name == self._value:
                columns[name] = number
                continue
            labels = pa.array(
                [str((s.get("metric") or {}).get(name, "")) for s in result], pa.string()
            )
            if which is None:
                columns[name] = pa.repeat(labels[0], len(times)) if result else labels
            else:
                columns[name] = labels.take(which)
        table = pa.table(columns)
        if len(result) < 2:
            return table
        # Sorted here by (time, the series' requested labels, value): the labels compared
        # once per series (Python orders text by code point, as UTF-8 bytes do), so the sort
        # itself is on numbers alone.
        label_names = [n for n in names if n != self._value]
        key = [[str((s.get("metric") or {}).get(n, "")) for n in label_names] for s in result]
        ranks = [0] * len(result)
        for rank, i in enumerate(sorted(range(len(result)), key=key.__getitem__)):
            ranks[i] = rank
        assert which is not None
        keys = {PAGE_TIME: stamps, "rank": pa.array(ranks, pa.int32()).take(which)}
        sort = [(PAGE_TIME, "ascending"), ("rank", "ascending")]
        if self._value in names:
            keys["value"] = number
            sort.append(("value", "ascending"))
        order = pc.sort_indices(pa.table(keys), sort_keys=sort, null_placement="at_end")
        return table.take(order)
