"""Read, desensitize and encode ahead of the sender, on one helper thread.

DuckDB's read, Arrow compute and IPC encoding release the GIL, and so does TLS while it
writes, so producing batch i+1 while batch i is encrypted and sent keeps both cores busy.
The queue is bounded: memory stays ``depth`` batches, whatever the table size. An error in
the producer is re-raised in the consumer, never swallowed.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Generator, Iterator
from typing import TypeVar, cast

T = TypeVar("T")
_DONE = object()


def prefetch(items: Iterator[T], depth: int = 2) -> Generator[T, None, None]:
    """Yield ``items`` in order, produced up to ``depth`` ahead on a helper thread."""
    slots: queue.Queue[object] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def produce() -> None:
        try:
            for item in items:
                while not stop.is_set():
                    try:
                        slots.put(item, timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            slots.put(_DONE)
        except BaseException as exc:  # handed to the consumer, which re-raises it
            slots.put(exc)

    worker = threading.Thread(target=produce, name="chronoseal-prefetch", daemon=True)
    worker.start()
    try:
        while True:
            item = slots.get()
            if item is _DONE:
                return
            if isinstance(item, BaseException):
                raise item
            yield cast(T, item)
    finally:
        stop.set()
        worker.join(timeout=5)
