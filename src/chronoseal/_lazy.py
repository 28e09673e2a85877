"""Package exports that load their submodule on first use (PEP 562).

The forecasting stack (pandas, LightGBM, statsforecast, their BLAS and OpenMP pools) costs
seconds of start-up and ~140 MB, and only the trusted runtimes need it: a gateway, a party's
agent or ``chronoseal spec check`` import the same packages for their light parts only.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Iterable, Mapping
from typing import Any


def lazy_exports(
    package: str, modules: Mapping[str, Iterable[str]]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """``__getattr__`` and ``__dir__`` for ``package``: each name in ``modules[m]`` comes
    from ``package.m``, imported when the name is first asked for, then kept."""
    origin = {name: module for module, names in modules.items() for name in names}

    def __getattr__(name: str) -> Any:
        module = origin.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(f"{package}.{module}"), name)
        setattr(sys.modules[package], name, value)
        return value

    def __dir__() -> list[str]:
        return sorted(set(vars(sys.modules[package])) | set(origin))

    return __getattr__, __dir__
