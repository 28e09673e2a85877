"""The demo under the GM/T suite (``[task] crypto = "gmt"``): SM4-GCM data frames and SM3
commitments end to end, to Serving, with every commitment matched on chain and the task
re-verified from the chain alone."""

from __future__ import annotations

import shutil
from pathlib import Path

from chronoseal.channel._commitment import merkle_root
from chronoseal.ledger import read_events
from chronoseal.node import DemoConsortium, bundled_scenario, load_scenario


def _gmt_scenario(tmp_path: Path) -> Path:
    root = tmp_path / "chicago"
    shutil.copytree(bundled_scenario().parent, root)
    task = root / "task.toml"
    text = task.read_text()
    assert "\n[task]\n" in text
    task.write_text(text.replace("\n[task]\n", '\n[task]\ncrypto = "gmt"\n', 1))
    return root / "scenario.toml"


def test_the_gmt_demo_serves_with_sm3_commitments_matched_and_audited(tmp_path: Path) -> None:
    world = DemoConsortium(load_scenario(_gmt_scenario(tmp_path)), lambda _: None)
    assert world.spec.task.crypto == "gmt"
    report = world.run(until="serving")
    assert report.state == "Serving"
    events = read_events(world.consortium)
    posted = [e for e in events if e.name == "DataCommitmentPosted"]
    matched = [e for e in events if e.name == "CommitmentMatched"]
    assert posted and len(matched) == len(world.spec.data_providers())
    assert not [e for e in events if e.name == "CommitmentMismatched"]
    # The roots on chain are SM3 roots: none is what SHA-256 gives for the same leaves'
    # shape, and the audit from the chain alone passes.
    assert all(
        len(bytes.fromhex(str(e.args["commitment"]).removeprefix("0x"))) == 32 for e in posted
    )
    assert merkle_root([], "gmt") != merkle_root([])
    assert report.audit.verified and not report.audit.failures
