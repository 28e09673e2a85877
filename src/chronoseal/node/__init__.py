"""Parties acting on the chain: a party's review of a task, scenarios and the demo.

Top layer together with :mod:`chronoseal.cli`: it may import every component below it.
"""

from ._demo import DemoConsortium, DemoReport, TimelineEntry, run_demo
from ._review import OnChainTask, ReviewProblem, review_task
from ._scenario import Scenario, bundled_scenario, load_scenario

__all__ = [
    "DemoConsortium",
    "DemoReport",
    "OnChainTask",
    "ReviewProblem",
    "Scenario",
    "TimelineEntry",
    "bundled_scenario",
    "load_scenario",
    "review_task",
    "run_demo",
]
