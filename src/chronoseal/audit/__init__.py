"""Re-verify a task's whole life from the chain alone (``chronoseal audit``).

The audit replays every consortium event from the deployment block — membership, keys,
measurement approvals and revocations, the task's own events — re-checks relayed EIP-712
signatures from the transactions themselves, and compares the contract's stored record
with the replay. It needs no component, key or data: only read access to a chain node.

The package is callable: ``chronoseal.audit(task, consortium=...)`` is :func:`audit`
(the top-level name is this package, since importing it binds the name).
"""

import sys
import types
from typing import Any

from ._call import audit
from ._model import ChainAuditError, Check, TaskAudit, TimelineItem, Verdict
from ._replay import CHECKS, LEGAL_EDGES, audit_task, parse_task_id


class _CallablePackage(types.ModuleType):
    def __call__(self, *args: Any, **kwargs: Any) -> TaskAudit:
        return audit(*args, **kwargs)


sys.modules[__name__].__class__ = _CallablePackage

__all__ = [
    "CHECKS",
    "LEGAL_EDGES",
    "ChainAuditError",
    "Check",
    "TaskAudit",
    "TimelineItem",
    "Verdict",
    "audit",
    "audit_task",
    "parse_task_id",
]
