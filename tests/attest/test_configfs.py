"""configfs-tsm generation against a fake tree that reacts to writes the way the kernel does."""

from __future__ import annotations

import errno
import os
import struct
import uuid
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from hypothesis import given, settings
from hypothesis import strategies as st
from vectors import milan_auxblob, snp_cert_table, utc, vector_bytes, vector_hex, vector_json

from chronoseal.attest._configfs import (
    GUID_ASK,
    GUID_VCEK,
    GUID_VLEK,
    OsFilesystem,
    generate_tsm_report,
    parse_snp_cert_table,
)
from chronoseal.attest._dcap import parse_quote, verify_dcap_quote
from chronoseal.attest._snp import parse_snp_report, verify_snp_report
from chronoseal.attest._unsupported import (
    UNSUPPORTED_TEES,
    generate_unsupported,
    verify_unsupported,
)
from chronoseal.errors import AttestationError, UnsupportedTee

ATTRIBUTES = ("inblob", "outblob", "auxblob", "provider", "generation", "privlevel_floor")


class FakeTsmKernel:
    """``/sys/kernel/config/tsm/report`` as tdx_guest/sev_guest behave, on a real directory.

    ``mkdir`` creates the attribute files, a write to ``inblob`` must be exactly 64 bytes
    (EINVAL otherwise), bumps ``generation`` and makes ``outblob``/``auxblob`` available,
    ``rmdir`` removes the entry with its attributes. ``other_writers`` simulates another
    process writing to the same entry between our write and our read.
    """

    def __init__(
        self,
        root: Path,
        provider: str,
        evidence: bytes,
        auxblob: bytes = b"",
        other_writers: int = 0,
    ) -> None:
        root.mkdir(parents=True)
        self.root = root
        self.provider = provider
        self.evidence = evidence
        self.auxblob = auxblob
        self.other_writers = other_writers
        self.created: list[Path] = []
        self.inblobs: list[bytes] = []

    def mkdir(self, path: Path) -> None:
        assert path.parent == self.root
        os.mkdir(path)
        for name in ATTRIBUTES:
            (path / name).write_bytes(b"")
        (path / "provider").write_text(f"{self.provider}\n")
        (path / "generation").write_text("0\n")
        (path / "privlevel_floor").write_text("0\n")
        self.created.append(path)

    def rmdir(self, path: Path) -> None:
        for name in ATTRIBUTES:
            (path / name).unlink()
        os.rmdir(path)

    def read(self, path: Path) -> bytes:
        return path.read_bytes()

    def write(self, path: Path, data: bytes) -> None:
        if path.name != "inblob":
            raise OSError(errno.EACCES, "Permission denied")
        if len(data) != 64:
            raise OSError(errno.EINVAL, "Invalid argument")
        self.inblobs.append(data)
        entry = path.parent
        generation = int((entry / "generation").read_text()) + 1 + self.other_writers
        (entry / "generation").write_text(f"{generation}\n")
        (entry / "inblob").write_bytes(data)
        (entry / "outblob").write_bytes(self.evidence)
        (entry / "auxblob").write_bytes(self.auxblob)


def _snp_kernel(tmp_path: Path, **kwargs: int) -> tuple[FakeTsmKernel, bytes]:
    report = vector_hex("virtee-sev/report_milan.hex")
    kernel = FakeTsmKernel(
        tmp_path / "tsm" / "report", "sev_guest", report, milan_auxblob(), **kwargs
    )
    return kernel, parse_snp_report(report).report_data


def _tdx_kernel(tmp_path: Path) -> tuple[FakeTsmKernel, bytes]:
    quote = vector_bytes("dcap-qvl/tdx_quote")
    kernel = FakeTsmKernel(tmp_path / "tsm" / "report", "tdx_guest", quote)
    return kernel, parse_quote(quote).body.report_data


def test_sev_snp_report_and_certificates_end_to_end(tmp_path: Path) -> None:
    kernel, report_data = _snp_kernel(tmp_path)
    result = generate_tsm_report(report_data, root=kernel.root, fs=kernel)
    assert result.provider == "sev_guest"
    assert result.generation == 1
    assert kernel.inblobs == [report_data]
    assert list(kernel.root.iterdir()) == []
    assert kernel.created[0].name.startswith("chronoseal-")
    table = parse_snp_cert_table(result.auxblob)
    assert table.vcek == vector_bytes("virtee-sev/vcek_milan.der")
    assert table.vlek is None
    assert table.ask is not None and table.ark is not None
    chain = b"".join(
        x509.load_der_x509_certificate(der).public_bytes(Encoding.PEM)
        for der in (table.ask, table.ark)
    )
    claims = verify_snp_report(result.outblob, table.vcek, chain, now=utc("2026-01-01"))
    assert claims.report_data == report_data


def test_tdx_quote_end_to_end(tmp_path: Path) -> None:
    kernel, report_data = _tdx_kernel(tmp_path)
    result = generate_tsm_report(report_data, root=kernel.root, fs=kernel)
    assert result.provider == "tdx_guest"
    assert result.auxblob == b""
    collateral = vector_json("dcap-qvl/tdx_quote_collateral.json")
    claims = verify_dcap_quote(result.outblob, collateral, now=utc("2025-07-01"))
    assert claims.report_data == report_data


def test_each_request_uses_a_fresh_entry(tmp_path: Path) -> None:
    kernel, report_data = _tdx_kernel(tmp_path)
    generate_tsm_report(report_data, root=kernel.root, fs=kernel)
    generate_tsm_report(report_data, root=kernel.root, fs=kernel)
    assert len(set(kernel.created)) == 2


@pytest.mark.parametrize("size", [0, 32, 63, 65, 128])
def test_report_data_must_be_64_bytes(tmp_path: Path, size: int) -> None:
    kernel, _ = _tdx_kernel(tmp_path)
    with pytest.raises(AttestationError) as caught:
        generate_tsm_report(bytes(size), root=kernel.root, fs=kernel)
    assert caught.value.id == "attest.report_data.size"
    assert kernel.created == []


def test_another_writer_is_detected(tmp_path: Path) -> None:
    kernel, report_data = _snp_kernel(tmp_path, other_writers=1)
    with pytest.raises(AttestationError) as caught:
        generate_tsm_report(report_data, root=kernel.root, fs=kernel)
    assert caught.value.id == "attest.configfs.race"
    assert caught.value.context == {"before": 0, "after": 2}
    assert list(kernel.root.iterdir()) == []


def test_evidence_for_other_report_data_is_refused(tmp_path: Path) -> None:
    kernel, report_data = _snp_kernel(tmp_path)
    other = bytes(b ^ 0xFF for b in report_data)
    with pytest.raises(AttestationError) as caught:
        generate_tsm_report(other, root=kernel.root, fs=kernel)
    assert caught.value.id == "attest.configfs.report_data_mismatch"
    assert list(kernel.root.iterdir()) == []


def test_unknown_provider_is_refused(tmp_path: Path) -> None:
    kernel = FakeTsmKernel(tmp_path / "report", "riscv_cove_guest", b"\0" * 64)
    with pytest.raises(AttestationError) as caught:
        generate_tsm_report(bytes(64), root=kernel.root, fs=kernel)
    assert caught.value.id == "attest.configfs.unknown_provider"


def test_missing_configfs_is_unavailable(tmp_path: Path) -> None:
    with pytest.raises(AttestationError) as caught:
        generate_tsm_report(bytes(64), root=tmp_path / "absent")
    assert caught.value.id == "attest.configfs.unavailable"


def test_plain_directory_is_not_configfs(tmp_path: Path) -> None:
    """With the real syscalls, a directory without the kernel's attributes fails cleanly."""
    with pytest.raises(AttestationError) as caught:
        generate_tsm_report(bytes(64), root=tmp_path, fs=OsFilesystem())
    assert caught.value.id == "attest.configfs.failed"
    assert list(tmp_path.iterdir()) == []


def test_os_filesystem_writes_in_one_call(tmp_path: Path) -> None:
    target = tmp_path / "inblob"
    target.write_bytes(b"")
    fs = OsFilesystem()
    fs.write(target, b"x" * 64)
    assert fs.read(target) == b"x" * 64


# --- GHCB certificate table ----------------------------------------------------------------


def test_empty_auxblob_has_no_certificates() -> None:
    table = parse_snp_cert_table(b"")
    assert (table.vcek, table.vlek, table.ask, table.ark) == (None, None, None, None)


def test_terminator_only_table_has_no_certificates() -> None:
    assert dict(parse_snp_cert_table(bytes(24)).entries) == {}


def test_vlek_and_unknown_guids_are_kept() -> None:
    unknown = uuid.UUID("12345678-1234-5678-1234-567812345678")
    table = parse_snp_cert_table(snp_cert_table([(GUID_VLEK, b"vlek"), (unknown, b"other")]))
    assert table.vlek == b"vlek"
    assert table.entries[unknown] == b"other"


@pytest.mark.parametrize(
    "blob",
    [
        GUID_VCEK.bytes + struct.pack("<II", 48, 4),  # no terminator
        GUID_VCEK.bytes + struct.pack("<II", 48, 400) + bytes(24),  # runs past the blob
        GUID_VCEK.bytes + struct.pack("<II", 0, 8) + bytes(24),  # points into the table
        snp_cert_table([(GUID_ASK, b"a"), (GUID_ASK, b"b")]),  # repeated GUID
    ],
)
def test_malformed_tables_are_refused(blob: bytes) -> None:
    with pytest.raises(AttestationError) as caught:
        parse_snp_cert_table(blob)
    assert caught.value.id == "attest.snp.cert_table_malformed"


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=400))
def test_cert_table_parser_raises_only_attestation_error(data: bytes) -> None:
    try:
        parse_snp_cert_table(data)
    except AttestationError as exc:
        assert exc.id == "attest.snp.cert_table_malformed"


# --- TEEs that are named but not implemented -----------------------------------------------


@pytest.mark.parametrize("tee", ["trustzone"])
def test_unsupported_tees_refuse_with_what_they_would_need(tee: str) -> None:
    """TrustZone-A defines no attestation: it refuses, never fakes."""
    with pytest.raises(UnsupportedTee) as generated:
        generate_unsupported(tee, bytes(64))
    with pytest.raises(UnsupportedTee) as verified:
        verify_unsupported(tee, b"evidence", now=utc("2026-01-01"))
    for caught in (generated.value, verified.value):
        assert caught.id == "attest.tee.unsupported"
        assert caught.message.startswith("not supported yet:")
        assert UNSUPPORTED_TEES[tee].title in caught.message
        assert "would need" in caught.message
    assert UNSUPPORTED_TEES[tee].generation_needs in generated.value.message
    assert UNSUPPORTED_TEES[tee].verification_needs in verified.value.message


def test_unknown_tee_name_is_not_unsupported_but_unknown() -> None:
    with pytest.raises(AttestationError) as caught:
        verify_unsupported("sgx2000", b"", now=utc("2026-01-01"))
    assert not isinstance(caught.value, UnsupportedTee)
    assert caught.value.id == "attest.tee.unknown"


# --- Arm CCA through the arm_cca_guest provider ---------------------------------------------


def test_a_cca_token_comes_through_configfs_tsm_and_verifies(tmp_path: Path) -> None:
    """The kernel hands back the real tf-rmm token, whose realm challenge is our inblob."""
    from chronoseal.attest import TsmAttester, get_backend
    from chronoseal.spec import Component

    token = vector_bytes("arm-cca/cca_token.cbor")
    kernel = FakeTsmKernel(tmp_path / "tsm" / "report", "arm_cca_guest", token)
    attester = TsmAttester("cca", Component.ANALYSIS, root=kernel.root, fs=kernel)
    evidence = attester.attest(b"\xab" * 64)
    assert evidence.tee == "cca" and evidence.raw == token
    cpak = vector_bytes("arm-cca/cca_platform.pub")
    claims = get_backend("cca").verify(
        evidence, now=utc("2026-01-01"), collateral=lambda _: cpak, max_age=None
    )
    assert claims.report_data == b"\xab" * 64


def test_a_cca_token_over_other_data_is_refused_by_the_attester(tmp_path: Path) -> None:
    token = vector_bytes("arm-cca/cca_token.cbor")
    kernel = FakeTsmKernel(tmp_path / "tsm" / "report", "arm_cca_guest", token)
    with pytest.raises(AttestationError) as caught:
        generate_tsm_report(bytes(64), root=kernel.root, fs=kernel)
    assert caught.value.id == "attest.configfs.report_data_mismatch"
