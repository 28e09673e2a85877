"""Parties acting on the chain: a party's review of a task, scenarios and the demo.

Top layer together with :mod:`chronoseal.cli`: it may import every component below it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from chronoseal._lazy import lazy_exports

from ._agents import (
    load_key,
    new_keystore,
    query_forecast,
    serve_analysis,
    serve_gateway,
    serve_party,
    serve_prediction,
)
from ._health import AgentLog, Health, Log
from ._party import Decision, PartyAgent, load_task, spec_directory
from ._scenario import Scenario, Stage, bundled_scenario, load_scenario
from ._workers import ComputeOptions

if TYPE_CHECKING:
    from ._demo import DemoConsortium, DemoReport, PartyReport, TimelineEntry, run_demo
    from ._report import write_report
    from ._result import ModelResult, RunResult
    from ._run import Anvil, RunError, find_anvil, free_ports, run_separate
    from ._runner import run_scenario

# The demo and the scenario runner drive every component, the trusted runtimes with their
# forecasting stack among them; a gateway or party agent loads neither.
__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "_demo": [
            "DemoConsortium",
            "DemoReport",
            "PartyReport",
            "TimelineEntry",
            "run_demo",
        ],
        "_report": ["write_report"],
        "_result": ["ModelResult", "RunResult"],
        "_run": ["Anvil", "RunError", "find_anvil", "free_ports", "run_separate"],
        "_runner": ["run_scenario"],
    },
)

__all__ = [
    "AgentLog",
    "Anvil",
    "ComputeOptions",
    "Decision",
    "DemoConsortium",
    "DemoReport",
    "Health",
    "Log",
    "ModelResult",
    "PartyAgent",
    "PartyReport",
    "RunError",
    "RunResult",
    "Scenario",
    "Stage",
    "TimelineEntry",
    "bundled_scenario",
    "find_anvil",
    "free_ports",
    "load_key",
    "load_scenario",
    "load_task",
    "new_keystore",
    "query_forecast",
    "run_demo",
    "run_scenario",
    "run_separate",
    "serve_analysis",
    "serve_gateway",
    "serve_party",
    "serve_prediction",
    "spec_directory",
    "write_report",
]
