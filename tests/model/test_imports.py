"""The release format is importable without the forecasting stack."""

from __future__ import annotations

import subprocess
import sys

import pytest

import chronoseal.model as model

_HEAVY = ("lightgbm", "statsforecast", "mlforecast", "sklearn", "scipy")


def test_a_gateway_loads_no_forecasting_library() -> None:
    # A fresh interpreter: this test process has long imported everything.
    probe = (
        "import sys, chronoseal.gateway, chronoseal.model as m; m.verify_release; "
        f"print(','.join(k for k in {_HEAVY!r} if k in sys.modules))"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert loaded == ""


def test_every_exported_name_resolves() -> None:
    for name in model.__all__:
        assert getattr(model, name) is not None, name
    assert set(model.__all__) <= set(dir(model))


def test_an_unknown_name_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no_such_name"):
        model.no_such_name  # noqa: B018
