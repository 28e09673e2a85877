"""A party approves only what it checked itself: same spec, same pins, consented policies."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from chronoseal.node import bundled_scenario, load_scenario
from chronoseal.spec import (
    Laplace,
    OnChainTask,
    PartyConfig,
    TaskSpec,
    resolve_measurements,
    review_task,
    task_id,
)


@pytest.fixture(scope="module")
def spec() -> TaskSpec:
    scenario = load_scenario(bundled_scenario())
    return resolve_measurements(scenario.spec, lambda c, t: bytes([len(c.value)]) * 32)


@pytest.fixture(scope="module")
def parties() -> dict[str, PartyConfig]:
    return load_scenario(bundled_scenario()).parties


def _onchain(spec: TaskSpec, **changes: object) -> OnChainTask:
    base = OnChainTask(
        task_id=task_id(spec),
        participants=[(p.org, frozenset(r.value for r in p.roles)) for p in spec.participants],
        pins=[(c.value, p.tee, p.digest) for c, p in spec.measurements.pins().items()],
        state="Proposed",
    )
    return replace(base, **changes)  # type: ignore[arg-type]


def _ids(spec: TaskSpec, party: PartyConfig, onchain: OnChainTask) -> list[str]:
    return [p.id for p in review_task(party, spec, onchain, [True] * len(onchain.pins))]


def test_every_bundled_party_accepts_the_bundled_task(
    spec: TaskSpec, parties: dict[str, PartyConfig]
) -> None:
    for party in parties.values():
        assert _ids(spec, party, _onchain(spec)) == []


def test_a_different_spec_on_chain_is_refused(
    spec: TaskSpec, parties: dict[str, PartyConfig]
) -> None:
    onchain = _onchain(spec, task_id=b"\x01" * 32)
    assert _ids(spec, parties["weather"], onchain) == ["review.spec.mismatch"]


def test_swapped_measurement_and_revoked_pin(
    spec: TaskSpec, parties: dict[str, PartyConfig]
) -> None:
    pins = [(c, t, b"\xee" * 32 if c == "analysis" else d) for c, t, d in _onchain(spec).pins]
    assert "review.measurement.mismatch" in _ids(spec, parties["events"], _onchain(spec, pins=pins))
    onchain = _onchain(spec)
    usable = [comp != "analysis" for comp, _, _ in onchain.pins]  # the analysis pin revoked
    problems = review_task(parties["events"], spec, onchain, usable)
    assert [p.id for p in problems] == ["review.measurement.not_usable"]
    assert "analysis" in problems[0].message


def test_participants_or_state_differ(spec: TaskSpec, parties: dict[str, PartyConfig]) -> None:
    fewer = list(_onchain(spec).participants)[:2]
    assert "review.participants.mismatch" in _ids(
        spec, parties["transit"], _onchain(spec, participants=fewer)
    )
    assert "review.task.state" in _ids(spec, parties["transit"], _onchain(spec, state="Approved"))


def test_policy_outside_consent_is_refused(spec: TaskSpec, parties: dict[str, PartyConfig]) -> None:
    weather = spec.datasets_of("weather")[0]
    columns = dict(weather.policy.columns)
    columns["gust"] = columns["date"]  # "keep" where the weather service consents only to "drop"
    changed_ds = weather.model_copy(
        update={"policy": weather.policy.model_copy(update={"columns": columns})}
    )
    changed = spec.model_copy(
        update={"datasets": [changed_ds if d is weather else d for d in spec.datasets]}
    )
    problems = review_task(
        parties["weather"], changed, _onchain(changed), [True] * len(_onchain(changed).pins)
    )
    assert [p.id for p in problems] == ["review.policy.not_consented"]
    assert "weather.gust" in problems[0].message


def test_epsilon_budget_in_consent(spec: TaskSpec, parties: dict[str, PartyConfig]) -> None:
    transit = spec.datasets_of("transit")[0]
    columns = dict(transit.policy.columns)
    columns["rides"] = Laplace(action="laplace", sensitivity=1.0, epsilon=5.0)
    ds = transit.model_copy(
        update={"policy": transit.policy.model_copy(update={"columns": columns})}
    )
    changed = spec.model_copy(
        update={"datasets": [ds if d is transit else d for d in spec.datasets]}
    )
    party = parties["transit"]
    strict = party.model_copy(
        update={"consent": party.consent.model_copy(update={"max_epsilon": 1.0})}
    )
    assert _ids(changed, party, _onchain(changed)) == []
    assert _ids(changed, strict, _onchain(changed)) == ["review.privacy.epsilon"]


def test_unknown_source_is_refused(spec: TaskSpec, parties: dict[str, PartyConfig]) -> None:
    party = parties["events"].model_copy(update={"sources": {}})
    assert _ids(spec, party, _onchain(spec)) == ["review.source.unknown"]


def test_scenario_paths_resolve(tmp_path: Path) -> None:
    scenario = load_scenario(bundled_scenario())
    assert scenario.proposer == "transit"
    assert set(scenario.parties) == {"transit", "weather", "events"}
    assert scenario.spec_path.is_file()
