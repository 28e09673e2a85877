"""Prediction serving: latency and throughput over the attested channel vs the model in-process.

One run of the bundled Chicago task (2 back-test windows, so training takes seconds) through
Trained on the embedded chain; then a real prediction runtime takes the sealed model over,
the weather service and the events office feed it, and the transit operator asks for the
14-day forecast again and again through its gateway identity:

* **channel**: one request at a time on one attested connection (signed request, recipient,
  budget and replay checks, the forecast as Arrow IPC, an audit leaf per request), and the
  same spread over several connections in parallel;
* **in-process**: the loaded model's ``predict`` on the same inputs, called directly — the
  baseline, with no channel, no checks and no audit.

Reported: p50/p99 latency of both, ``p99_overhead_ms`` (channel p99 minus in-process p99; the
runtime answers repeated requests from one model call per feed epoch, so its p99 is compared
with the model call it replaces), requests/s on one and on several connections, and chain
transactions per 1,000 requests (audit batches of 1,000 leaves).

    python bench/prediction.py --quick     # 300 requests per mode, about a minute
    python bench/prediction.py             # 2,000 requests per mode

The last line printed is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from eth_account import Account
from eth_account.messages import encode_defunct

from chronoseal.analysis import AnalysisRuntime
from chronoseal.attest import attester_for
from chronoseal.gateway import Gateway
from chronoseal.node import DemoConsortium, bundled_scenario, load_scenario
from chronoseal.prediction import ForecastClient, PredictionRuntime
from chronoseal.spec import Component


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


class _Bench(DemoConsortium):
    requests = 300
    connections = 4
    result: dict[str, Any]

    def serve(self, runtime: AnalysisRuntime, gateways: list[Gateway]) -> None:  # type: ignore[override]
        key = Account.create()
        self.chain.fund(key.address, 10**20)
        prediction = PredictionRuntime(
            self.consortium,
            self.spec,
            attester=attester_for(self.spec.measurements.prediction.tee, Component.PREDICTION),
            chain_key=key.key,
            audit_max_leaves=1000,
            audit_max_age=3600.0,
        )
        prediction.start()
        try:
            runtime.hand_over(prediction.address("handover"))
            assert prediction.wait_serving(60)
            for gw in gateways:
                if gw.name in ("weather", "events"):
                    gw.send_feed(prediction.address("feeds"))
            prediction.wait_feeds({"weather", "events"}, timeout=30)
            self.result = self._measure(prediction)
        finally:
            prediction.stop()

    def _client(self) -> ForecastClient:
        account = self._keys["transit"]

        def sign(digest: bytes) -> bytes:
            return bytes(account.sign_message(encode_defunct(primitive=digest)).signature)

        return ForecastClient(
            self.consortium,
            self.spec,
            party="transit",
            sign=sign,
            attester=attester_for(self.spec.measurements.gateway.tee, Component.GATEWAY),
        )

    def _measure(self, prediction: PredictionRuntime) -> dict[str, Any]:
        n = self.requests
        txs_before = self.chain_transactions()
        with self._client() as client:
            client.open(prediction.address("forecasts"))
            client.forecast()  # warm: the one model call for this feed epoch
            channel: list[float] = []
            start = time.perf_counter()
            for _ in range(n):
                t = time.perf_counter()
                answer = client.forecast()
                channel.append(time.perf_counter() - t)
                assert answer.forecast is not None, answer.refused
            one_rps = n / (time.perf_counter() - start)

        parallel: list[float] = []
        lock = threading.Lock()

        def worker(count: int) -> None:
            with self._client() as client:
                client.open(prediction.address("forecasts"))
                for _ in range(count):
                    t = time.perf_counter()
                    answer = client.forecast()
                    with lock:
                        parallel.append(time.perf_counter() - t)
                    assert answer.forecast is not None, answer.refused

        threads = [
            threading.Thread(target=worker, args=(n // self.connections,))
            for _ in range(self.connections)
        ]
        start = time.perf_counter()
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        many_rps = len(parallel) / (time.perf_counter() - start)
        prediction.audit.flush()
        txs = self.chain_transactions() - txs_before

        model = prediction.model
        assert model is not None
        future, _ = prediction._future(model, self.spec.model.horizon)
        direct: list[float] = []
        for _ in range(max(30, n // 10)):
            t = time.perf_counter()
            model.predict(self.spec.model.horizon, future=future, level=self.spec.evaluation.level)
            direct.append(time.perf_counter() - t)
        requests = n + len(parallel) + 1
        ms = 1000.0
        return {
            "requests": requests,
            "channel_p50_ms": round(statistics.median(channel) * ms, 3),
            "channel_p99_ms": round(percentile(channel, 0.99) * ms, 3),
            "parallel_p50_ms": round(statistics.median(parallel) * ms, 3),
            "parallel_p99_ms": round(percentile(parallel, 0.99) * ms, 3),
            "in_process_p50_ms": round(statistics.median(direct) * ms, 3),
            "in_process_p99_ms": round(percentile(direct, 0.99) * ms, 3),
            "p99_overhead_ms": round(
                (percentile(channel, 0.99) - percentile(direct, 0.99)) * ms, 3
            ),
            "rps_one_connection": round(one_rps, 1),
            "rps": round(many_rps, 1),
            "connections": self.connections,
            "chain_tx_per_1000_requests": round(txs / requests * 1000, 3),
            "audit_batches": prediction.audit.batches,
        }

    def chain_transactions(self) -> int:
        from chronoseal.ledger import chain_stats

        return chain_stats(self.chain).transactions


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="300 requests per mode")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="chronoseal-bench-") as tmp:
        root = Path(tmp) / "chicago"
        shutil.copytree(bundled_scenario().parent, root)
        task = root / "task.toml"
        text = task.read_text().replace("windows = 13", "windows = 2")
        task.write_text(text.replace("contribution = {", "# contribution = {"))
        world = _Bench(load_scenario(root / "scenario.toml"), lambda _: None)
        world.requests = 300 if args.quick else 2000
        print("training the model (2 windows) and handing it over…", file=sys.stderr)
        world.run("serving")
    result = world.result
    summary = {
        "bench": "prediction",
        "quick": args.quick,
        **result,
        "target_p99_overhead_ms": 2.0,
        "target_rps": 500,
        "target_chain_tx_per_1000_requests": 1,
    }
    print(
        f"p50 {result['channel_p50_ms']} ms, p99 {result['channel_p99_ms']} ms over the channel "
        f"(in-process model call p99 {result['in_process_p99_ms']} ms); "
        f"{result['rps']} requests/s on {result['connections']} connections",
        file=sys.stderr,
    )
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
