"""``chronoseal run --workers N``: the Chicago task on attested Dask workers ends Serving with
the released metrics of the one-process run, and the summary lists each worker's appraisal,
its attestation as posted on chain and the fits it ran."""

from __future__ import annotations

import gc
import hashlib
import json
from collections.abc import Iterator
from typing import Any

import pytest
import rfc8785

from chronoseal.attest import installed_measurement
from chronoseal.node import RunResult, Scenario, bundled_scenario
from chronoseal.node._report import render_report

# Dask's scheduler binds (and leaves to the collector) an HTTP probe socket in its __init__.
pytestmark = [
    pytest.mark.integration,  # starts worker processes: slow, outside the fast run
    pytest.mark.filterwarnings("ignore::ResourceWarning"),
    pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning"),
]


@pytest.fixture(autouse=True)
def _collect_dask_sockets() -> Iterator[None]:
    """Dask's leftover sockets are collected here, inside this module's warning filters,
    not in whichever later test the collector happens to run."""
    yield
    gc.collect()


def _released_digest(result: RunResult) -> str:
    """What the parties learn of the model: every release without its cost section (seconds
    and worker counts differ by nature), its per-release nonce, the model commitment and the
    series pseudonyms (both keyed per run)."""
    docs = {
        party: {k: v for k, v in doc.items() if k not in {"cost", "nonce", "task_id"}}
        for party, doc in result.report.releases.items()
    }
    for doc in docs.values():
        if "model" in doc:
            doc["model"] = {k: v for k, v in doc["model"].items() if k != "commitment"}
        # series pseudonyms are keyed per task run: renamed in order of appearance
        names: dict[str, str] = {}
        for row in doc.get("backtest") or []:
            row["unique_id"] = names.setdefault(row["unique_id"], f"series-{len(names)}")
    return hashlib.sha256(rfc8785.dumps(json.loads(json.dumps(docs, default=str)))).hexdigest()


def test_chicago_on_two_workers_serves_the_one_process_metrics() -> None:
    with Scenario.load(bundled_scenario()).run() as alone:
        assert alone.state == "Serving"
        assert "workers" not in alone.summary
        want = _released_digest(alone)
    with Scenario.load(bundled_scenario()).run(workers=2) as spread:
        assert spread.state == "Serving" and spread.verified
        assert _released_digest(spread) == want
        workers: list[dict[str, Any]] = spread.summary["workers"]
        cost = spread.report.released("cost")
        page = render_report(spread.report)
    assert [w["name"] for w in workers] == ["worker-0", "worker-1"]
    pin = "0x" + installed_measurement("analysis_worker", "simulated").hex()
    for worker in workers:
        assert worker["appraisal"] == "accepted" and worker["on_chain"] is True
        assert worker["tee"] == "simulated" and worker["measurement"] == pin
        assert not worker["lost"] and sum(worker["fits"].values()) > 0
        # the block of its AttestationPosted, read from the chain's events, shown in the report
        assert isinstance(worker["attestation_block"], int)
        assert f'<td class="num">{worker["attestation_block"]}</td>' in page
    assert len({w["evidence_hash"] for w in workers}) == 2
    # every back-test fit ran on a worker; only the released model's fit ran in the runtime
    assert cost["workers"] == 2 and cost["fits"]["final"] == 1
    ran = sum(sum(w["fits"].values()) for w in workers)
    assert ran == sum(cost["fits"].values()) - 1
