"""The whole task as separate processes coordinated only through a chain node, and the
crash faults DESIGN.md promises to survive: every outcome visible on chain, none hanging."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from eth_account import Account
from eth_account.messages import encode_defunct
from test_agents import PASSWORD, _approved_task, _cli, _finish, _gateway

from chronoseal.attest import attester_for
from chronoseal.audit import audit_task
from chronoseal.ledger import JsonRpcChain, TaskState, read_events
from chronoseal.node import Anvil, DemoConsortium, bundled_scenario, free_ports, load_scenario
from chronoseal.prediction import ForecastClient
from chronoseal.spec import Component

pytestmark = [pytest.mark.integration, pytest.mark.anvil]


def _small_scenario(tmp_path: Path) -> Path:
    """The bundled scenario with 2 back-test windows and no contribution: the same path
    through every component, in a fraction of the training time."""
    root = tmp_path / "scenario"
    shutil.copytree(bundled_scenario().parent, root)
    task = root / "task.toml"
    text = task.read_text().replace("windows = 13", "windows = 2")
    task.write_text(text.replace("contribution = {", "# contribution = {"))
    return root / "scenario.toml"


def test_run_with_one_process_per_component_ends_audited(anvil_url: str, tmp_path: Path) -> None:
    scenario = _small_scenario(tmp_path)
    out = tmp_path / "run.json"
    work = tmp_path / "work"
    proc = subprocess.run(
        [
            *_cli_argv(),
            "run", str(scenario), "--rpc", anvil_url, "--json", str(out),
            "--work", str(work), "--timeout", "400",
        ],
        capture_output=True, text=True, timeout=900, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    doc = json.loads(out.read_text())
    assert doc["task"]["state"] == "Serving"
    assert doc["audit"]["verified"] is True and doc["audit"]["checks"] >= 10
    # every check reached, the relayed approval (weather's, submitted by transit) included
    assert doc["audit"]["passed"] == doc["audit"]["checks"]
    assert doc["audit"]["verdicts"]["audit.signatures"] == "pass"
    assert doc["predictions"]["served"] == 2 and doc["predictions"]["refused"] == 1
    assert doc["predictions"]["refusals"] == {"prediction.request.not_recipient": 1}
    assert all(p["commitment_matched"] for p in doc["parties"])
    logs = sorted(p.name for p in (work / "logs").iterdir())
    assert logs == sorted(
        ["analysis.log", "prediction.log"]
        + [f"{kind}-{org}.log" for kind in ("gateway", "party") for org in
           ("transit", "weather", "events")]
    )  # fmt: skip
    approved = [
        json.loads(line)
        for line in (work / "logs" / "party-weather.log").read_text().splitlines()
        if line.startswith("{")
    ]
    assert any(e["event"] == "party.task.approved" for e in approved)
    assert all({"time", "component", "task", "event", "message"} <= set(e) for e in approved)


def test_an_analysis_runtime_killed_while_training_aborts_the_task_on_restart(
    anvil_url: str, tmp_path: Path, loopback_port: int
) -> None:
    root, task, world, env, keys, common = _approved_task(tmp_path, anvil_url, "analysis")
    analysis_args = (
        "analysis", "serve", "--spec", str(task), *common, "--key-file",
        str(keys / "analysis.json"), "--listen", f"127.0.0.1:{loopback_port}",
        "--timeout", "300", "--log-format", "json",
    )  # fmt: skip
    log = tmp_path / "analysis.log"
    with log.open("w") as out:
        first = subprocess.Popen(
            [*_cli_argv(), *analysis_args], env=env, stdout=out, stderr=subprocess.STDOUT
        )
    gateways = {
        org: _gateway(
            org,
            root,
            task,
            common,
            keys,
            tmp_path / "state",
            loopback_port,
            env,
            "--timeout",
            "300",
        )
        for org in ("transit", "weather", "events")
    }
    deadline = time.monotonic() + 300
    while "every stream is in and matched on chain" not in log.read_text():
        assert first.poll() is None, log.read_text()
        assert time.monotonic() < deadline, "the runtime never started training"
        time.sleep(0.2)
    first.send_signal(signal.SIGKILL)
    first.wait()
    assert world.consortium.task_state(world.task_id) is TaskState.RUNNING

    code, out = _finish(_cli(*analysis_args, env=env), timeout=120)
    assert code == 2, out
    assert "analysis.restart.state_lost" in out
    view = world.consortium.task(world.task_id)
    assert view.state is TaskState.ABORTED
    aborted = [e for e in read_events(world.consortium) if e.name == "ComponentAborted"]
    assert [e.args["reason"] for e in aborted] == ["analysis.restart.state_lost"]
    for org, proc in gateways.items():
        gw_code, gw_out = _finish(proc, timeout=120)
        assert gw_code == 2, f"{org}: {gw_out}"
        assert "analysis.restart.state_lost" in gw_out
    audit = audit_task(world.consortium, world.task_id)
    assert audit.verified and audit.state == "Aborted"


def _cli_argv() -> list[str]:
    return [sys.executable, "-m", "chronoseal"]


def test_party_agents_ride_out_a_chain_node_restart(anvil_url: str, tmp_path: Path) -> None:
    """anvil stopped and restarted from its state file: the agent reconnects, continues from
    its cursor, approves the task proposed meanwhile, and handles nothing twice. (Its own
    node, not the session's ``anvil_url``, which only makes sure anvil is installed.)"""
    work = tmp_path / "chain"
    work.mkdir()
    anvil = Anvil.start(work)
    port = anvil.url.rsplit(":", 1)[1]
    try:
        root = _small_scenario(tmp_path).parent
        world = DemoConsortium(
            load_scenario(root / "scenario.toml"), lambda _: None, chain=JsonRpcChain(anvil.url)
        )
        world.register_measurements(world.spec, world.scenario.proposer)
        env = {**os.environ, "CHRONOSEAL_KEY_PASSWORD": PASSWORD, "PYTHONUNBUFFERED": "1"}
        keys = tmp_path / "keys"
        code, out = _finish(_cli("key", "new", str(keys / "events.json"), env=env), timeout=60)
        assert code == 0, out
        address = out.strip().splitlines()[-1]
        world.org("events").add_key(address)
        world.chain.fund(address, 10**19)
        specs = tmp_path / "specs"
        specs.mkdir()
        shutil.copy(root / "task.toml", specs / "task.toml")
        agent = _cli(
            "party", "serve", "--party", "events", "--config", str(root / "parties/events.toml"),
            "--specs", str(specs), "--chain", anvil.url, "--contract", world.consortium.address,
            "--key-file", str(keys / "events.json"), "--state-dir", str(tmp_path / "state"),
            "--log-format", "json", env=env,
        )  # fmt: skip
        assert agent.stdout is not None
        first = agent.stdout.readline()  # the agent is attached and watching
        assert '"party.watching"' in first, first
        time.sleep(1)
        anvil.stop()  # SIGTERM: anvil writes its state file
        time.sleep(2)
        anvil = Anvil.start(work, port=int(port))
        world.propose()
        deadline = time.monotonic() + 120
        while "events" not in world.consortium.task(world.task_id).approved_by:
            assert agent.poll() is None, agent.communicate()[0]
            assert time.monotonic() < deadline, "the agent did not approve after the restart"
            time.sleep(0.5)
        agent.send_signal(signal.SIGTERM)
        code, out = _finish(agent, timeout=60)
        assert code == 0, out
        lines = [first, *out.splitlines()]
        events = [json.loads(line)["event"] for line in lines if line.startswith("{")]
        assert "ledger.chain.unavailable" in events and "agent.chain.back" in events
        assert events.count("party.task.approved") == 1
    finally:
        anvil.stop()


def test_a_prediction_runtime_killed_while_serving_resumes_without_losing_a_leaf(
    anvil_url: str, tmp_path: Path, loopback_port: int
) -> None:
    """kill -9 with audit leaves not yet on chain; the restarted runtime (same key, same
    sealed state) re-checks the model against the chain, posts the journaled leaves and
    serves again — to a client that appraises its fresh evidence."""
    root, task, world, env, keys, common = _approved_task(
        tmp_path, anvil_url, "analysis", "prediction"
    )
    base = free_ports(3)
    at = f"127.0.0.1:{base}"
    analysis = _cli(
        "analysis", "serve", "--spec", str(task), *common,
        "--key-file", str(keys / "analysis.json"), "--listen", f"127.0.0.1:{loopback_port}",
        "--timeout", "300", "--prediction", at, env=env,
    )  # fmt: skip
    state = tmp_path / "prediction-state"

    def predictor(max_age: str) -> subprocess.Popen[str]:
        return _cli(
            "predict", "serve", "--spec", str(task), *common,
            "--key-file", str(keys / "prediction.json"), "--listen", at, "--timeout", "300",
            "--audit-max-age", max_age, "--state-dir", str(state), env=env,
        )  # fmt: skip

    first = predictor("3600")  # nothing reaches the chain before the kill
    gateways = [
        _gateway(
            org,
            root,
            task,
            common,
            keys,
            tmp_path / "state",
            loopback_port,
            env,
            "--timeout",
            "300",
            "--prediction",
            at,
        )
        for org in ("transit", "weather", "events")
    ]
    for proc in [*gateways, analysis]:
        code, out = _finish(proc, timeout=400)
        assert code == 0, out
    assert world.consortium.task_state(world.task_id) is TaskState.SERVING

    transit = _client(world, keys / "transit.json", env)
    with transit:
        transit.open(("127.0.0.1", base + 2))
        assert transit.forecast().forecast is not None
    first.send_signal(signal.SIGKILL)
    _finish(first, timeout=30)
    assert world.consortium.task(world.task_id).audited_predictions == 0  # all in the journal

    second = predictor("1")
    try:
        deadline = time.monotonic() + 120
        while world.consortium.task(world.task_id).audited_predictions < 3:
            assert second.poll() is None, second.communicate()[0]
            assert time.monotonic() < deadline, "the journaled leaves were never posted"
            time.sleep(0.5)
        code, served = _finish(
            _cli(
                "predict", "query", "--spec", str(task), "--party", "transit", *common,
                "--key-file", str(keys / "transit.json"), "--prediction", f"127.0.0.1:{base + 2}",
                env=env,
            ),
            timeout=120,
        )  # fmt: skip
        assert code == 0, served
        assert "checked on chain" in served
    finally:
        second.send_signal(signal.SIGTERM)
        code, out = _finish(second, timeout=60)
    assert code == 0, out
    assert "restarted while Serving" in out and "3 journaled audit leaves" in out
    view = world.consortium.task(world.task_id)
    # two feed epochs + one request before the kill, the restart itself, one request after
    assert view.audited_predictions == 5
    audit = audit_task(world.consortium, world.task_id)
    assert audit.verified, [c.to_json() for c in audit.failures]


def _client(world: DemoConsortium, key_file: Path, env: dict[str, str]) -> ForecastClient:
    doc = json.loads(key_file.read_text())
    account = Account.from_key(Account.decrypt(doc, env["CHRONOSEAL_KEY_PASSWORD"]))

    def sign(digest: bytes) -> bytes:
        return bytes(account.sign_message(encode_defunct(primitive=digest)).signature)

    return ForecastClient(
        world.consortium,
        world.spec,
        party="transit",
        sign=sign,
        attester=attester_for(world.spec.measurements.gateway.tee, Component.GATEWAY),
    )


def test_a_party_whose_source_is_garbage_is_named_with_its_own_refusal(
    anvil_url: str, tmp_path: Path
) -> None:
    """Weather's data file is not Parquet: the run ends naming weather's gateway and its
    source's refusal, not the other gateways stopped by weather's abort of the task."""
    scenario = _small_scenario(tmp_path)
    (scenario.parent / "data" / "weather.parquet").write_bytes(b"not parquet at all" * 64)
    proc = subprocess.run(
        [
            *_cli_argv(),
            "run", str(scenario), "--rpc", anvil_url, "--work", str(tmp_path / "work"),
            "--timeout", "300",
        ],
        capture_output=True, text=True, timeout=900, check=False,
    )  # fmt: skip
    output = proc.stdout + proc.stderr
    assert proc.returncode != 0
    headline = next(line for line in output.splitlines() if "exited with code" in line)
    assert "gateway-weather" in headline, output[-3000:]
    assert "data." in output.split(headline, 1)[1], output[-3000:]
