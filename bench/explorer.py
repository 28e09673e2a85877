"""Explorer benchmark: task-page render time and events read per refresh vs chain length.

    .venv/bin/python bench/explorer.py [--quick]

A consortium on the embedded chain (the explorer tests' world: three members, measurements,
a Serving task, a disputed one, governance) grows by prediction audit roots posted to the
Serving task. At each chain length the same requests go to two explorers built in this run:
``incremental`` (the explorer as shipped: one event cache advanced from its cursor) and
``rescan`` (the baseline: the same app, but every refresh re-reads every event from the
deployment block). Between two page loads one more audit root is posted, as while a task
runs. Figures: p50/p95 of the task page's HTML response over the loads (served in process
by Starlette's TestClient, so no network in the figure) and the events each refresh read.
The last line printed is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from starlette.testclient import TestClient

from chronoseal.explorer import EventCache, Refresh, create_app
from chronoseal.explorer._cache import Index
from chronoseal.ledger import Consortium, EmbeddedChain, EventStream

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "explorer"))
from explorer_world import ExplorerWorld, build_explorer_world  # noqa: E402


class RescanCache(EventCache):
    """The baseline: forget everything and read the whole history on each refresh."""

    def refresh(self) -> Refresh:
        with self.lock:
            self._stream = EventStream(self.consortium, from_block=self.from_block)
            self._events = []
            self.index = Index()
            return super().refresh()


def client(consortium: Consortium, rescan: bool) -> TestClient:
    app = create_app(consortium)
    if rescan:
        app.state.explorer.cache = RescanCache(consortium)
    return TestClient(app)


def events_on_chain(world: ExplorerWorld) -> int:
    return len(EventStream(world.consortium, from_block=world.consortium.deploy_block).poll())


def grow(world: ExplorerWorld, target: int, batch: list[int]) -> None:
    """Post audit roots to the Serving task until the chain holds ``target`` events."""
    missing = target - events_on_chain(world)
    for _ in range(max(missing, 0)):
        world.audit_root(world.tasks["serving"], batch[0])
        batch[0] += 1


def measure(world: ExplorerWorld, c: TestClient, loads: int, batch: list[int]) -> dict[str, Any]:
    """``loads`` task-page loads after a warm-up, one new event before each; times and
    events read."""
    path = f"/tasks/0x{world.tasks['serving'].hex()}"
    assert c.get(path).status_code == 200  # warm: the cursor is at the chain's head
    times, reads, blocks = [], [], []
    for _ in range(loads):
        world.audit_root(world.tasks["serving"], batch[0])
        batch[0] += 1
        began = time.perf_counter()
        response = c.get(path)
        times.append(time.perf_counter() - began)
        assert response.status_code == 200, response.text[:300]
        last = c.app.state.explorer.cache.last  # type: ignore[attr-defined]
        reads.append(last.events_read)
        blocks.append(last.blocks_read)
    times.sort()
    return {
        "p50_ms": round(statistics.median(times) * 1000, 1),
        "p95_ms": round(times[min(len(times) - 1, int(len(times) * 0.95))] * 1000, 1),
        "events_read_per_refresh": round(statistics.mean(reads), 1),
        "blocks_read_per_refresh": round(statistics.mean(blocks), 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="about a minute")
    args = parser.parse_args()
    lengths = (250, 500, 1000) if args.quick else (250, 500, 1000, 2000, 4000)
    loads = 20
    began = time.perf_counter()
    world = build_explorer_world(EmbeddedChain(), batches=0)
    batch = [0]
    incremental = client(world.consortium, rescan=False)
    rescan = client(world.consortium, rescan=True)
    rows: list[dict[str, Any]] = []
    cold_ms: dict[int, float] = {}
    for target in lengths:
        grow(world, target, batch)
        on_chain = events_on_chain(world)
        # time to first render on a cold explorer: the one full read at start-up
        fresh = client(world.consortium, rescan=False)
        t0 = time.perf_counter()
        assert fresh.get(f"/tasks/0x{world.tasks['serving'].hex()}").status_code == 200
        cold_ms[target] = round((time.perf_counter() - t0) * 1000, 1)
        fresh.close()
        row = {
            "events_on_chain": on_chain,
            "incremental": measure(world, incremental, loads, batch),
            "rescan": measure(world, rescan, loads, batch),
            "cold_first_render_ms": cold_ms[target],
        }
        rows.append(row)
        inc, base = row["incremental"], row["rescan"]
        print(
            f"{on_chain:5d} events: task page p50 {inc['p50_ms']:7.1f} ms incremental vs "
            f"{base['p50_ms']:7.1f} ms rescan; events read per refresh "
            f"{inc['events_read_per_refresh']:.1f} vs {base['events_read_per_refresh']:.1f}; "
            f"cold first render {cold_ms[target]:.1f} ms",
            flush=True,
        )
    at_1000 = next(r for r in rows if r["events_on_chain"] >= 1000)
    reads = [r["incremental"]["events_read_per_refresh"] for r in rows]
    result = {
        "bench": "explorer",
        "quick": args.quick,
        "loads_per_length": loads,
        "rows": rows,
        "task_page_p50_ms_1000_events": at_1000["incremental"]["p50_ms"],
        "task_page_p50_ms_1000_events_rescan": at_1000["rescan"]["p50_ms"],
        "speedup_vs_rescan_1000_events": round(
            at_1000["rescan"]["p50_ms"] / at_1000["incremental"]["p50_ms"], 2
        ),
        "events_read_per_refresh_incremental": reads,
        "events_read_per_refresh_rescan": [r["rescan"]["events_read_per_refresh"] for r in rows],
        "incremental_reads_grow_with_chain": max(reads) > min(reads),
        "seconds": round(time.perf_counter() - began, 1),
    }
    print(json.dumps(result, sort_keys=True))


if __name__ == "__main__":
    main()
