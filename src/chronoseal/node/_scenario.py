"""A scenario: who is in the consortium, which task they run and each party's own config.

``chronoseal demo`` runs the bundled Chicago scenario, ``chronoseal run`` any other, and
``Scenario.load(path).run(...)`` either from Python (docs/api.md).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ._config import ScenarioConfig, Stage, bundled_scenario, read_scenario

if TYPE_CHECKING:
    from chronoseal.ledger import ChainBackend

    from ._result import RunResult

__all__ = ["Scenario", "Stage", "bundled_scenario", "load_scenario"]


@dataclass(frozen=True)
class Scenario(ScenarioConfig):
    """A checked scenario, and the one way to run it."""

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Scenario:
        """The scenario in the TOML file ``path``, checked (``config.scenario.*``)."""
        return load_scenario(Path(path))

    def run(
        self,
        until: Stage = "serving",
        *,
        progress: bool = False,
        log: Callable[[str], None] | None = None,
        rpc: str | None = None,
        work: str | os.PathLike[str] | None = None,
        timeout: float = 900.0,
        chain: ChainBackend | None = None,
        workers: int | None = None,
    ) -> RunResult:
        """Run the task up to ``until`` (as ``chronoseal demo --until``) and return what the
        parties received, what the chain holds and the audit from the chain alone.

        ``progress`` prints the run's log lines and progress bars; ``log`` receives each log
        line instead. ``rpc`` (a JSON-RPC URL, or ``"anvil"`` to start a local node) runs every
        component and party as its own process through Serving, as ``chronoseal run --rpc``;
        ``work`` and ``timeout`` are its work directory and per-stage limit. ``chain`` is
        the chain of a one-process run (default: a fresh embedded chain). ``workers``
        overrides ``[compute] workers`` (``chronoseal run --workers N``).
        """
        # Imported here: running loads every component, the forecasting stack among them.
        from ._runner import run_scenario

        return run_scenario(
            self if workers is None else self.with_workers(workers),
            until,
            progress=progress,
            log=log,
            rpc=rpc,
            work=None if work is None else Path(work),
            timeout=timeout,
            chain=chain,
        )


def load_scenario(path: Path) -> Scenario:
    """The scenario in the TOML file ``path``, checked (``config.scenario.*``)."""
    return read_scenario(path, Scenario)
