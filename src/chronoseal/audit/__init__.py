"""Re-verify a task's whole life from the chain alone (``chronoseal audit``).

The audit replays every consortium event from the deployment block — membership, keys,
measurement approvals and revocations, the task's own events — re-checks relayed EIP-712
signatures from the transactions themselves, and compares the contract's stored record
with the replay. It needs no component, key or data: only read access to a chain node.
"""

from ._model import ChainAuditError, Check, TaskAudit, TimelineItem, Verdict
from ._replay import CHECKS, LEGAL_EDGES, audit_task, parse_task_id

__all__ = [
    "CHECKS",
    "LEGAL_EDGES",
    "ChainAuditError",
    "Check",
    "TaskAudit",
    "TimelineItem",
    "Verdict",
    "audit_task",
    "parse_task_id",
]
