"""One exception tree for chronoseal, so callers can catch by concern and auditors can grep by id.

Every refusal carries a stable dotted ``id`` (``component.subject.reason``) that appears
unchanged in CLI output, logs, JSON reports and, where the refusal happens on chain, as the
contract's revert reason. Messages say what was wrong and what to do about it.

Classes a single component raises are defined beside it (the module is named) and derive
from a class here; ``tests/test_error_tree.py`` keeps this tree complete. Every id, with what
happened and what to do, is in ``docs/failure-ids.md``.

::

    ChronosealError
    ├── SpecError                  a task specification is malformed (lists every problem)
    ├── ConfigError                a party or scenario configuration is unusable
    ├── LedgerError                anything between chronoseal and the consortium chain
    │   ├── ChainUnavailable       the node cannot be reached or answers nonsense
    │   ├── ContractArtifactError  compiled ABI/bytecode missing or not matching the source
    │   ├── ChainRevert            a transaction or call was refused by a contract
    │   └── ValidatorError         the members' validator network could not start or run
    │                              (chronoseal.ledger)
    ├── AttestationError           evidence could not be produced or did not appraise
    │   └── UnsupportedTee         a registered TEE type with no implementation yet
    ├── ChannelError               the attested secure channel failed
    │   ├── PeerRefused            a peer's evidence did not appraise; no data was exchanged
    │   └── StreamIntegrityError   a framed stream was tampered, replayed, reordered or cut
    ├── DataError                  a party's data source or privacy policy refused the request
    │   ├── ZoneTimeError          aware times off local midnight on a grid of dates
    │   │                          (chronoseal.model; callers re-raise under their own id)
    │   ├── LocalTimeError         naive local times that do not exist or are ambiguous
    │   │                          in their zone (chronoseal.model; likewise)
    │   └── TimeRangeError         times outside datetime64[ns] (chronoseal.model; likewise)
    ├── AnalysisError              the joined data cannot support the task's model (the
    │                              runtime aborts the task on chain with this id)
    ├── ModelError                 a model bundle is malformed, not the one committed on
    │                              chain, or cannot forecast what was asked
    ├── DeployError                deployment manifests cannot be rendered for this scenario
    │                              (an unsupported TEE, a secret in a config, a bad option)
    ├── ReviewRefused              a party's own review of a proposed task found problems
    ├── SealedStateError           sealed state that does not open: tampered, rolled back or
    │                              another TEE's (chronoseal.prediction)
    ├── AuditError                 a prediction audit log, leaf or receipt is unusable or a
    │                              receipt does not check out (chronoseal.prediction)
    ├── ChainAuditError            a chain audit cannot start: no such task, an unreadable
    │                              history (chronoseal.audit; failed checks are verdicts)
    ├── ExplorerError              a request or start-up the explorer refuses, with its HTTP
    │   │                          status (chronoseal.explorer)
    │   └── NotConsortium          the address holds no consortium contract
    ├── RunError                   a process of a multi-process run failed or timed out
    │                              (chronoseal.node)
    └── DocumentRefused            a document too large, too deep or not text, refused before
                                   parsing (chronoseal._decode; also a ValueError, re-raised
                                   under each caller's own id)
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


class ChronosealError(Exception):
    """Root of every error chronoseal raises on purpose."""

    default_id = "chronoseal.error"

    def __init__(
        self,
        message: str,
        *,
        id: str | None = None,
        context: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.id = id or self.default_id
        self.context: dict[str, Any] = dict(context or {})

    def __str__(self) -> str:
        return f"[{self.id}] {self.message}"


class SpecProblem:
    """One problem in a task file, with where it is (a dotted path into the document)."""

    __slots__ = ("location", "message")

    def __init__(self, location: str, message: str) -> None:
        self.location = location
        self.message = message

    def __repr__(self) -> str:
        return f"SpecProblem({self.location!r}, {self.message!r})"

    def __str__(self) -> str:
        return f"{self.location}: {self.message}"


class SpecError(ChronosealError):
    """A task specification is malformed; ``problems`` lists every one found, not just the first."""

    default_id = "spec.invalid"

    def __init__(
        self,
        message: str,
        *,
        problems: list[SpecProblem] | None = None,
        id: str | None = None,
    ) -> None:
        super().__init__(message, id=id)
        self.problems: list[SpecProblem] = list(problems or [])

    def __str__(self) -> str:
        lines = [super().__str__()]
        lines.extend(f"  {p}" for p in self.problems)
        return "\n".join(lines)


class ConfigError(ChronosealError):
    """A party or scenario configuration file is missing, unreadable or inconsistent."""

    default_id = "config.invalid"


class LedgerError(ChronosealError):
    """Anything that went wrong between chronoseal and the consortium chain."""

    default_id = "ledger.error"


class ChainUnavailable(LedgerError):
    """The chain node cannot be reached, or answered something that is not a chain."""

    default_id = "ledger.chain.unavailable"


class ContractArtifactError(LedgerError):
    """The committed ABI/bytecode is missing, unreadable or differs from the Vyper source."""

    default_id = "ledger.artifact.invalid"


class ChainRevert(LedgerError):
    """A contract refused a transaction or call.

    ``reason`` is the contract's revert string; chronoseal's contracts revert with the
    refusal id itself (``ledger.task.not_participant``), so ``id == reason`` for them.
    """

    default_id = "ledger.revert"

    def __init__(
        self,
        reason: str,
        *,
        function: str | None = None,
        tx_hash: str | None = None,
    ) -> None:
        refusal = reason if reason.startswith("ledger.") else "ledger.revert"
        where = f" in {function}" if function else ""
        super().__init__(
            f"the contract refused the call{where}: {reason}",
            id=refusal,
            context={"reason": reason, "function": function, "tx_hash": tx_hash},
        )
        self.reason = reason
        self.function = function
        self.tx_hash = tx_hash


class AttestationError(ChronosealError):
    """Evidence could not be generated, parsed or appraised; ``id`` names the failed check."""

    default_id = "attest.failed"


class UnsupportedTee(AttestationError):
    """The TEE type is known to chronoseal but has no implementation yet."""

    default_id = "attest.tee.unsupported"


class ChannelError(ChronosealError):
    """The attested secure channel could not be set up or broke."""

    default_id = "channel.failed"


class PeerRefused(ChannelError):
    """A peer's evidence did not appraise for the expected component; nothing was exchanged."""

    default_id = "channel.peer.refused"


class StreamIntegrityError(ChannelError):
    """A framed stream failed authentication, order, completeness or task binding."""

    default_id = "channel.stream.integrity"


class DataError(ChronosealError):
    """A party's data source or desensitization policy refused the request."""

    default_id = "data.refused"


class AnalysisError(ChronosealError):
    """The analysis runtime cannot train the task's model on what it received.

    Raised before anything is released; the runtime aborts the task on chain with ``id`` as
    the reason. Messages name datasets, columns and row counts, never values.
    """

    default_id = "analysis.failed"


class ModelError(ChronosealError):
    """A model bundle is malformed or does not match its commitment, or a forecast request
    cannot be answered from it."""

    default_id = "model.failed"


class DeployError(ChronosealError):
    """Kubernetes or Gramine manifests cannot be rendered as asked; ``id`` names the reason
    (``deploy.tee.unsupported``, ``deploy.secret.in_config``, ...)."""

    default_id = "deploy.failed"


class ReviewRefused(ChronosealError):
    """A party reviewed a proposed task against its own spec and consent and refused it.

    ``problems`` holds ``(id, message)`` pairs; the error's id is the first problem's.
    """

    default_id = "review.refused"

    def __init__(self, party: str, problems: list[tuple[str, str]]) -> None:
        detail = "; ".join(f"[{pid}] {msg}" for pid, msg in problems)
        super().__init__(
            f"{party} refused to approve the task and aborted it on chain: {detail}",
            id=problems[0][0] if problems else None,
            context={"party": party, "problems": problems},
        )
        self.party = party
        self.problems = problems
