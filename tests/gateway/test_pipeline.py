"""Prefetching keeps order, bounds memory, and never swallows a producer's error."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest

from chronoseal.errors import DataError
from chronoseal.gateway._pipeline import prefetch


def test_items_arrive_in_order() -> None:
    assert list(prefetch(iter(range(100)), depth=3)) == list(range(100))


def test_producer_never_runs_more_than_depth_ahead() -> None:
    produced: list[int] = []

    def source() -> Iterator[int]:
        for i in range(50):
            produced.append(i)
            yield i

    it = prefetch(source(), depth=2)
    assert next(it) == 0
    time.sleep(0.3)  # give the producer every chance to run ahead
    assert len(produced) <= 1 + 2 + 1  # consumed + queued + one blocked in put
    it.close()


def test_a_producer_error_reaches_the_consumer() -> None:
    def source() -> Iterator[int]:
        yield 1
        raise DataError("source vanished", id="data.source.unavailable")

    it = prefetch(source())
    assert next(it) == 1
    with pytest.raises(DataError) as info:
        next(it)
    assert info.value.id == "data.source.unavailable"


def test_closing_early_stops_the_producer() -> None:
    def source() -> Iterator[int]:
        yield from range(10_000)

    earlier = set(threading.enumerate())  # another test's threads may still be winding down
    it = prefetch(source(), depth=1)
    assert next(it) == 0
    it.close()
    assert not _prefetching(earlier)


def test_closing_early_stops_every_stage_of_a_chain() -> None:
    # the gateway chains two stages (read; desensitize and encode): closing the last one
    # must end the first one's thread too, not leave it waiting for a slot
    def source() -> Iterator[int]:
        yield from range(10_000)

    def stage(items: Iterator[int]) -> Iterator[int]:
        for item in items:
            yield item * 2

    earlier = set(threading.enumerate())
    middle = stage(prefetch(source(), depth=4))  # still referenced, as a caller's may be
    it = prefetch(middle, depth=4)
    assert next(it) == 0
    it.close()
    assert not _prefetching(earlier)


def _prefetching(earlier: set[threading.Thread]) -> list[threading.Thread]:
    """Prefetch threads started since ``earlier`` that are still running."""
    return [
        t
        for t in threading.enumerate()
        if t.name == "chronoseal-prefetch" and t.is_alive() and t not in earlier
    ]
