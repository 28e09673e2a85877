"""A party's own check of a task on chain before it approves it, and again before sending.

Each party recomputes the task id from the spec *it* holds, compares it and the on-chain
record (participants, roles, pinned measurements), and checks that every one of its columns
is treated in a way its consent allows. Only then does it sign an approval.
"""

from __future__ import annotations

import hmac
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from ._load import task_id
from ._model import Role, TaskSpec
from ._party import PartyConfig
from ._policy import Gaussian, Laplace


@dataclass(frozen=True, slots=True)
class ReviewProblem:
    id: str
    message: str

    def __str__(self) -> str:
        return f"[{self.id}] {self.message}"


@dataclass(frozen=True, slots=True)
class OnChainTask:
    """What the chain says about a task, in the reviewer's vocabulary."""

    task_id: bytes
    participants: Sequence[tuple[str, frozenset[str]]]
    pins: Sequence[tuple[str, str, bytes]]
    state: str


def review_task(
    party: PartyConfig,
    spec: TaskSpec,
    onchain: OnChainTask,
    usable: Iterable[bool],
    *,
    expected_state: str = "Proposed",
) -> list[ReviewProblem]:
    """Every reason this party must not approve (or act on) a task; empty means go ahead.

    ``usable`` says, for each on-chain pin in order, whether the registry accepts it now.
    A gateway re-runs the same review with ``expected_state="Approved"`` before sending.
    """
    me = party.party.name
    out: list[ReviewProblem] = []
    mine = task_id(spec)
    if not hmac.compare_digest(mine, onchain.task_id):
        out.append(
            ReviewProblem(
                "review.spec.mismatch",
                f"the task on chain is 0x{onchain.task_id.hex()} but this party's spec hashes "
                f"to 0x{mine.hex()}: the parties are not looking at the same spec",
            )
        )
    if onchain.state != expected_state:
        out.append(
            ReviewProblem("review.task.state", f"task is {onchain.state}, not {expected_state}")
        )
    expected = sorted((p.org, frozenset(r.value for r in p.roles)) for p in spec.participants)
    if sorted(onchain.participants, key=lambda x: x[0]) != expected:
        out.append(
            ReviewProblem(
                "review.participants.mismatch",
                "participants or roles on chain differ from the spec",
            )
        )
    if spec.participant(me) is None:
        out.append(ReviewProblem("review.not_participant", f"{me!r} is not named in the task"))
    pins = sorted((c.value, p.tee, p.digest) for c, p in spec.measurements.pins().items())
    if sorted(onchain.pins) != pins:
        out.append(
            ReviewProblem("review.measurement.mismatch", "pinned measurements differ from the spec")
        )
    for (comp, tee, _), ok in zip(onchain.pins, usable, strict=True):
        if not ok:
            out.append(
                ReviewProblem(
                    "review.measurement.not_usable",
                    f"the pinned {comp} measurement ({tee}) is not approved or was revoked",
                )
            )
    out.extend(_review_data(party, spec))
    return out


def _review_data(party: PartyConfig, spec: TaskSpec) -> list[ReviewProblem]:
    me = party.party.name
    consent = party.consent
    out: list[ReviewProblem] = []
    epsilon = 0.0
    for ds in spec.datasets_of(me):
        if ds.source not in party.sources:
            out.append(
                ReviewProblem(
                    "review.source.unknown",
                    f"dataset {ds.name!r} names source {ds.source!r}, which {me!r} does not have",
                )
            )
        for col, rule in ds.policy.columns.items():
            if not consent.accepts(ds.name, col, rule):
                out.append(
                    ReviewProblem(
                        "review.policy.not_consented",
                        f"{ds.name}.{col}: {rule.action!r} is not among the actions "
                        f"{me!r} consents to",
                    )
                )
            if isinstance(rule, Laplace | Gaussian):
                epsilon += rule.epsilon
    if consent.max_epsilon is not None and epsilon > consent.max_epsilon:
        out.append(
            ReviewProblem(
                "review.privacy.epsilon",
                f"the task spends epsilon {epsilon:g} of {me!r}'s data; consent allows "
                f"{consent.max_epsilon:g}",
            )
        )
    me_provider = spec.participant(me)
    if (
        consent.result_recipients is not None
        and me_provider is not None
        and Role.DATA_PROVIDER in me_provider.roles
    ):
        extra = sorted(set(spec.release.forecasts.to) - set(consent.result_recipients))
        if extra:
            out.append(
                ReviewProblem(
                    "review.release.not_consented",
                    f"forecasts would go to {', '.join(extra)}, beyond what {me!r} consents to",
                )
            )
    return out
