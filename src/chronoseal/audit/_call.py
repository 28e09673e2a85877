"""``chronoseal.audit(...)``: the audit from Python, given a consortium or a node's address."""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from chronoseal.errors import ConfigError
from chronoseal.ledger import Consortium, JsonRpcChain
from chronoseal.prediction import Receipt, read_receipts

from ._model import ChainAuditError, TaskAudit
from ._replay import audit_task, parse_task_id


def audit(
    task: bytes | str,
    *,
    consortium: Consortium | None = None,
    rpc: str | None = None,
    contract: str | None = None,
    from_block: int = 0,
    receipts: Iterable[Receipt | str | os.PathLike[str]] = (),
) -> TaskAudit:
    """Re-verify ``task`` from the chain alone, as ``chronoseal audit`` does.

    The chain is ``consortium`` (a run's :attr:`RunResult.consortium`), or the contract at
    ``contract`` on the JSON-RPC node ``rpc`` read from ``from_block``; ``receipts`` are
    receipts or files holding them. A failed check is a verdict in the result, not an
    exception; ``audit.task.unknown`` and ``audit.target.missing`` are raised.
    """
    tid = parse_task_id(task)  # bad input is refused before any network call
    held = _receipts(receipts)
    if consortium is None:
        if rpc is None or contract is None:
            raise ChainAuditError(
                "say which chain to audit: consortium=, or rpc= and contract=",
                id="audit.target.missing",
            )
        consortium = Consortium.at(JsonRpcChain(rpc), contract, deploy_block=from_block)
    return audit_task(consortium, tid, receipts=held)


def _receipts(items: Iterable[Receipt | str | os.PathLike[str]]) -> list[Receipt]:
    out: list[Receipt] = []
    for item in items:
        if isinstance(item, Receipt):
            out.append(item)
            continue
        path = Path(item)
        try:
            out += read_receipts(path)
        except OSError as exc:
            raise ConfigError(
                f"cannot read receipt {path}: {exc}", id="config.file.invalid"
            ) from None
    return out
