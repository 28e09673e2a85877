"""The budget ledger: charges add up, overspending is refused, tasks are charged once."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chronoseal.errors import DataError
from chronoseal.privacy import BudgetLedger, PrivacyCost, dataset_cost, deployment_id
from chronoseal.spec import Budget

HERE = deployment_id(31337, "0x5FbDB2315678afecb367f032d93F642f64180aa3")
THERE = deployment_id(1, "0x5FbDB2315678afecb367f032d93F642f64180aa3")

if TYPE_CHECKING:
    from conftest import MakeDataset

BUDGETS = {"meters": Budget(epsilon=1.0, delta=1e-5), "plain": Budget(epsilon=2.0)}


def _task(n: int) -> bytes:
    return n.to_bytes(32, "big")


def test_charges_add_up_and_survive_reload(tmp_path: Path) -> None:
    path = tmp_path / "state" / "budget.json"
    ledger = BudgetLedger(path, BUDGETS)
    assert ledger.remaining("meters") == PrivacyCost(1.0, 1e-5)
    ledger.charge("meters", _task(1), 0.25, 1e-6, deployment=HERE)
    ledger.charge("meters", _task(2), 0.5, deployment=HERE)
    reloaded = BudgetLedger(path, BUDGETS)
    assert reloaded.spent("meters") == PrivacyCost(0.75, 1e-6)
    left = reloaded.remaining("meters")
    assert left.epsilon == 0.25 and left.delta == pytest.approx(9e-6)
    assert reloaded.remaining("plain") == PrivacyCost(2.0, 0.0)
    document = json.loads(path.read_text())
    assert document["format"] == "chronoseal.budget/v1"
    assert set(document["sources"]["meters"]) == {f"{HERE}/{_task(i).hex()}" for i in (1, 2)}
    assert not list(path.parent.glob(".budget.json.*"))


def test_exhausted_refuses_and_leaves_the_file_unchanged(tmp_path: Path) -> None:
    ledger = BudgetLedger(tmp_path / "budget.json", BUDGETS)
    ledger.charge("meters", _task(1), 0.9, deployment=HERE)
    before = ledger.path.read_bytes()
    for epsilon, delta in [(0.2, 0.0), (0.05, 2e-5)]:
        with pytest.raises(DataError) as info:
            ledger.charge("meters", _task(2), epsilon, delta, deployment=HERE)
        assert info.value.id == "data.budget.exhausted"
        assert ledger.path.read_bytes() == before
    ledger.charge("meters", _task(3), 0.1, 1e-5, deployment=HERE)
    assert ledger.remaining("meters") == PrivacyCost(0.0, 0.0)


def test_the_same_task_is_charged_once(tmp_path: Path) -> None:
    ledger = BudgetLedger(tmp_path / "budget.json", BUDGETS)
    for _ in range(5):
        ledger.charge("meters", _task(7), 0.6, deployment=HERE)
    assert ledger.spent("meters") == PrivacyCost(0.6, 0.0)
    with pytest.raises(DataError) as info:
        ledger.charge("meters", _task(7), 0.3, deployment=HERE)
    assert info.value.id == "data.budget.task_conflict"
    ledger.charge("plain", _task(7), 0.6, deployment=HERE)
    assert ledger.spent("plain") == PrivacyCost(0.6, 0.0)


def test_free_tasks_write_nothing_and_unknown_sources_are_refused(tmp_path: Path) -> None:
    ledger = BudgetLedger(tmp_path / "budget.json", BUDGETS)
    ledger.charge("elsewhere", _task(1), 0.0, 0.0, deployment=HERE)
    assert not ledger.path.exists()
    with pytest.raises(DataError) as info:
        ledger.charge("elsewhere", _task(1), 0.1, deployment=HERE)
    assert info.value.id == "data.budget.unknown_source"
    with pytest.raises(DataError) as info:
        ledger.remaining("elsewhere")
    assert info.value.id == "data.budget.unknown_source"


@pytest.mark.parametrize(("epsilon", "delta"), [(-0.1, 0.0), (math.nan, 0.0), (0.1, 1.0)])
def test_nonsense_costs_are_refused(tmp_path: Path, epsilon: float, delta: float) -> None:
    with pytest.raises(DataError) as info:
        BudgetLedger(tmp_path / "b.json", BUDGETS).charge(
            "meters", _task(1), epsilon, delta, deployment=HERE
        )
    assert info.value.id == "data.budget.invalid_cost"


@pytest.mark.parametrize(
    "content",
    [
        "not json",
        "[]",
        '{"format": "other", "sources": {}}',
        '{"format": "chronoseal.budget/v1", "sources": {"meters": {"t": {"epsilon": -1}}}}',
    ],
)
def test_a_damaged_file_is_refused_not_reset(tmp_path: Path, content: str) -> None:
    path = tmp_path / "budget.json"
    path.write_text(content)
    ledger = BudgetLedger(path, BUDGETS)
    for attempt in (
        lambda: ledger.spent("meters"),
        lambda: ledger.charge("meters", b"t", 0.1, deployment=HERE),
    ):
        with pytest.raises(DataError) as info:
            attempt()
        assert info.value.id == "data.budget.file_invalid"
    assert path.read_text() == content


@settings(deadline=None, max_examples=40)
@given(st.lists(st.tuples(st.integers(0, 8), st.floats(0.0, 0.5)), max_size=25))
def test_accepted_charges_never_exceed_the_budget(
    tmp_path_factory: pytest.TempPathFactory, charges: list[tuple[int, float]]
) -> None:
    ledger = BudgetLedger(tmp_path_factory.mktemp("ledger") / "b.json", BUDGETS)
    accepted: dict[int, float] = {}
    for task, epsilon in charges:
        try:
            ledger.charge("plain", _task(task), epsilon, deployment=HERE)
        except DataError as exc:
            assert exc.id in {"data.budget.exhausted", "data.budget.task_conflict"}
            if exc.id == "data.budget.exhausted":
                assert math.fsum([*accepted.values(), epsilon]) > 2.0
            else:
                assert accepted[task] != epsilon
        else:
            if epsilon:
                accepted.setdefault(task, epsilon)
    assert ledger.spent("plain").epsilon == pytest.approx(math.fsum(accepted.values()))
    assert ledger.spent("plain").epsilon <= 2.0


def test_a_dataset_costs_the_sum_over_its_noisy_columns(dataset: MakeDataset) -> None:
    ds = dataset(
        {
            "a": {"action": "laplace", "sensitivity": 1, "epsilon": 0.3},
            "b": {"action": "gaussian", "sensitivity": 1, "epsilon": 0.2, "delta": 1e-6},
            "c": {"action": "gaussian", "sensitivity": 2, "epsilon": 0.1, "delta": 2e-6},
            "d": {"action": "round", "digits": 1},
        }
    )
    cost = dataset_cost(ds)
    assert cost.epsilon == pytest.approx(0.6) and cost.delta == pytest.approx(3e-6)
    assert dataset_cost(dataset({"d": {"action": "keep"}})) == PrivacyCost(0.0, 0.0)


def test_the_same_task_on_another_deployment_is_charged_again(tmp_path: Path) -> None:
    """Fresh noise drawn for the same task id on another chain or contract spends again."""
    ledger = BudgetLedger(tmp_path / "b.json", BUDGETS)
    ledger.charge("plain", _task(1), 0.8, deployment=HERE)
    ledger.charge("plain", _task(1), 0.8, deployment=HERE)  # the same task again: no-op
    assert ledger.spent("plain").epsilon == pytest.approx(0.8)
    ledger.charge("plain", _task(1), 0.8, deployment=THERE)
    other_contract = deployment_id(31337, "0x" + "11" * 20)
    with pytest.raises(DataError) as info:
        ledger.charge("plain", _task(1), 0.8, deployment=other_contract)
    assert info.value.id == "data.budget.exhausted"
    assert ledger.spent("plain").epsilon == pytest.approx(1.6)
    with pytest.raises(DataError) as info:
        ledger.charge("plain", _task(2), 0.1, deployment="")
    assert info.value.id == "data.budget.invalid_cost"
