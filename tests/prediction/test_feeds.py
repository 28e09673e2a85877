"""A feed is read as the join read the training rows: the same zone rule, the same grid
rule, the same rule for repeated times — otherwise covariates would line up with the wrong
periods at prediction time while the model was trained on them aligned."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pyarrow as pa
import pytest

from chronoseal.errors import PeerRefused
from chronoseal.prediction._feeds import feed_frame
from chronoseal.spec import TaskSpec, load_spec

CHICAGO = Path(__file__).resolve().parents[2] / "examples" / "chicago" / "task.toml"


def _spec(tmp_path: Path, **join: str) -> TaskSpec:
    extra = "".join(f'\n{k} = "{v}"' for k, v in join.items())
    text = CHICAGO.read_text().replace('on = ["date"]', 'on = ["date"]' + extra, 1)
    (tmp_path / "task.toml").write_text(text)
    return load_spec(tmp_path / "task.toml")


def _games(times: list[dt.datetime | dt.date], kind: pa.DataType) -> pa.Table:
    n = len(times)
    return pa.table(
        {
            "date": pa.array(times, kind),
            **{
                c: pa.array([float(i) for i in range(n)])
                for c in ("blackhawks_home", "bulls_home", "bears_home", "whitesox_home")
            },
            "cubs_home": pa.array([1.0] * n),
        }
    )


def test_on_a_daily_grid_times_stay_on_their_local_day(tmp_path: Path) -> None:
    """The join's zone rule: a naive Chicago evening is its own wall-clock day (not the UTC
    day it falls on), an aware Tokyo midnight its own date; an aware noon is refused."""
    spec = _spec(tmp_path, naive_timezone="America/Chicago", off_grid="floor")
    games = spec.dataset("home_games")
    assert games is not None
    late = [dt.datetime(2016, 8, 15, 22), dt.datetime(2016, 8, 16, 22)]  # 03:00 UTC next day
    frame = feed_frame(spec, games, _games(late, pa.timestamp("s")))
    assert [str(t.date()) for t in frame["ds"]] == ["2016-08-15", "2016-08-16"]
    tokyo = dt.timezone(dt.timedelta(hours=9))
    midnights = [dt.datetime(2016, 8, 15, tzinfo=tokyo), dt.datetime(2016, 8, 16, tzinfo=tokyo)]
    frame = feed_frame(spec, games, _games(midnights, pa.timestamp("s", tz="Asia/Tokyo")))
    assert [str(t.date()) for t in frame["ds"]] == ["2016-08-15", "2016-08-16"]
    noon = [dt.datetime(2016, 8, 15, 12, tzinfo=tokyo)]
    with pytest.raises(PeerRefused) as refused:
        feed_frame(spec, games, _games(noon, pa.timestamp("s", tz="Asia/Tokyo")))
    assert refused.value.id == "prediction.feed.time"
    assert "12" not in refused.value.message and "2016" not in refused.value.message


def test_off_grid_and_repeated_times_follow_the_join_rules(tmp_path: Path) -> None:
    strict = _spec(tmp_path)
    games = strict.dataset("home_games")
    assert games is not None
    noon = _games([dt.datetime(2016, 8, 15, 12)], pa.timestamp("s"))
    with pytest.raises(PeerRefused) as off:
        feed_frame(strict, games, noon)
    assert off.value.id == "prediction.feed.off_grid"
    twice = _games([dt.date(2016, 8, 15), dt.date(2016, 8, 15)], pa.date32())
    with pytest.raises(PeerRefused) as repeated:
        feed_frame(strict, games, twice)
    assert repeated.value.id == "prediction.feed.duplicate_keys"
    (tmp_path / "mean").mkdir()
    averaging = _spec(tmp_path / "mean", duplicates="mean")
    frame = feed_frame(averaging, games, twice)
    assert len(frame) == 1 and frame["home_games__bulls_home"].tolist() == [0.5]
