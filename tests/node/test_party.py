"""A party's reviewer acts only on chain events: it approves what its own spec and consent
allow, refuses (and aborts) the rest with the refusal id, waits for a spec it does not hold
yet, aborts tasks whose pins are revoked or that hang past their deadline, and after a
restart neither misses nor repeats a decision."""

from __future__ import annotations

import json
import os
import shutil
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from chronoseal.ledger import ChainComponent, ChainTee, TaskState, spec_pins
from chronoseal.node import (
    AgentLog,
    DemoConsortium,
    Health,
    PartyAgent,
    bundled_scenario,
    load_scenario,
    spec_directory,
)


class Events:
    def __init__(self) -> None:
        self.seen: list[tuple[str, str]] = []

    def __call__(self, message: str, *, event: str = "agent.info") -> None:
        self.seen.append((event, message))

    def ids(self) -> list[str]:
        return [e for e, _ in self.seen]


@pytest.fixture
def proposed() -> DemoConsortium:
    world = DemoConsortium(load_scenario(bundled_scenario()), lambda _: None)
    world.propose()
    return world


def agent(
    world: DemoConsortium, org: str, log: Events, state: Path | None = None, **kw: object
) -> PartyAgent:
    specs = kw.pop("specs", lambda: {world.task_id: world.spec})
    return PartyAgent(
        world.consortium,
        world.scenario.parties[org],
        specs,  # type: ignore[arg-type]
        world._keys[org],
        log=log,
        state_dir=state,
        **kw,  # type: ignore[arg-type]
    )


def test_every_party_approves_from_events_and_the_last_one_makes_it_approved(
    proposed: DemoConsortium, tmp_path: Path
) -> None:
    log = Events()
    for org in ("transit", "weather", "events"):
        decisions = agent(proposed, org, log, tmp_path / org).step()
        assert [d.action for d in decisions] == ["approved"]
    assert proposed.consortium.task_state(proposed.task_id) is TaskState.APPROVED
    assert log.ids().count("party.task.approved") == 3


def test_a_restarted_agent_does_not_act_twice(proposed: DemoConsortium, tmp_path: Path) -> None:
    log = Events()
    assert agent(proposed, "transit", log, tmp_path).step()[0].action == "approved"
    again = agent(proposed, "transit", log, tmp_path)
    assert again.step() == []
    assert again.decisions["0x" + proposed.task_id.hex()].action == "approved"
    assert proposed.consortium.task(proposed.task_id).approvals == 1


def test_a_task_beyond_the_party_consent_is_refused_and_aborted_with_its_id(
    proposed: DemoConsortium,
) -> None:
    weather = proposed.scenario.parties["weather"]
    strict = weather.model_copy(
        update={"consent": weather.consent.model_copy(update={"result_recipients": ["weather"]})}
    )
    proposed.scenario.parties["weather"] = strict
    log = Events()
    decisions = agent(proposed, "weather", log).step()
    assert [d.action for d in decisions] == ["refused"]
    assert decisions[0].problems[0][0] == "review.release.not_consented"
    assert "review.release.not_consented" in log.ids()
    assert proposed.consortium.task_state(proposed.task_id) is TaskState.ABORTED


def test_a_task_whose_spec_the_party_lacks_waits_until_the_file_arrives(
    proposed: DemoConsortium, tmp_path: Path
) -> None:
    specs = tmp_path / "specs"
    specs.mkdir()
    log = Events()
    reviewer = agent(proposed, "events", log, tmp_path / "state", specs=spec_directory(specs, log))
    assert [d.action for d in reviewer.step()] == []
    assert "party.task.unknown_spec" in log.ids()
    assert reviewer.step() == []  # said once, not at every poll
    assert log.ids().count("party.task.unknown_spec") == 1
    shutil.copy(proposed.scenario.spec_path, specs / "task.toml")
    assert [d.action for d in reviewer.step()] == ["approved"]


def test_a_revoked_pin_before_the_model_exists_aborts_the_task(
    proposed: DemoConsortium,
) -> None:
    log = Events()
    agents = {org: agent(proposed, org, log) for org in ("transit", "weather", "events")}
    for a in agents.values():
        a.step()
    kind, tee, digest = next(p for p in spec_pins(proposed.spec) if p[0] is ChainComponent.ANALYSIS)
    proposed.org("events").revoke_measurement(kind, tee, digest)
    decisions = agents["transit"].step()
    assert [d.action for d in decisions] == ["aborted_revoked"]
    assert "party.task.pin_revoked" in log.ids()
    assert proposed.consortium.task_state(proposed.task_id) is TaskState.ABORTED
    assert ChainTee(tee) is ChainTee.SIMULATED


def test_a_task_left_past_its_deadline_is_aborted(proposed: DemoConsortium) -> None:
    log = Events()
    agents = [agent(proposed, org, log) for org in ("transit", "weather", "events")]
    for a in agents:
        a.step()
    view = proposed.consortium.task(proposed.task_id)
    now = int(proposed.chain.w3.eth.get_block("latest")["timestamp"])
    proposed.chain.advance_time(view.deadline - now + 60)
    proposed.chain.fund(proposed._keys["transit"].address, 1)  # a block past the deadline
    assert [d.action for d in agents[0].step()] == ["aborted_deadline"]
    assert proposed.consortium.task_state(proposed.task_id) is TaskState.ABORTED


def test_probes_answer_live_and_ready_with_reasons() -> None:
    health = Health("party:test", stale_after=0.5)
    host, port = health.serve("127.0.0.1", 0)
    try:

        def get(path: str) -> tuple[int, dict[str, object]]:
            try:
                with urllib.request.urlopen(f"http://{host}:{port}{path}", timeout=5) as r:
                    return r.status, json.loads(r.read())
            except urllib.error.HTTPError as err:
                return err.code, json.loads(err.read())

        assert get("/healthz")[0] == 200
        code, doc = get("/readyz")
        assert code == 503 and doc["reason"] == "agent.starting"
        health.set_ready(True)
        assert get("/readyz")[0] == 200
        health.set_ready(False, "ledger.chain.unavailable")
        assert get("/readyz")[1]["reason"] == "ledger.chain.unavailable"
        assert get("/nope")[0] == 404
    finally:
        health.close()


def test_json_log_lines_carry_component_task_and_event(tmp_path: Path) -> None:
    path = tmp_path / "log.jsonl"
    with path.open("w") as out:
        log = AgentLog("gateway:transit", task="0xab", json_lines=True, stream=out)
        log("refused [prediction.request.not_recipient]", event="prediction.request.not_recipient")
    line = json.loads(path.read_text())
    assert {k: line[k] for k in ("component", "task", "event")} == {
        "component": "gateway:transit",
        "task": "0xab",
        "event": "prediction.request.not_recipient",
    }
    assert line["message"].endswith("[prediction.request.not_recipient]")


def test_an_unusable_spec_file_is_reported_and_the_others_still_reviewed(
    proposed: DemoConsortium, tmp_path: Path
) -> None:
    specs = tmp_path / "specs"
    specs.mkdir()
    (specs / "broken.toml").write_text("spec_version = 1\n[task\n")
    shutil.copy(proposed.scenario.spec_path, specs / "task.toml")
    log = Events()
    reviewer = agent(proposed, "transit", log, specs=spec_directory(specs, log))
    assert [d.action for d in reviewer.step()] == ["approved"]
    assert any("broken.toml is unusable" in m for _, m in log.seen)


def test_the_reviewer_skips_what_is_not_a_regular_file_in_its_spec_directory(
    tmp_path: Path,
) -> None:
    specs = tmp_path / "specs"
    specs.mkdir()
    shutil.copy(bundled_scenario().parent / "task.toml", specs / "task.toml")
    os.mkfifo(specs / "blocked.toml")
    (specs / "dir.toml").mkdir()
    logged: list[str | None] = []
    found = spec_directory(specs, lambda _m, event=None: logged.append(event))()
    assert len(found) == 1 and logged == []
