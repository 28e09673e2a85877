"""One in-memory cache of the consortium's events, advanced incrementally from a cursor.

Every page asks the cache to catch up first: it reads only the blocks after its cursor
(:class:`chronoseal.ledger.EventStream`), never the whole chain again, and records how many
events and blocks that refresh read. A lock serialises the refreshes and every chain read the
pages make, so one explorer never has two requests talking to the node at once.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any

from chronoseal.errors import LedgerError
from chronoseal.ledger import (
    ChainComponent,
    ChainEvent,
    ChainTee,
    Consortium,
    EventStream,
    Pin,
    map_chain_errors,
)

ZERO_ORG = "0x" + "00" * 32


@dataclass(frozen=True)
class Refresh:
    """What one catch-up read: the events found and the block range scanned."""

    events_read: int
    blocks_read: int
    from_block: int
    to_block: int
    seconds: float

    def to_json(self) -> dict[str, Any]:
        return {
            "events_read": self.events_read,
            "blocks_read": self.blocks_read,
            "from_block": self.from_block,
            "to_block": self.to_block,
            "ms": round(self.seconds * 1000, 2),
        }


@dataclass
class Index:
    """What the events say, kept up to date event by event (no chain reads)."""

    org_names: dict[str, str] = field(default_factory=dict)
    key_orgs: dict[str, str] = field(default_factory=dict)
    components: dict[str, str] = field(default_factory=dict)
    tasks: list[str] = field(default_factory=list)
    by_task: dict[str, list[ChainEvent]] = field(default_factory=dict)
    measurements: list[str] = field(default_factory=list)
    by_measurement: dict[str, list[ChainEvent]] = field(default_factory=dict)
    by_proposal: dict[int, list[ChainEvent]] = field(default_factory=dict)
    by_actor: dict[str, list[ChainEvent]] = field(default_factory=dict)
    membership: list[ChainEvent] = field(default_factory=list)

    def add(self, event: ChainEvent) -> None:
        args = event.args
        self.by_actor.setdefault(event.actor, []).append(event)
        if event.name == "MemberAdded":
            self.org_names[args["org"]] = str(args["name"])
            self.key_orgs[args["key"]] = args["org"]
            self.membership.append(event)
        elif event.name in ("MemberRemoved", "KeyRemoved"):
            self.membership.append(event)
        elif event.name == "KeyAdded":
            self.key_orgs[args["key"]] = args["org"]
            self.membership.append(event)
        elif event.name == "AttestationPosted":
            label = (
                "analysis runtime"
                if args["kind"] == ChainComponent.ANALYSIS
                else "prediction runtime"
            )
            self.components.setdefault(args["component"], label)
        if "task_id" in args:
            task = str(args["task_id"])
            if event.name == "TaskProposed" and task not in self.by_task:
                self.tasks.append(task)
            self.by_task.setdefault(task, []).append(event)
        if "measurement" in args and event.name.startswith("Measurement"):
            mid = str(args["measurement"])
            if event.name == "MeasurementProposed" and mid not in self.by_measurement:
                self.measurements.append(mid)
            self.by_measurement.setdefault(mid, []).append(event)
        if "proposal_id" in args:
            self.by_proposal.setdefault(int(args["proposal_id"]), []).append(event)

    def org(self, org: str) -> str:
        """An org id's name as the events registered it (the hex id if never seen)."""
        if org == ZERO_ORG:
            return "—"
        return self.org_names.get(org, org)

    def actor(self, address: str) -> str:
        """Who an address is: a member's key, a task's component, or just the address."""
        org = self.key_orgs.get(address)
        if org is not None:
            return self.org(org)
        return self.components.get(address, address)


class EventCache:
    """The consortium's events from ``from_block`` on, caught up on each :meth:`refresh`."""

    def __init__(self, consortium: Consortium, *, from_block: int | None = None) -> None:
        self.consortium = consortium
        self.from_block = consortium.deploy_block if from_block is None else from_block
        self.lock = threading.RLock()
        self._stream = EventStream(consortium, from_block=self.from_block)
        self._events: list[ChainEvent] = []
        self.index = Index()
        self.refreshes = 0
        self.last: Refresh | None = None
        self.latest_block: int | None = None
        #: Why the chain node cannot be reached, while it cannot (set by the app, which
        #: says so on every page); a successful refresh clears it.
        self.down: str | None = None
        self._pins: dict[str, list[Pin]] = {}
        self._digests: dict[str, bytes] = {}
        self._participants: dict[str, list[str]] = {}
        self._times: dict[int, int] = {}

    @property
    def events(self) -> list[ChainEvent]:
        """Every cached event in chain order (a copy: callers may keep it)."""
        with self.lock:
            return list(self._events)

    @property
    def next_block(self) -> int:
        return self._stream.next_block

    def refresh(self) -> Refresh:
        """Read the blocks after the cursor; a node that cannot be reached marks the cache down."""
        with self.lock:
            start, began = self._stream.next_block, time.perf_counter()
            fresh = self._stream.poll()
            self.down = None
            for event in fresh:
                self._events.append(event)
                self.index.add(event)
            end = self._stream.next_block - 1
            self.latest_block = end
            self.refreshes += 1
            self.last = Refresh(
                events_read=len(fresh),
                blocks_read=max(end - start + 1, 0),
                from_block=start,
                to_block=end,
                seconds=time.perf_counter() - began,
            )
            return self.last

    # Immutable per-task / per-measurement facts, read once from the chain.

    def pins(self, task: str) -> list[Pin]:
        with self.lock:
            if task not in self._pins:
                rows = self.consortium.call("task_measurements", bytes.fromhex(task[2:]))
                self._pins[task] = [
                    Pin(ChainComponent(k), ChainTee(t), bytes(d)) for k, t, d in rows
                ]
            return self._pins[task]

    def participants(self, task: str) -> list[str]:
        with self.lock:
            if task not in self._participants:
                rows = self.consortium.call("task_participants", bytes.fromhex(task[2:]))
                self._participants[task] = [self.index.org("0x" + bytes(p).hex()) for p in rows]
            return self._participants[task]

    def digest(self, mid: str) -> bytes:
        with self.lock:
            if mid not in self._digests:
                row = self.consortium.call("measurements", bytes.fromhex(mid[2:]))
                if int(row[3]) == 0:
                    raise LedgerError(f"measurement {mid} is not registered")
                self._digests[mid] = bytes(row[2])
            return self._digests[mid]

    def block_time(self, number: int) -> int:
        with self.lock:
            if number not in self._times:
                with map_chain_errors("eth_getBlockByNumber"):
                    block = self.consortium.chain.w3.eth.get_block(number)
                self._times[number] = int(block["timestamp"])
            return self._times[number]

    def status(self) -> dict[str, Any]:
        """The cache's state for ``/api/status`` and every page's footer."""
        with self.lock:
            return {
                "chain": "down" if self.down else "up",
                "error": self.down,
                "latest_block": self.latest_block,
                "next_block": self._stream.next_block,
                "from_block": self.from_block,
                "events": len(self._events),
                "refreshes": self.refreshes,
                "last_refresh": self.last.to_json() if self.last else None,
            }
