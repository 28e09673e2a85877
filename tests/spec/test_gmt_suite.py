"""``[task] crypto``: recorded in the spec every party hashes, absent when standard."""

from __future__ import annotations

import json

import pytest

from chronoseal.node import bundled_scenario, load_scenario
from chronoseal.spec import TaskSpec, canonical_json, resolve_measurements, task_id


def _spec(crypto: str | None) -> TaskSpec:
    spec = resolve_measurements(load_scenario(bundled_scenario()).spec, lambda *_: bytes(32))
    if crypto is None:
        return spec
    return spec.model_copy(update={"task": spec.task.model_copy(update={"crypto": crypto})})


def test_the_standard_suite_leaves_the_canonical_spec_and_task_id_unchanged() -> None:
    default = _spec(None)
    assert default.task.crypto == "standard"
    assert "crypto" not in json.loads(canonical_json(default))["task"]
    assert task_id(_spec("standard")) == task_id(default)


def test_the_gmt_suite_is_part_of_the_task_id() -> None:
    gmt = _spec("gmt")
    assert json.loads(canonical_json(gmt))["task"]["crypto"] == "gmt"
    assert task_id(gmt) != task_id(_spec(None))


def test_an_unknown_suite_is_refused() -> None:
    from pydantic import ValidationError

    from chronoseal.spec._model import TaskInfo

    with pytest.raises(ValidationError):
        TaskInfo.model_validate(
            {"name": "t", "kind": "forecast", "deadline": "2030-01-01T00:00:00Z", "crypto": "sm9"}
        )
