"""Mode 3 of DESIGN.md: each component its own process, coordinated only through a real
JSON-RPC chain node (anvil). The parties' gateways use rotated keys from encrypted keystores.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from chronoseal.ledger import JsonRpcChain, TaskState, read_events
from chronoseal.node import DemoConsortium, bundled_scenario, free_ports, load_scenario

pytestmark = [pytest.mark.integration, pytest.mark.anvil]
PASSWORD = "correct horse battery staple"


def _cli(*args: str, env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "chronoseal", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _finish(proc: subprocess.Popen[str], timeout: float = 240) -> tuple[int, str]:
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate()
    return proc.returncode, out


def _gateway(
    org: str,
    root: Path,
    task: Path,
    common: list[str],
    keys: Path,
    state: Path,
    runtime_port: int,
    env: dict[str, str],
    *extra: str,
) -> subprocess.Popen[str]:
    """``gateway serve`` for ``org`` of the scenario copy under ``root``, its key in
    ``keys``, its party-local state under ``state``."""
    return _cli(
        "gateway", "serve", "--party", org,
        "--config", str(root / "parties" / f"{org}.toml"), "--spec", str(task), *common,
        "--key-file", str(keys / f"{org}.json"), "--runtime", f"127.0.0.1:{runtime_port}",
        "--state-dir", str(state / org), *extra, env=env,
    )  # fmt: skip


def _new_key(path: Path, env: dict[str, str]) -> str:
    code, out = _finish(_cli("key", "new", str(path), env=env), timeout=60)
    assert code == 0, out
    return out.strip().splitlines()[-1]


def _approved_task(
    tmp_path: Path, anvil_url: str, *components: str
) -> tuple[Path, Path, DemoConsortium, dict[str, str], Path, list[str]]:
    """The bundled task (2 back-test windows, no contribution) proposed and approved on
    anvil; a funded keystore per component and per party gateway (registered for its org).
    Returns (scenario dir, task file, world, environment, key dir, --chain/--contract)."""
    root = tmp_path / "scenario"
    shutil.copytree(bundled_scenario().parent, root)
    task = root / "task.toml"
    text = task.read_text().replace("windows = 13", "windows = 2")
    task.write_text(text.replace("contribution = {", "# contribution = {"))
    chain = JsonRpcChain(anvil_url)
    world = DemoConsortium(load_scenario(root / "scenario.toml"), lambda _: None, chain=chain)
    world.propose()
    world.review_and_approve(world.spec, world.task_id)
    env = {**os.environ, "CHRONOSEAL_KEY_PASSWORD": PASSWORD, "PYTHONUNBUFFERED": "1"}
    keys = tmp_path / "keys"
    for component in components:
        chain.fund(_new_key(keys / f"{component}.json", env), 10**19)
    for org in ("transit", "weather", "events"):
        address = _new_key(keys / f"{org}.json", env)
        world.org(org).add_key(address)
        chain.fund(address, 10**19)
    return (
        root,
        task,
        world,
        env,
        keys,
        ["--chain", anvil_url, "--contract", world.consortium.address],
    )


def test_separate_processes_stream_and_train_through_the_chain(
    anvil_url: str, tmp_path: Path, loopback_port: int
) -> None:
    root = tmp_path / "scenario"
    shutil.copytree(bundled_scenario().parent, root)
    chain = JsonRpcChain(anvil_url)
    world = DemoConsortium(load_scenario(root / "scenario.toml"), lambda _: None, chain=chain)
    world.propose()
    world.review_and_approve(world.spec, world.task_id)

    env = {**os.environ, "CHRONOSEAL_KEY_PASSWORD": PASSWORD}
    keys = tmp_path / "keys"
    runtime_address = _new_key(keys / "analysis.json", env)
    chain.fund(runtime_address, 10**19)
    for org in ("transit", "weather", "events"):
        gateway_address = _new_key(keys / f"{org}.json", env)
        world.org(org).add_key(gateway_address)  # the gateway gets its own rotated key
        chain.fund(gateway_address, 10**19)

    port = loopback_port
    common = ["--chain", anvil_url, "--contract", world.consortium.address]
    analysis = _cli(
        "analysis",
        "serve",
        "--spec",
        str(root / "task.toml"),
        *common,
        "--key-file",
        str(keys / "analysis.json"),
        "--listen",
        f"127.0.0.1:{port}",
        "--timeout",
        "300",
        env=env,
    )
    gateways = {
        org: _gateway(
            org,
            root,
            root / "task.toml",
            common,
            keys,
            tmp_path / "state",
            port,
            env,
            "--timeout",
            "600",
        )
        for org in ("transit", "weather", "events")
    }
    outputs = {org: _finish(proc, timeout=700) for org, proc in gateways.items()}
    code, analysis_out = _finish(analysis, timeout=400)
    for org, (gw_code, out) in outputs.items():
        assert gw_code == 0, f"{org}: {out}\nanalysis runtime: {analysis_out}"
        assert "5,684 rows" in out
        assert f"{org} received its release (checked against the chain)" in out
        assert "contribution" in out
    assert code == 0, analysis_out
    assert "model mlforecast-lightgbm committed" in analysis_out
    view = world.consortium.task(world.task_id)
    assert view.state is TaskState.TRAINED and view.model_commitment is not None
    matched = [e for e in read_events(world.consortium) if e.name == "CommitmentMatched"]
    assert len(matched) == 3


def test_gateway_refuses_a_key_the_chain_does_not_know(anvil_url: str, tmp_path: Path) -> None:
    root = bundled_scenario().parent
    chain = JsonRpcChain(anvil_url)
    world = DemoConsortium(load_scenario(root / "scenario.toml"), lambda _: None, chain=chain)
    env = {**os.environ, "CHRONOSEAL_KEY_PASSWORD": PASSWORD}
    _new_key(tmp_path / "stranger.json", env)
    started = time.monotonic()
    code, out = _finish(
        _cli(
            "gateway",
            "serve",
            "--party",
            "transit",
            "--config",
            str(root / "parties" / "transit.toml"),
            "--spec",
            str(root / "task.toml"),
            "--chain",
            anvil_url,
            "--contract",
            world.consortium.address,
            "--key-file",
            str(tmp_path / "stranger.json"),
            "--runtime",
            "127.0.0.1:9",
            "--timeout",
            "5",
            env=env,
        ),
        timeout=60,
    )
    assert code == 2, out
    assert "config.key.not_registered" in out
    assert time.monotonic() - started < 60


def test_a_gateway_killed_mid_stream_resumes_without_losing_or_repeating_a_row(
    anvil_url: str, tmp_path: Path, loopback_port: int
) -> None:
    """kill -9 of the transit gateway while it streams: restarted, it finds the task Running
    and its bound runtime, resumes from the batches the runtime holds, and the commitments
    match on chain — so the runtime holds exactly the source's rows, each once."""
    root, task, world, env, keys, common = _approved_task(tmp_path, anvil_url, "analysis")
    analysis = _cli(
        "analysis", "serve", "--spec", str(task), *common,
        "--key-file", str(keys / "analysis.json"),
        "--listen", f"127.0.0.1:{loopback_port}", "--timeout", "300", env=env,
    )  # fmt: skip

    def gateway(org: str, *extra: str) -> subprocess.Popen[str]:
        return _gateway(
            org, root, task, common, keys, tmp_path / "state", loopback_port, env,
            "--timeout", "300", *extra,
        )  # fmt: skip

    others = {org: gateway(org) for org in ("weather", "events")}
    victim = gateway("transit", "--batch-rows", "20", "--progress")
    assert victim.stdout is not None
    for line in victim.stdout:
        if line.startswith("sent "):
            victim.send_signal(signal.SIGSTOP)  # mid-stream, for certain
            break
    victim.kill()
    victim.communicate(timeout=30)  # reaps it and closes its pipe
    assert world.consortium.task_state(world.task_id) is TaskState.RUNNING
    gateway_side, _ = world.consortium.commitments(world.task_id, "transit")
    assert gateway_side is None  # it never finished

    code, out = _finish(gateway("transit", "--batch-rows", "20"), timeout=400)
    assert code == 0, out
    assert "5,684 rows in 285 batches" in out
    outputs = {org: _finish(proc, timeout=400) for org, proc in others.items()}
    analysis_code, analysis_out = _finish(analysis, timeout=400)
    assert all(c == 0 for c, _ in outputs.values()), outputs
    assert analysis_code == 0, analysis_out
    assert "transit: 5,684 rows in 285 batches" in analysis_out
    gateway_side, runtime_side = world.consortium.commitments(world.task_id, "transit")
    assert gateway_side is not None and gateway_side == runtime_side
    assert world.consortium.task_state(world.task_id) is TaskState.TRAINED


def test_a_gateway_killed_after_its_commitment_still_gets_its_release(
    anvil_url: str, tmp_path: Path, loopback_port: int
) -> None:
    """kill -9 of the transit gateway once its commitment is on chain, before the model is
    trained: restarted after Trained, it streams nothing again and fetches its release."""
    root, task, world, env, keys, common = _approved_task(tmp_path, anvil_url, "analysis")
    analysis = _cli(
        "analysis", "serve", "--spec", str(task), *common,
        "--key-file", str(keys / "analysis.json"),
        "--listen", f"127.0.0.1:{loopback_port}", "--timeout", "300", env=env,
    )  # fmt: skip

    def gateway(org: str) -> subprocess.Popen[str]:
        return _gateway(
            org, root, task, common, keys, tmp_path / "state", loopback_port, env,
            "--timeout", "300",
        )  # fmt: skip

    victim = gateway("transit")
    others = {org: gateway(org) for org in ("weather", "events")}
    assert victim.stdout is not None
    for line in victim.stdout:
        if "stream committed" in line:
            victim.kill()
            break
    victim.communicate(timeout=30)
    gateway_side, runtime_side = world.consortium.commitments(world.task_id, "transit")
    assert gateway_side is not None and gateway_side == runtime_side
    deadline = time.monotonic() + 300
    while world.consortium.task_state(world.task_id) is not TaskState.TRAINED:
        assert time.monotonic() < deadline, "the task never reached Trained"
        time.sleep(0.5)

    code, out = _finish(gateway("transit"), timeout=300)
    assert code == 0, out
    assert "stream sent before this restart" in out
    assert "transit received its release (checked against the chain)" in out
    outputs = {org: _finish(proc, timeout=300) for org, proc in others.items()}
    analysis_code, analysis_out = _finish(analysis, timeout=300)
    assert all(c == 0 for c, _ in outputs.values()), outputs
    assert analysis_code == 0, analysis_out


def test_separate_processes_serve_audited_forecasts_through_the_chain(
    anvil_url: str, tmp_path: Path, loopback_port: int
) -> None:
    """Analysis runtime, prediction runtime and three gateways as separate processes: the
    model is handed over (Serving), the weather service and the events office feed the
    prediction runtime, the transit operator is served and the weather service refused, and
    the receipt of each checks against the chain from a fresh process."""
    root, task, world, env, keys, common = _approved_task(
        tmp_path, anvil_url, "analysis", "prediction"
    )
    base = free_ports(3)
    prediction_at = f"127.0.0.1:{base}"
    analysis = _cli(
        "analysis", "serve", "--spec", str(task), *common,
        "--key-file", str(keys / "analysis.json"), "--listen", f"127.0.0.1:{loopback_port}",
        "--timeout", "300", "--prediction", prediction_at, env=env,
    )  # fmt: skip
    predictor = _cli(
        "predict", "serve", "--spec", str(task), *common,
        "--key-file", str(keys / "prediction.json"), "--listen", prediction_at,
        "--timeout", "300", "--audit-max-age", "1", env=env,
    )  # fmt: skip
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
            "--prediction",
            prediction_at,
        )
        for org in ("transit", "weather", "events")
    }
    outputs = {org: _finish(proc, timeout=400) for org, proc in gateways.items()}
    assert all(code == 0 for code, _ in outputs.values()), outputs
    assert "fed the prediction runtime 14 rows" in outputs["weather"][1]
    analysis_code, analysis_out = _finish(analysis, timeout=120)
    assert analysis_code == 0, analysis_out
    assert world.consortium.task_state(world.task_id) is TaskState.SERVING

    forecasts = f"127.0.0.1:{base + 2}"
    receipt = tmp_path / "receipt.json"
    out = tmp_path / "forecast.csv"

    def query(org: str, *extra: str) -> tuple[int, str]:
        return _finish(
            _cli(
                "predict",
                "query",
                "--spec",
                str(task),
                "--party",
                org,
                *common,
                "--key-file",
                str(keys / f"{org}.json"),
                "--prediction",
                forecasts,
                *extra,
                env=env,
            ),
            timeout=120,
        )

    code, served = query("transit", "--out", str(out), "--receipt", str(receipt))
    assert code == 0, served
    assert "checked on chain" in served
    assert len(out.read_text().splitlines()) == 1 + 14
    code, refused = query("weather")
    assert code == 2, refused
    assert "prediction.request.not_recipient" in refused
    # Transit's own first week after the training window, as a CSV export of its table.
    rows = pd.read_parquet(root / "data" / "transit.parquet")
    week = rows[(rows["date"] > dt.date(2016, 8, 14)) & (rows["date"] <= dt.date(2016, 8, 21))]
    observations = tmp_path / "newest.csv"
    week.to_csv(observations, index=False)
    after = tmp_path / "after.csv"
    code, served_after = query(
        "transit", "--input", str(observations), "--horizon", "7", "--out", str(after)
    )
    assert code == 0, served_after
    lines = after.read_text().splitlines()
    assert len(lines) == 1 + 7 and lines[1].split(",")[1].startswith("2016-08-22"), lines
    code, verified = _finish(
        _cli("predict", "verify-receipt", str(receipt), *common, env=env), timeout=60
    )
    assert code == 0, verified
    assert "verified: transit · served" in verified
    doc = json.loads(receipt.read_text())
    doc["count"] += 1
    forged = tmp_path / "forged.json"
    forged.write_text(json.dumps(doc))
    code, rejected = _finish(
        _cli("predict", "verify-receipt", str(forged), *common, env=env), timeout=60
    )
    assert code == 1, rejected
    assert "prediction.receipt.not_on_chain" in rejected

    predictor.send_signal(signal.SIGTERM)
    code, predicted = _finish(predictor, timeout=60)
    assert code == 0, predicted
    assert "2 forecasts served, 1 refused" in predicted
    view = world.consortium.task(world.task_id)
    # four requests (one for the input key), two feed epochs
    assert view.audit_batches >= 1 and view.audited_predictions == 4 + 2
