"""A task pinned to Arm CCA, end to end: the pin selects configfs-tsm's ``arm_cca_guest``
provider, the platform fake answers with a CCA token over the runtime's RA-TLS binding, and
every gateway verifies it (RAK binding, the CPAK from the verifier's endorsement store,
RIM approved on chain) before it streams.

What is faked: the kernel interface and the platform (a CPAK and RAKs made here); the CPAK
is filed in a temporary endorsement store. Everything else is the real path.
"""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pytest
from cca_fake import INSTANCE_ID, RIM, FakeCcaKernel, FakeCcaPlatform

from chronoseal.attest import _backends, _configfs
from chronoseal.errors import PeerRefused
from chronoseal.ledger import read_events
from chronoseal.node import DemoConsortium, bundled_scenario, load_scenario

DIGEST = hashlib.sha256(b"chronoseal/measurement/cca/v1\x00" + bytes([len(RIM)]) + RIM).hexdigest()


def _host(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, platform: FakeCcaPlatform
) -> FakeCcaKernel:
    kernel = FakeCcaKernel(tmp_path / "tsm" / "report", platform)
    monkeypatch.setattr(_backends, "TSM_REPORT_ROOT", kernel.root)
    monkeypatch.setattr(_configfs, "OsFilesystem", lambda: kernel)
    store = tmp_path / "endorsements"
    (store / "cca").mkdir(parents=True)
    (store / "cca" / f"{INSTANCE_ID.hex()}.pem").write_bytes(platform.cpak_pem)
    monkeypatch.setattr(_backends, "ENDORSEMENTS_DIR", store)
    return kernel


def _cca_scenario(tmp_path: Path) -> Path:
    root = tmp_path / "chicago"
    shutil.copytree(bundled_scenario().parent, root)
    task = root / "task.toml"
    task.write_text(
        task.read_text().replace(
            'analysis = { tee = "simulated", value = "installed" }',
            f'analysis = {{ tee = "cca", value = "{DIGEST}" }}',
        )
    )
    return root / "scenario.toml"


def test_a_cca_pinned_task_attests_and_streams(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    kernel = _host(tmp_path, monkeypatch, FakeCcaPlatform())
    world = DemoConsortium(load_scenario(_cca_scenario(tmp_path)), lambda _: None)
    report = world.run(until="running")
    assert report.state == "Running"
    assert kernel.inblobs, "the runtime never wrote its binding to configfs-tsm"
    assert [e for e in read_events(world.consortium) if e.name == "AttestationPosted"]
    assert all(party.rows_sent > 0 for party in report.parties)


def test_a_cca_platform_in_a_debug_lifecycle_is_refused_by_the_gateways(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _host(tmp_path, monkeypatch, FakeCcaPlatform(lifecycle=0x5000))
    world = DemoConsortium(load_scenario(_cca_scenario(tmp_path)), lambda _: None)
    with pytest.raises(PeerRefused) as caught:
        world.run(until="running")
    assert "attest.debug.enabled" in caught.value.message


def test_without_the_cpak_endorsed_the_gateways_refuse(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _host(tmp_path, monkeypatch, FakeCcaPlatform())
    monkeypatch.setattr(_backends, "ENDORSEMENTS_DIR", tmp_path / "empty")
    world = DemoConsortium(load_scenario(_cca_scenario(tmp_path)), lambda _: None)
    with pytest.raises(PeerRefused) as caught:
        world.run(until="running")
    assert "attest.collateral.missing" in caught.value.message
