"""A task pinned to Hygon CSV, end to end: the analysis runtime's attester is chosen by the
pin (``/dev/csv-guest``), the firmware fake answers its ioctl with a report over the RA-TLS
binding, and every gateway appraises that evidence (SM2 chain to the pinned root, measurement
approved on chain, key bound) before it streams.

What is faked: the device (a firmware fake signing with constructed SM2 keys) and therefore
the root, which the test pins in place of Hygon's HRK. Everything else is the real path.
"""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pytest
from csv_builder import CsvPlatform
from csv_firmware import FakeCsvFirmware

from chronoseal.attest import _backends, _csv, _csv_guest
from chronoseal.errors import PeerRefused
from chronoseal.ledger import read_events
from chronoseal.node import DemoConsortium, bundled_scenario, load_scenario

MEASURE = b"\x11" * 32
DIGEST = hashlib.sha256(b"chronoseal/measurement/csv/v1\x00" + MEASURE).hexdigest()


@pytest.fixture
def csv_host(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> FakeCsvFirmware:
    """This host as a CSV guest: a device node, the firmware behind it, the chip's HSK/CEK
    provisioned where the guest looks, and the fake platform's root pinned."""
    platform = CsvPlatform()
    firmware = FakeCsvFirmware(platform)
    device = tmp_path / "csv-guest"
    device.write_bytes(b"")
    monkeypatch.setattr(_backends, "CSV_GUEST_DEVICE", device)
    monkeypatch.setattr(_csv_guest, "CSV_GUEST_DEVICE", device)
    monkeypatch.setattr(_csv_guest, "OsCsvGuest", lambda: firmware)
    chip = tmp_path / "hsk_cek" / "CONSTRUCTED0001"
    chip.mkdir(parents=True)
    (chip / "hsk_cek.cert").write_bytes(platform.hsk_cek)
    monkeypatch.setattr(_csv_guest, "HSK_CEK_DIR", tmp_path / "hsk_cek")
    monkeypatch.setattr(_csv, "_pinned_hrk", lambda: platform.hrk)
    monkeypatch.setattr(_csv, "HRK_SHA256", hashlib.sha256(platform.hrk).hexdigest())
    return firmware


def _csv_scenario(tmp_path: Path) -> Path:
    root = tmp_path / "chicago"
    shutil.copytree(bundled_scenario().parent, root)
    task = root / "task.toml"
    task.write_text(
        task.read_text().replace(
            'analysis = { tee = "simulated", value = "installed" }',
            f'analysis = {{ tee = "csv", value = "{DIGEST}" }}',
        )
    )
    return root / "scenario.toml"


def test_a_csv_pinned_task_attests_and_streams(csv_host: FakeCsvFirmware, tmp_path: Path) -> None:
    world = DemoConsortium(load_scenario(_csv_scenario(tmp_path)), lambda _: None)
    report = world.run(until="running")
    assert report.state == "Running"
    assert csv_host.requests, "the runtime never asked the CSV firmware for a report"
    posted = [e for e in read_events(world.consortium) if e.name == "AttestationPosted"]
    assert posted
    assert all(party.rows_sent > 0 for party in report.parties)


def test_a_debug_csv_guest_is_refused_by_the_gateways(
    csv_host: FakeCsvFirmware, tmp_path: Path
) -> None:
    csv_host.policy &= ~1  # NODBG clear
    world = DemoConsortium(load_scenario(_csv_scenario(tmp_path)), lambda _: None)
    with pytest.raises(PeerRefused) as caught:
        world.run(until="running")
    assert caught.value.id == "channel.peer.evidence_refused"
    assert "attest.debug.enabled" in caught.value.message
