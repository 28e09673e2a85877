"""Parties acting on the chain: a party's review of a task, scenarios and the demo.

Top layer together with :mod:`chronoseal.cli`: it may import every component below it.
"""

from ._agents import (
    load_key,
    load_task,
    new_keystore,
    query_forecast,
    serve_analysis,
    serve_gateway,
    serve_party,
    serve_prediction,
)
from ._demo import DemoConsortium, DemoReport, PartyReport, Stage, TimelineEntry, run_demo
from ._health import AgentLog, Health, Log
from ._party import Decision, PartyAgent, spec_directory
from ._run import Anvil, RunError, find_anvil, free_ports, run_separate
from ._scenario import Scenario, bundled_scenario, load_scenario

__all__ = [
    "AgentLog",
    "Anvil",
    "Decision",
    "DemoConsortium",
    "DemoReport",
    "Health",
    "Log",
    "PartyAgent",
    "PartyReport",
    "RunError",
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
    "run_separate",
    "serve_analysis",
    "serve_gateway",
    "serve_party",
    "serve_prediction",
    "spec_directory",
]
