"""CSV evidence generation through ``/dev/csv-guest`` against a firmware fake, end to end
through the verifier (with the fake platform's root pinned for the test)."""

from __future__ import annotations

import errno
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes
from csv_builder import CsvPlatform
from csv_firmware import FakeCsvFirmware

from chronoseal.attest._csv import parse_csv_certificate, parse_csv_report, verify_csv_report
from chronoseal.attest._csv_guest import (
    CSV_GET_REPORT,
    CsvGuestAttester,
    generate_csv_report,
)
from chronoseal.errors import AttestationError
from chronoseal.spec import Component


@pytest.fixture(scope="module")
def platform() -> CsvPlatform:
    return CsvPlatform()


def test_the_ioctl_number_is_csv_get_report() -> None:
    # _IOWR('D', 0x1, struct { u64 addr; u32 len; }) with the struct's C size, 16 bytes.
    assert CSV_GET_REPORT == 0xC0104401


def test_a_report_over_our_data_verifies_in_its_restored_form(
    platform: CsvPlatform, report_data: bytes
) -> None:
    firmware = FakeCsvFirmware(platform)
    raw = generate_csv_report(report_data, device=firmware)
    assert firmware.requests == [report_data]
    claims = verify_csv_report(raw, platform.hsk_cek, hrk=platform.hrk)
    assert claims.report_data == report_data
    pek = parse_csv_certificate(parse_csv_report(raw).pek)  # unmasked by the guest
    assert pek.public_xy == platform.pek_key.public_xy


def test_a_page_not_answering_our_request_is_refused(
    platform: CsvPlatform, report_data: bytes
) -> None:
    class Replaying(FakeCsvFirmware):
        def get_report(self, page: bytearray) -> None:
            page[:64] = bytes(64)  # the host answers with a report over other data
            digest = hashes.Hash(hashes.SM3())
            digest.update(bytes(64) + bytes(page[64:80]))
            page[80:112] = digest.finalize()
            super().get_report(page)

    with pytest.raises(AttestationError) as caught:
        generate_csv_report(report_data, device=Replaying(platform))
    assert caught.value.id == "attest.csv_guest.report_data_mismatch"


def test_a_signer_block_altered_on_the_way_fails_its_mac(
    platform: CsvPlatform, report_data: bytes
) -> None:
    class Altering(FakeCsvFirmware):
        def get_report(self, page: bytearray) -> None:
            super().get_report(page)
            page[0x150 + 10] ^= 1  # inside the masked PEK

    with pytest.raises(AttestationError) as caught:
        generate_csv_report(report_data, device=Altering(platform))
    assert caught.value.id == "attest.csv_guest.mac_invalid"


def test_an_ioctl_failure_has_its_id(report_data: bytes) -> None:
    class Failing:
        def get_report(self, page: bytearray) -> None:
            raise OSError(errno.EIO, "Input/output error")

    with pytest.raises(AttestationError) as caught:
        generate_csv_report(report_data, device=Failing())
    assert caught.value.id == "attest.csv_guest.failed"


def test_report_data_must_be_64_bytes(platform: CsvPlatform) -> None:
    with pytest.raises(AttestationError) as caught:
        generate_csv_report(b"short", device=FakeCsvFirmware(platform))
    assert caught.value.id == "attest.report_data.size"


def test_without_the_device_the_guest_path_is_unavailable(report_data: bytes) -> None:
    if Path("/dev/csv-guest").exists():
        pytest.skip("this host is a CSV guest")
    with pytest.raises(AttestationError) as caught:
        generate_csv_report(report_data)
    assert caught.value.id == "attest.csv_guest.unavailable"


def test_the_attester_carries_the_provisioned_hsk_cek(
    platform: CsvPlatform, report_data: bytes, tmp_path: Path
) -> None:
    chip = tmp_path / "CONSTRUCTED0001"
    chip.mkdir()
    (chip / "hsk_cek.cert").write_bytes(platform.hsk_cek)
    attester = CsvGuestAttester(
        Component.ANALYSIS, device=FakeCsvFirmware(platform), hsk_cek_dir=tmp_path
    )
    evidence = attester.attest(report_data)
    assert evidence.tee == "csv" and evidence.certificates == (platform.hsk_cek,)
    bare = CsvGuestAttester(
        Component.ANALYSIS, device=FakeCsvFirmware(platform), hsk_cek_dir=tmp_path / "no"
    ).attest(report_data)
    assert bare.certificates == ()
