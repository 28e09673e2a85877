"""The scenario on the members' own chain: four Clique validators (EthereumJS client), every
party on its member's node, one validator killed while the gateways stream; the task still
reaches Serving and the audit verifies from a node that survived."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from chronoseal.ledger import ValidatorNetwork, find_ethereumjs
from chronoseal.node import bundled_scenario

pytestmark = [pytest.mark.integration]

# Run on demand (CHRONOSEAL_VALIDATOR_RUN=1): about 5.5 minutes here; after the back-off,
# reorganisation and receipt-index fixes it passed both times it ran (docs/ledger.md, "Why
# the network was unreliable"), too few runs for CI to gate on it yet. The test is the
# done-when of issue 23.
ON_DEMAND = pytest.mark.skipif(
    os.environ.get("CHRONOSEAL_VALIDATOR_RUN") != "1",
    reason="set CHRONOSEAL_VALIDATOR_RUN=1: the chicago run on four validators takes about "
    "8 minutes (docs/ledger.md)",
)


def _note(path: Path, message: str) -> None:
    """The supervisor's restarts, kept next to the nodes' logs for a failed run."""
    with path.open("a", encoding="utf-8") as f:
        f.write(f"{time.strftime('%H:%M:%S')} {message}\n")


def _small_scenario(tmp_path: Path) -> Path:
    """The bundled scenario with 2 back-test windows and no contribution (as the anvil run)."""
    root = tmp_path / "scenario"
    shutil.copytree(bundled_scenario().parent, root)
    task = root / "task.toml"
    text = task.read_text().replace("windows = 13", "windows = 2")
    task.write_text(text.replace("contribution = {", "# contribution = {"))
    return root / "scenario.toml"


@ON_DEMAND
def test_a_run_on_four_validators_with_one_killed_mid_run_ends_serving_audited(
    tmp_path: Path,
) -> None:
    binary = find_ethereumjs()
    if binary is None:
        message = "the EthereumJS client is not installed: run scripts/ethereumjs"
        if os.environ.get("CHRONOSEAL_REQUIRE_ETHEREUMJS") == "1":
            pytest.fail(message)
        pytest.skip(message)
    network = ValidatorNetwork.create(
        tmp_path / "chain",
        ["transit", "weather", "events", "operator"],
        period=2,
        binary=binary,
        log=lambda m: _note(tmp_path / "supervisor.log", m),
    )
    network.start()
    network.start_supervisor()
    work, out = tmp_path / "work", tmp_path / "run.json"
    env = {
        **os.environ,
        "CHRONOSEAL_FAUCET_KEY_FILE": str(network.faucet_key_file),
        "PYTHONUNBUFFERED": "1",
    }
    argv = [
        sys.executable, "-m", "chronoseal", "run", str(_small_scenario(tmp_path)),
        "--rpc", ",".join(network.urls), "--json", str(out), "--work", str(work),
        "--timeout", "900",
    ]  # fmt: skip
    try:
        with (tmp_path / "run.log").open("wb") as log:
            proc = subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT)
            try:
                # weather's own validator dies once its gateway is streaming
                streaming = work / "logs" / "gateway-weather.log"
                deadline = time.monotonic() + 900
                while not (streaming.exists() and "stream" in streaming.read_text()):
                    assert proc.poll() is None, (tmp_path / "run.log").read_text()[-3000:]
                    assert time.monotonic() < deadline, "the gateways never started streaming"
                    time.sleep(1)
                network.stop_node(1, kill=True)
                code = proc.wait(timeout=1500)
            finally:
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()
        assert code == 0, (tmp_path / "run.log").read_text()[-4000:]
        doc = json.loads(out.read_text())
        assert doc["task"]["state"] == "Serving"
        assert doc["audit"]["verified"] is True
        assert doc["audit"]["passed"] == doc["audit"]["checks"]
        # the same verdict from two nodes that survived, each asked on its own
        verdicts = []
        for url in (network.urls[2], network.urls[3]):
            audit = subprocess.run(
                [
                    sys.executable, "-m", "chronoseal", "audit", doc["task"]["id"],
                    "--rpc", url, "--contract", doc["chain"]["contract"], "--json",
                ],
                capture_output=True, text=True, timeout=300, check=False,
            )  # fmt: skip
            assert audit.returncode == 0, audit.stdout[-2000:] + audit.stderr[-2000:]
            result = json.loads(audit.stdout)
            assert result["verified"] is True
            verdicts.append({c["id"]: c["verdict"] for c in result["checks"]})
        assert verdicts[0] == verdicts[1]
        assert network.head(1) is None  # it stayed down the whole time
    finally:
        network.stop()
