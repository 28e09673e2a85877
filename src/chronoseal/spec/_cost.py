"""What a task will cost, from its spec alone: the fits the analysis runtime will run.

Every party can read this before approving, and ``chronoseal spec check`` prints it: the
analysis runs exactly these fits (fewer only where two candidates coincide, as the joint
and own-data models do when no other party's data can enter the model).
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from ._model import TaskSpec

#: Exact Shapley over at most this many providers besides the target (2^5 = 32 coalitions).
SHAPLEY_MAX_PLAYERS = 5
#: Beyond it, this many sampled orders of the providers (antithetic pairs: each order and
#: its reverse), from a fixed seed so that every run of a task releases the same values.
SAMPLED_PERMUTATIONS = 8
SAMPLING_SEED = 0
GLOBAL_FAMILIES = frozenset({"mlforecast-lightgbm"})


def permutations(players: Sequence[str], count: int, *, seed: int) -> list[tuple[str, ...]]:
    """``count`` orders of ``players`` (rounded up to even): random ones, each followed by
    its reverse, which pairs a player's early and late arrival and cancels much of the
    variance of the estimate."""
    rng = random.Random(seed)
    out: list[tuple[str, ...]] = []
    while len(out) < count:
        order = list(players)
        rng.shuffle(order)
        out.extend([tuple(order), tuple(reversed(order))])
    return out


def value_coalitions(providers: Sequence[str]) -> list[frozenset[str]]:
    """The coalitions of the other providers whose back-test the value of each party needs,
    besides nobody (the own-data model) and everyone (the joint model)."""
    n = len(providers)
    if n <= SHAPLEY_MAX_PLAYERS:
        wanted = [
            frozenset(p for i, p in enumerate(providers) if mask >> i & 1)
            for mask in range(1, (1 << n) - 1)
        ]
    else:
        orders = permutations(providers, SAMPLED_PERMUTATIONS, seed=SAMPLING_SEED)
        wanted = [frozenset(order[:k]) for order in orders for k in range(1, n)]
    return list(dict.fromkeys(wanted))


def values_providers(spec: TaskSpec) -> bool:
    """Whether other providers' data can change the task's model (so their value needs
    coalition fits): covariates in a vertical join, a global model in a horizontal one."""
    from ._validate import EXOGENOUS_FAMILIES

    if spec.join.kind == "vertical":
        return spec.model.family in EXOGENOUS_FAMILIES
    return spec.model.family in GLOBAL_FAMILIES


def planned_fits(spec: TaskSpec) -> dict[str, int]:
    """Fits per group: each is one model family fitted on one back-test window's history
    (for a local family, one model per series in it), plus the trials of the target's
    differencing and the released model's fit."""
    windows = spec.evaluation.windows
    target = spec.target_dataset().party
    providers = [p for p in spec.data_providers() if p != target]
    out: dict[str, int] = {}
    if spec.model.family in GLOBAL_FAMILIES:
        out["differences"] = 3 if spec.model.season_length > 1 else 2
    out["joint"] = windows
    out["own"] = windows
    out["baselines"] = 2 * windows
    if spec.release.contribution is not None and providers and values_providers(spec):
        out["coalitions"] = len(value_coalitions(providers)) * windows
    out["final"] = 1
    return out
