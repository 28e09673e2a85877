"""The party's differential-privacy budget per source, tracked across tasks in a JSON file.

Composition is basic sequential composition: a source's spent loss is the sum of the epsilons
and the sum of the deltas of every task charged to it, and within a task the sum over its noisy
columns. That is conservative (advanced composition or zCDP accounting would admit more tasks)
but needs no assumption about how the tasks relate. The file lives in the party's own state
directory and holds no secrets: source names, task ids and numbers.
"""

from __future__ import annotations

import fcntl
import json
import math
import os
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from chronoseal.errors import DataError
from chronoseal.spec import Budget, Dataset, Gaussian, Laplace

FORMAT = "chronoseal.budget/v1"

Charges = dict[str, dict[str, dict[str, float]]]


@dataclass(frozen=True)
class PrivacyCost:
    """An (epsilon, delta) privacy loss: a task's cost, or what a budget has left."""

    epsilon: float
    delta: float = 0.0


def dataset_cost(dataset: Dataset) -> PrivacyCost:
    """The loss one task spends on a dataset: the sum over its noisy columns."""
    epsilons: list[float] = []
    deltas: list[float] = []
    for rule in dataset.policy.columns.values():
        if isinstance(rule, Laplace):
            epsilons.append(rule.epsilon)
        elif isinstance(rule, Gaussian):
            epsilons.append(rule.epsilon)
            deltas.append(rule.delta)
    return PrivacyCost(math.fsum(epsilons), math.fsum(deltas))


def _invalid(path: Path, why: str) -> DataError:
    return DataError(
        f"budget file {path} is unusable: {why}; restore it from backup rather than delete it, "
        "since an empty file would forget what was spent",
        id="data.budget.file_invalid",
        context={"path": str(path)},
    )


def _loss(value: Any) -> bool:
    return (
        isinstance(value, float | int)
        and not isinstance(value, bool)
        and math.isfinite(value)
        and value >= 0
    )


def deployment_id(chain_id: int, contract: str) -> str:
    """Where a task lives: ``<chain id>:<contract address, lower case>``."""
    return f"{int(chain_id)}:{contract.lower()}"


class BudgetLedger:
    """Charges tasks to a party's per-source budgets; refuses any charge that would overspend."""

    def __init__(self, path: str | Path, budgets: Mapping[str, Budget]) -> None:
        self._path = Path(path)
        self._budgets = dict(budgets)

    @property
    def path(self) -> Path:
        return self._path

    def spent(self, source: str) -> PrivacyCost:
        """What every task charged so far spent on ``source``."""
        return self._sum(self._read().get(source, {}))

    def remaining(self, source: str) -> PrivacyCost:
        """What ``source``'s budget still allows (never negative)."""
        budget = self._budget(source)
        spent = self.spent(source)
        return PrivacyCost(
            max(0.0, budget.epsilon - spent.epsilon), max(0.0, budget.delta - spent.delta)
        )

    def charge(
        self,
        source: str,
        task_id: bytes,
        epsilon: float,
        delta: float = 0.0,
        *,
        deployment: str,
    ) -> None:
        """Record a task's cost once; charging the same task again with the same cost is a no-op.

        A task is identified by ``deployment`` (:func:`deployment_id`: chain id and contract)
        *and* its id: the same spec proposed on another consortium deployment is another task
        whose fresh noise spends the budget again. Refused with ``data.budget.exhausted`` (and
        the file left untouched) when the sums would exceed the budget.
        """
        if not (_loss(epsilon) and _loss(delta) and delta < 1):
            raise DataError(
                f"not a privacy loss: epsilon={epsilon}, delta={delta}",
                id="data.budget.invalid_cost",
            )
        if epsilon == 0 and delta == 0:
            return
        budget = self._budget(source)
        if not deployment or "/" in deployment:
            raise DataError(
                "a budget charge needs the deployment (chain id and contract) of the task",
                id="data.budget.invalid_cost",
            )
        task = f"{deployment}/{task_id.hex()}"
        with self._locked():
            charges = self._read()
            tasks = charges.get(source, {})
            earlier = tasks.get(task)
            if earlier is not None:
                if earlier == {"epsilon": float(epsilon), "delta": float(delta)}:
                    return
                raise DataError(
                    f"task {task} was already charged {earlier} on {source!r}, not this cost",
                    id="data.budget.task_conflict",
                    context={"source": source, "task_id": task},
                )
            spent = self._sum(tasks)
            after = self._sum({**tasks, task: {"epsilon": epsilon, "delta": delta}})
            if after.epsilon > budget.epsilon or after.delta > budget.delta:
                raise DataError(
                    f"source {source!r} has spent epsilon={spent.epsilon}, delta={spent.delta} "
                    f"of epsilon={budget.epsilon}, delta={budget.delta}; this task needs "
                    f"epsilon={epsilon}, delta={delta}",
                    id="data.budget.exhausted",
                    context={"source": source, "task_id": task},
                )
            tasks[task] = {"epsilon": float(epsilon), "delta": float(delta)}
            charges[source] = tasks
            self._write(charges)

    def _budget(self, source: str) -> Budget:
        budget = self._budgets.get(source)
        if budget is None:
            raise DataError(
                f"source {source!r} has no privacy budget in the party config",
                id="data.budget.unknown_source",
                context={"source": source},
            )
        return budget

    @staticmethod
    def _sum(tasks: Mapping[str, Mapping[str, float]]) -> PrivacyCost:
        return PrivacyCost(
            math.fsum(t["epsilon"] for t in tasks.values()),
            math.fsum(t["delta"] for t in tasks.values()),
        )

    @contextmanager
    def _locked(self) -> Iterator[None]:
        """One writer at a time, across processes, for the read-check-write of a charge."""
        self._path.parent.mkdir(parents=True, exist_ok=True)
        lock = self._path.with_name(self._path.name + ".lock")
        with open(lock, "a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def _read(self) -> Charges:
        try:
            raw = json.loads(self._path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise _invalid(self._path, str(exc)) from None
        if not isinstance(raw, dict) or raw.get("format") != FORMAT:
            raise _invalid(self._path, f"not a {FORMAT} document")
        sources = raw.get("sources")
        if not isinstance(sources, dict):
            raise _invalid(self._path, "'sources' is not an object")
        charges: Charges = {}
        for source, tasks in sources.items():
            if not isinstance(tasks, dict):
                raise _invalid(self._path, f"source {source!r} is not an object")
            for task, cost in tasks.items():
                if not (
                    isinstance(cost, dict)
                    and set(cost) == {"epsilon", "delta"}
                    and all(_loss(v) for v in cost.values())
                ):
                    raise _invalid(self._path, f"charge {task!r} of {source!r} is malformed")
            charges[source] = {
                task: {"epsilon": float(c["epsilon"]), "delta": float(c["delta"])}
                for task, c in tasks.items()
            }
        return charges

    def _write(self, charges: Charges) -> None:
        """Atomic replace: write a temporary file, fsync it, rename, fsync the directory."""
        text = json.dumps({"format": FORMAT, "sources": charges}, indent=2, sort_keys=True)
        directory = self._path.parent
        fd, temporary = tempfile.mkstemp(dir=directory, prefix=f".{self._path.name}.")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(text + "\n")
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temporary, self._path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
        directory_fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(directory_fd)
        finally:
            os.close(directory_fd)
