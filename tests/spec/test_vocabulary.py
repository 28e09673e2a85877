"""One vocabulary: a TEE, a component and a role are spec's enums everywhere; the chain's
integer codes (``ChainTee``, ``ChainComponent``, ``ChainRole``) convert to and from them at the
ledger's edge and nowhere else."""

from __future__ import annotations

from typing import get_args

import pytest

from chronoseal.deploy import COCO_RUNTIME_CLASSES, SUPPORTED_TEES
from chronoseal.ledger import ChainComponent, ChainRole, ChainTee
from chronoseal.spec import Component, Role, Tee
from chronoseal.spec._model import PinnableTee


def test_every_chain_tee_code_is_a_spec_tee_and_back() -> None:
    for code in ChainTee:
        assert ChainTee.of(code.tee) is code
        assert ChainTee.of(code.tee.value) is code
    assert {code.tee for code in ChainTee} == set(Tee) - {Tee.PSA}
    with pytest.raises(KeyError):
        ChainTee.of(Tee.PSA)  # appraised, never registered on chain


def test_a_task_pins_exactly_the_tees_the_chain_registers() -> None:
    assert set(get_args(PinnableTee)) == {code.tee.value for code in ChainTee}


def test_chain_components_are_spec_components_and_back() -> None:
    for code in ChainComponent:
        assert ChainComponent.of(code.component) is code
    assert {c.component for c in ChainComponent} == set(Component) - {Component.CLIENT}


def test_chain_roles_are_a_bitmask_of_spec_roles() -> None:
    both = ChainRole.of([Role.DATA_PROVIDER, Role.RESULT_RECIPIENT])
    assert int(both) == 3
    assert both.roles == {Role.DATA_PROVIDER, Role.RESULT_RECIPIENT}
    assert ChainRole.of([Role.RESULT_RECIPIENT]).roles == {Role.RESULT_RECIPIENT}


def test_deployment_speaks_of_spec_tees() -> None:
    assert set(SUPPORTED_TEES) <= {t.value for t in Tee}
    assert set(COCO_RUNTIME_CLASSES) <= {t.value for t in Tee}
