"""The light parts of the packages import without the forecasting stack."""

from __future__ import annotations

import importlib
import subprocess
import sys

import pytest

import chronoseal.model as model

_HEAVY = ("lightgbm", "statsforecast", "mlforecast", "sklearn", "scipy")


@pytest.mark.parametrize(
    "modules",
    [
        "chronoseal.gateway, chronoseal.model",  # a gateway checks releases against the chain
        "chronoseal.cli",  # every command starts without the stack; the demo loads it itself
        "chronoseal.node, chronoseal.prediction",  # agents, receipts
    ],
)
def test_the_forecasting_stack_loads_only_where_it_is_used(modules: str) -> None:
    # A fresh interpreter: this test process has long imported everything.
    probe = f"import sys, {modules}; print(','.join(k for k in {_HEAVY!r} if k in sys.modules))"
    loaded = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert loaded == ""


@pytest.mark.parametrize(
    "package", ["chronoseal.model", "chronoseal.prediction", "chronoseal.node"]
)
def test_every_exported_name_resolves(package: str) -> None:
    module = importlib.import_module(package)
    for name in module.__all__:
        assert getattr(module, name) is not None, name
    assert set(module.__all__) <= set(dir(module))


def test_an_unknown_name_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no_such_name"):
        model.no_such_name  # noqa: B018
