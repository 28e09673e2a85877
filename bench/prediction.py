"""Prediction serving: latency and throughput over the attested channel vs the model in-process.

One run of the bundled Chicago task (2 back-test windows, so training takes seconds) through
Trained, on a local anvil node (``scripts/anvil``; the embedded chain when anvil is absent);
then a real prediction runtime takes the sealed model over, the weather service and the
events office feed it, and the transit operator asks for the 14-day forecast again and again
through its gateway identity (signed request, recipient, budget and replay checks, the
forecast as Arrow IPC, an audit leaf per request):

* **one connection**: one request at a time, the client in the runtime's process;
* **pipelined**: up to ``--window`` requests in flight on one connection, same process;
* **client processes** (the headline ``rps``): ``--clients`` separate processes, each its own
  attested connection with ``--window`` requests in flight — the parties' gateways are other
  processes (other machines) in a deployment, so this is the runtime's serving rate, with
  the clients' own work (signing, desensitizing, decoding) off its interpreter. Needs anvil
  (a separate process cannot reach the embedded chain); without it the figure is left out;
* **in-process**: the loaded model's ``predict`` on the same inputs, called directly — the
  baseline, with no channel, no checks and no audit.

Reported: p50/p99 latency, ``p99_overhead_ms`` (one-connection p99 minus in-process p99; the
runtime answers repeated requests from one model call per feed epoch, so its p99 is compared
with the model call it replaces), requests/s of each mode, and chain transactions per 1,000
requests (audit batches of 1,000 leaves).

    python bench/prediction.py --quick     # 300 sequential, 2 x 1,500 from client processes
    python bench/prediction.py             # 2,000 sequential, 2 x 5,000

The last line printed is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from eth_account import Account

from chronoseal.analysis import AnalysisRuntime
from chronoseal.attest import attester_for
from chronoseal.gateway import Gateway
from chronoseal.ledger import Consortium, JsonRpcChain, chain_stats
from chronoseal.node import (
    Anvil,
    DemoConsortium,
    bundled_scenario,
    find_anvil,
    load_scenario,
    load_task,
)
from chronoseal.prediction import ForecastClient, PredictionRuntime, party_signer
from chronoseal.spec import Component

WINDOW = 16


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _client(consortium: Consortium, spec: Any, key: Any) -> ForecastClient:
    return ForecastClient(
        consortium,
        spec,
        party="transit",
        sign=party_signer(bytes(key.key)),
        attester=attester_for(spec.measurements.gateway.tee, Component.GATEWAY),
    )


class _Bench(DemoConsortium):
    requests = 300
    per_client = 1500
    clients = 2
    connections = 4
    window = WINDOW
    #: The anvil node the client processes reach (None: embedded chain, no processes).
    rpc_url: str | None = None
    spec_path: Path
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

    def _measure(self, prediction: PredictionRuntime) -> dict[str, Any]:
        n = self.requests
        txs_before = chain_stats(self.chain).transactions
        key = self._keys["transit"]
        address = prediction.address("forecasts")
        with _client(self.consortium, self.spec, key) as client:
            client.open(address)
            client.forecast()  # warm: the one model call for this feed epoch
            channel: list[float] = []
            start = time.perf_counter()
            for _ in range(n):
                t = time.perf_counter()
                answer = client.forecast()
                channel.append(time.perf_counter() - t)
                assert answer.forecast is not None, answer.refused
            one_rps = n / (time.perf_counter() - start)
            start = time.perf_counter()
            answers = client.pipelined(n, window=self.window)
            pipelined_rps = n / (time.perf_counter() - start)
            assert all(a.forecast is not None for a in answers)

        parallel: list[float] = []
        lock = threading.Lock()

        def worker(count: int) -> None:
            with _client(self.consortium, self.spec, key) as client:
                client.open(address)
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
        threads_rps = len(parallel) / (time.perf_counter() - start)

        processes = self._client_processes(address) if self.rpc_url else None
        prediction.audit.flush()
        requests = prediction.audit.leaves - 2  # every request; the two feed epochs aside
        txs = chain_stats(self.chain).transactions - txs_before

        model = prediction.model
        assert model is not None
        future, _ = prediction._feeds.future(model, self.spec.model.horizon)
        direct: list[float] = []
        for _ in range(max(30, n // 10)):
            t = time.perf_counter()
            model.predict(self.spec.model.horizon, future=future, level=self.spec.evaluation.level)
            direct.append(time.perf_counter() - t)
        ms = 1000.0
        out: dict[str, Any] = {
            "chain": "anvil" if self.rpc_url else "embedded",
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
            "rps_pipelined_one_connection": round(pipelined_rps, 1),
            "rps_threads": round(threads_rps, 1),
            "connections": self.connections,
            "window": self.window,
            "rps": None,
            "chain_tx_per_1000_requests": round(txs / requests * 1000, 3),
            "audit_batches": prediction.audit.batches,
        }
        if processes is not None:
            out.update(processes)
        return out

    def _client_processes(self, address: tuple[str, int]) -> dict[str, Any]:
        """The headline rate: separate client processes, each pipelining on its own
        connection, started together; requests/s over the span of all of them."""
        key = self._keys["transit"]
        job = {
            "rpc": self.rpc_url,
            "contract": self.consortium.address,
            "spec": str(self.spec_path),
            "key": key.key.hex(),
            "address": list(address),
            "count": self.per_client,
            "window": self.window,
            "start_at": time.time() + 8.0,  # every process connected and warm by then
        }
        procs = [
            subprocess.Popen(
                [sys.executable, __file__, "--client"],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
            )
            for _ in range(self.clients)
        ]
        reports = []
        for proc in procs:
            assert proc.stdin is not None
            proc.stdin.write(json.dumps(job))
            proc.stdin.close()
        for proc in procs:
            assert proc.stdout is not None
            stdout = proc.stdout.read()
            assert proc.wait(600) == 0, stdout
            reports.append(json.loads(stdout.strip().splitlines()[-1]))
        total = sum(r["served"] for r in reports)
        span = max(r["end"] for r in reports) - min(r["start"] for r in reports)
        timings = [t for r in reports for t in r["timings"]]
        return {
            "rps": round(total / span, 1),
            "client_processes": self.clients,
            "process_requests": total,
            "process_p50_ms": round(statistics.median(timings) * 1000, 3),
            "process_p99_ms": round(percentile(timings, 0.99) * 1000, 3),
        }


def client_process() -> None:
    """One client process of the bench (``--client``): its job as JSON on stdin."""
    job = json.loads(sys.stdin.read())
    consortium = Consortium.at(JsonRpcChain(job["rpc"]), job["contract"])
    spec = load_task(Path(job["spec"]))
    key = Account.from_key(bytes.fromhex(job["key"]))
    timings: list[float] = []
    with _client(consortium, spec, key) as client:
        client.open(tuple(job["address"]))
        client.forecast()
        time.sleep(max(0.0, job["start_at"] - time.time()))
        start = time.time()
        answers = client.pipelined(job["count"], window=job["window"], timings=timings)
        end = time.time()
    served = sum(1 for a in answers if a.forecast is not None)
    print(json.dumps({"served": served, "start": start, "end": end, "timings": timings}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="about a minute")
    parser.add_argument("--clients", type=int, default=2, help="client processes")
    parser.add_argument("--window", type=int, default=WINDOW, help="requests in flight each")
    parser.add_argument("--client", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.client:
        client_process()
        return
    with tempfile.TemporaryDirectory(prefix="chronoseal-bench-") as tmp:
        root = Path(tmp) / "chicago"
        shutil.copytree(bundled_scenario().parent, root)
        task = root / "task.toml"
        text = task.read_text().replace("windows = 13", "windows = 2")
        task.write_text(text.replace("contribution = {", "# contribution = {"))
        anvil = Anvil.start(Path(tmp)) if find_anvil() is not None else None
        try:
            chain = JsonRpcChain(anvil.url) if anvil is not None else None
            world = _Bench(load_scenario(root / "scenario.toml"), lambda _: None, chain=chain)
            world.rpc_url = anvil.url if anvil is not None else None
            world.spec_path = task
            world.requests = 300 if args.quick else 2000
            world.per_client = 1500 if args.quick else 5000
            world.clients = args.clients
            world.window = args.window
            print("training the model (2 windows) and handing it over…", file=sys.stderr)
            world.run("serving")
        finally:
            if anvil is not None:
                anvil.stop()
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
        f"{result['rps']} requests/s from {result.get('client_processes', 0)} client processes",
        file=sys.stderr,
    )
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
