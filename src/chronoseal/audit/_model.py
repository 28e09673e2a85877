"""What an audit returns: one verdict per check and the task's timeline."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from chronoseal.errors import ChronosealError

Verdict = Literal["pass", "fail", "not_reached"]


class ChainAuditError(ChronosealError):
    """The audit could not start: no such task, or a history that cannot be read.

    A check that *fails* is not an exception: it is a verdict in :class:`TaskAudit`.
    """

    default_id = "audit.invalid"


@dataclass(frozen=True)
class Check:
    """One property of the task's record and whether the chain shows it holds.

    ``not_reached`` means the task never got far enough for the property to apply (a task
    still Proposed has no commitments to match); it is not a failure.
    """

    id: str
    title: str
    verdict: Verdict
    detail: str
    problems: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "title": self.title,
            "verdict": self.verdict,
            "detail": self.detail,
            "problems": list(self.problems),
        }


@dataclass(frozen=True)
class TimelineItem:
    """One event in the task's life, with names resolved as the chain knew them then."""

    block: int
    time: int
    tx_hash: str
    log_index: int
    event: str
    actor: str
    summary: str

    def to_json(self) -> dict[str, Any]:
        return {
            "block": self.block,
            "time": self.time,
            "tx_hash": self.tx_hash,
            "log_index": self.log_index,
            "event": self.event,
            "actor": self.actor,
            "summary": self.summary,
        }


@dataclass(frozen=True)
class TaskAudit:
    """The verdicts of re-verifying one task from the chain's history alone."""

    task_id: bytes
    contract: str
    chain_id: int
    state: str
    checks: list[Check]
    timeline: list[TimelineItem] = field(default_factory=list)
    events_read: int = 0
    receipts_checked: int = 0

    @property
    def failures(self) -> list[Check]:
        return [c for c in self.checks if c.verdict == "fail"]

    @property
    def verified(self) -> bool:
        """True when no check failed (checks not reached do not count against it)."""
        return not self.failures

    def to_json(self) -> dict[str, Any]:
        return {
            "task_id": "0x" + self.task_id.hex(),
            "contract": self.contract,
            "chain_id": self.chain_id,
            "state": self.state,
            "verified": self.verified,
            "checks": [c.to_json() for c in self.checks],
            "failures": [c.id for c in self.failures],
            "passed": sum(c.verdict == "pass" for c in self.checks),
            "not_reached": [c.id for c in self.checks if c.verdict == "not_reached"],
            "events_read": self.events_read,
            "receipts_checked": self.receipts_checked,
            "timeline": [t.to_json() for t in self.timeline],
        }

    def summary_json(self) -> dict[str, Any]:
        """The short form the demo's JSON summary carries."""
        return {
            "verified": self.verified,
            "checks": len(self.checks),
            "passed": sum(c.verdict == "pass" for c in self.checks),
            "failures": [c.id for c in self.failures],
        }
