"""Ledger benchmark: gas per full task lifecycle vs number of parties, and transactions/s.

    .venv/bin/python bench/ledger.py [--quick]

Gas is read from receipts on the embedded chain (and on anvil, when installed via
scripts/anvil). Transactions per second are measured with the same signed-transaction
path the client always uses (local signing, fee lookup, receipt wait). The last line
printed is one JSON object.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from eth_account import Account
from eth_account.signers.local import LocalAccount

from chronoseal.errors import LedgerError
from chronoseal.ledger import (
    ChainBackend,
    ChainComponent,
    ChainRole,
    ChainTee,
    Consortium,
    EmbeddedChain,
    JsonRpcChain,
    TaskState,
)

REPO = Path(__file__).resolve().parents[1]
PARTY_COUNTS = (2, 3, 5, 10)
ETH = 10**18


def h(label: str) -> bytes:
    return hashlib.sha256(label.encode()).digest()


class Bench:
    """A consortium with ``max_parties`` members and approved simulated measurements."""

    def __init__(self, chain: ChainBackend, max_parties: int) -> None:
        self.chain = chain
        self.names = [f"org{i:02d}" for i in range(max_parties)]
        keys: list[LocalAccount] = [Account.create() for _ in self.names]
        deployer, analysis, prediction = Account.create(), Account.create(), Account.create()
        for account in [deployer, analysis, prediction, *keys]:
            chain.fund(account.address, 10 * ETH)
        self.c = Consortium.deploy(
            chain, deployer.key, list(zip(self.names, [k.address for k in keys], strict=True))
        )
        self.orgs = {n: self.c.as_org(n, k.key) for n, k in zip(self.names, keys, strict=True)}
        self.analysis = self.c.as_component(analysis.key)
        self.prediction = self.c.as_component(prediction.key)
        self.m_analysis, self.m_prediction = h("analysis"), h("prediction")
        for kind, m in (
            (ChainComponent.ANALYSIS, self.m_analysis),
            (ChainComponent.PREDICTION, self.m_prediction),
        ):
            self.orgs[self.names[0]].propose_measurement(kind, ChainTee.SIMULATED, m)
            for name in self.names[1:]:
                self.orgs[name].approve_measurement(kind, ChainTee.SIMULATED, m)
        self.serial = 0

    def lifecycle(self, parties: int) -> tuple[int, int, bytes]:
        """Run one task from proposal to retirement; return (gas, transactions, task id)."""
        self.serial += 1
        task_id = h(f"task-{parties}-{self.serial}")
        names = self.names[:parties]
        roles = [(n, ChainRole.DATA_PROVIDER | ChainRole.RESULT_RECIPIENT) for n in names]
        pins = [
            (ChainComponent.ANALYSIS, ChainTee.SIMULATED, self.m_analysis),
            (ChainComponent.PREDICTION, ChainTee.SIMULATED, self.m_prediction),
        ]
        now = int(self.chain.w3.eth.get_block("latest")["timestamp"])
        lead = self.orgs[names[0]]
        receipts = [lead.propose_task(task_id, roles, pins, now + 86400)]
        receipts += [self.orgs[n].approve_task(task_id) for n in names]
        evidence = h(f"evidence-{task_id.hex()}")
        receipts.append(
            self.analysis.post_attestation(
                task_id,
                ChainComponent.ANALYSIS,
                ChainTee.SIMULATED,
                self.m_analysis,
                evidence,
                h("tls"),
            )
        )
        receipts += [
            self.orgs[n].acknowledge_attestation(task_id, evidence, self.analysis.address)
            for n in names
        ]
        for n in names:
            receipts.append(self.orgs[n].post_gateway_commitment(task_id, h(f"data-{n}")))
            receipts.append(self.analysis.post_runtime_commitment(task_id, n, h(f"data-{n}")))
        receipts.append(self.analysis.post_model_commitment(task_id, h("model"), h("metrics")))
        p_evidence = h(f"p-evidence-{task_id.hex()}")
        receipts.append(
            self.prediction.post_attestation(
                task_id,
                ChainComponent.PREDICTION,
                ChainTee.SIMULATED,
                self.m_prediction,
                p_evidence,
                h("tls-p"),
            )
        )
        receipts.append(
            self.analysis.acknowledge_prediction(task_id, p_evidence, self.prediction.address)
        )
        receipts.append(self.prediction.post_prediction_model_commitment(task_id, h("model")))
        receipts.append(self.prediction.post_audit_root(task_id, h("audit-0"), 1000))
        receipts.append(lead.retire_task(task_id))
        if self.c.task_state(task_id) is not TaskState.RETIRED:
            raise RuntimeError(f"lifecycle for {parties} parties did not reach Retired")
        return sum(r.gas_used for r in receipts), len(receipts), task_id

    def throughput(self, count: int) -> float:
        """Audit-root transactions per second, on a task brought to Serving for it."""
        self.serial += 1
        task_id = h(f"tps-{self.serial}")
        names = self.names[:2]
        now = int(self.chain.w3.eth.get_block("latest")["timestamp"])
        roles = [(n, ChainRole.DATA_PROVIDER | ChainRole.RESULT_RECIPIENT) for n in names]
        pins = [
            (ChainComponent.ANALYSIS, ChainTee.SIMULATED, self.m_analysis),
            (ChainComponent.PREDICTION, ChainTee.SIMULATED, self.m_prediction),
        ]
        self.orgs[names[0]].propose_task(task_id, roles, pins, now + 86400)
        for n in names:
            self.orgs[n].approve_task(task_id)
        ev = h(f"ev-{task_id.hex()}")
        self.analysis.post_attestation(
            task_id, ChainComponent.ANALYSIS, ChainTee.SIMULATED, self.m_analysis, ev, h("t")
        )
        for n in names:
            self.orgs[n].acknowledge_attestation(task_id, ev, self.analysis.address)
        for n in names:
            self.orgs[n].post_gateway_commitment(task_id, h(n))
            self.analysis.post_runtime_commitment(task_id, n, h(n))
        self.analysis.post_model_commitment(task_id, h("model"), h("metrics"))
        pev = h(f"pev-{task_id.hex()}")
        self.prediction.post_attestation(
            task_id, ChainComponent.PREDICTION, ChainTee.SIMULATED, self.m_prediction, pev, h("t")
        )
        self.analysis.acknowledge_prediction(task_id, pev, self.prediction.address)
        self.prediction.post_prediction_model_commitment(task_id, h("model"))
        start = time.perf_counter()
        for i in range(count):
            self.prediction.post_audit_root(task_id, h(f"root-{i}"), 100)
        return count / (time.perf_counter() - start)


def fit(xs: list[int], ys: list[int]) -> dict[str, float]:
    """Least-squares line with R² and the largest residual relative to the measured gas."""
    n = len(xs)
    mx, my = sum(xs) / n, sum(ys) / n
    sxx = sum((x - mx) ** 2 for x in xs)
    slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sxx
    intercept = my - slope * mx
    residuals = [y - (intercept + slope * x) for x, y in zip(xs, ys, strict=True)]
    ss_tot = sum((y - my) ** 2 for y in ys)
    return {
        "slope_gas_per_party": round(slope, 1),
        "intercept_gas": round(intercept, 1),
        "r2": round(1 - sum(r * r for r in residuals) / ss_tot, 6),
        "max_rel_residual": round(max(abs(r) / y for r, y in zip(residuals, ys, strict=True)), 5),
    }


def start_anvil() -> tuple[subprocess.Popen[bytes], str] | None:
    script = REPO / "scripts" / "anvil"
    try:
        binary = subprocess.run(
            [str(script)], check=True, capture_output=True, text=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError) as exc:
        print(f"anvil unavailable: {exc}", file=sys.stderr)
        return None
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    proc = subprocess.Popen([binary, "--host", "127.0.0.1", "--port", str(port), "--silent"])
    url = f"http://127.0.0.1:{port}"
    for _ in range(200):
        try:
            JsonRpcChain(url)
            return proc, url
        except LedgerError:  # not up yet
            time.sleep(0.05)
    proc.terminate()
    return None


def measure(chain: ChainBackend, tx_count: int, repeats: int) -> dict[str, Any]:
    bench = Bench(chain, max(PARTY_COUNTS))
    gas: dict[int, int] = {}
    txs: dict[int, int] = {}
    for parties in PARTY_COUNTS:
        runs = [bench.lifecycle(parties) for _ in range(repeats)]
        gas[parties], txs[parties] = runs[-1][0], runs[-1][1]
    tps = bench.throughput(tx_count)
    return {
        "gas_per_lifecycle": {str(k): v for k, v in gas.items()},
        "txs_per_lifecycle": {str(k): v for k, v in txs.items()},
        "fit": fit(list(gas), list(gas.values())),
        "tps": round(tps, 1),
        "tps_tx_count": tx_count,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer transactions (~1 minute)")
    args = parser.parse_args()
    tx_count, repeats = (60, 1) if args.quick else (400, 2)
    started = time.perf_counter()
    result: dict[str, Any] = {"bench": "ledger", "quick": args.quick, "cpus": os.cpu_count()}
    result["embedded"] = measure(EmbeddedChain(), tx_count, repeats)
    print(f"embedded: {result['embedded']}")
    anvil = start_anvil()
    if anvil is None:
        result["anvil"] = None
    else:
        proc, url = anvil
        try:
            result["anvil"] = measure(JsonRpcChain(url), tx_count, repeats)
        finally:
            proc.terminate()
            proc.wait(timeout=10)
        print(f"anvil: {result['anvil']}")
        result["tps_ratio_anvil_over_embedded"] = round(
            result["anvil"]["tps"] / result["embedded"]["tps"], 2
        )
    result["seconds"] = round(time.perf_counter() - started, 1)
    print(json.dumps(result, sort_keys=True))


if __name__ == "__main__":
    main()
