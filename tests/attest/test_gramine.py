"""Gramine ``/dev/attestation`` quote generation against a fake tree that behaves like Gramine."""

from __future__ import annotations

import errno
from collections.abc import Callable
from pathlib import Path

import pytest
from vectors import utc, vector_bytes, vector_json

from chronoseal.attest._dcap import parse_quote, verify_dcap_quote
from chronoseal.attest._gramine import generate_gramine_quote
from chronoseal.errors import AttestationError

SGX_QUOTE = "dcap-qvl/sgx_quote"


class FakeGramine:
    """``/dev/attestation`` as Gramine's libos presents it, on a real directory.

    Like Gramine, ``user_report_data`` takes any length and silently pads (or truncates) it
    to 64 bytes; ``quote`` is produced by ``make_quote`` from the stored report data.
    """

    def __init__(
        self, root: Path, make_quote: Callable[[bytes], bytes], attestation_type: str = "dcap"
    ) -> None:
        root.mkdir(parents=True)
        self.root = root
        self.make_quote = make_quote
        self.writes: list[bytes] = []
        (root / "attestation_type").write_text(f"{attestation_type}\n")
        (root / "user_report_data").write_bytes(bytes(64))
        (root / "quote").write_bytes(b"")
        (root / "my_target_info").write_bytes(bytes(512))

    def mkdir(self, path: Path) -> None:
        raise OSError(errno.EPERM, "Operation not permitted")

    def rmdir(self, path: Path) -> None:
        raise OSError(errno.EPERM, "Operation not permitted")

    def read(self, path: Path) -> bytes:
        if path.name == "quote":
            stored = (self.root / "user_report_data").read_bytes()
            return self.make_quote(stored)
        return path.read_bytes()

    def write(self, path: Path, data: bytes) -> None:
        if path.name != "user_report_data":
            raise OSError(errno.EACCES, "Permission denied")
        self.writes.append(data)
        path.write_bytes(data[:64].ljust(64, b"\0"))


def _vector_enclave(report_data: bytes) -> bytes:
    """An enclave whose only real quote is the vector: it signs nothing else."""
    return vector_bytes(SGX_QUOTE)


def _sgx_report_data() -> bytes:
    return parse_quote(vector_bytes(SGX_QUOTE)).body.report_data


def test_quote_is_generated_and_verifies(tmp_path: Path) -> None:
    gramine = FakeGramine(tmp_path / "attestation", _vector_enclave)
    report_data = _sgx_report_data()
    quote = generate_gramine_quote(report_data, root=gramine.root, fs=gramine)
    assert gramine.writes == [report_data]
    assert quote == vector_bytes(SGX_QUOTE)
    collateral = vector_json("dcap-qvl/sgx_quote_collateral.json")
    assert verify_dcap_quote(quote, collateral, now=utc("2025-07-01")).report_data == report_data


@pytest.mark.parametrize("size", [0, 13, 32, 63, 65])
def test_only_exactly_64_bytes_are_written(tmp_path: Path, size: int) -> None:
    """Gramine would pad b"Hello, world!" to the vector's report data; that must not pass."""
    gramine = FakeGramine(tmp_path / "attestation", _vector_enclave)
    data = (b"Hello, world!" + bytes(64))[:size]
    with pytest.raises(AttestationError) as caught:
        generate_gramine_quote(data, root=gramine.root, fs=gramine)
    assert caught.value.id == "attest.report_data.size"
    assert gramine.writes == []


def test_attestation_type_must_be_dcap(tmp_path: Path) -> None:
    gramine = FakeGramine(tmp_path / "attestation", _vector_enclave, attestation_type="none")
    with pytest.raises(AttestationError) as caught:
        generate_gramine_quote(_sgx_report_data(), root=gramine.root, fs=gramine)
    assert caught.value.id == "attest.gramine.not_dcap"
    assert "sgx.remote_attestation" in caught.value.message
    assert gramine.writes == []


def test_outside_gramine_is_unavailable(tmp_path: Path) -> None:
    with pytest.raises(AttestationError) as caught:
        generate_gramine_quote(bytes(64), root=tmp_path / "attestation")
    assert caught.value.id == "attest.gramine.unavailable"


def test_quote_over_other_report_data_is_refused(tmp_path: Path) -> None:
    gramine = FakeGramine(tmp_path / "attestation", _vector_enclave)
    with pytest.raises(AttestationError) as caught:
        generate_gramine_quote(b"\x01" * 64, root=gramine.root, fs=gramine)
    assert caught.value.id == "attest.gramine.report_data_mismatch"


def test_tdx_quote_is_not_a_gramine_quote(tmp_path: Path) -> None:
    tdx = vector_bytes("dcap-qvl/tdx_quote")
    gramine = FakeGramine(tmp_path / "attestation", lambda _: tdx)
    report_data = parse_quote(tdx).body.report_data
    with pytest.raises(AttestationError) as caught:
        generate_gramine_quote(report_data, root=gramine.root, fs=gramine)
    assert caught.value.id == "attest.gramine.report_data_mismatch"


def test_garbage_instead_of_a_quote_is_malformed(tmp_path: Path) -> None:
    gramine = FakeGramine(tmp_path / "attestation", lambda data: b"\x03\x00\x02\x00" + data)
    with pytest.raises(AttestationError) as caught:
        generate_gramine_quote(bytes(64), root=gramine.root, fs=gramine)
    assert caught.value.id == "attest.quote.malformed"


def test_gramine_refusing_the_write_is_reported(tmp_path: Path) -> None:
    gramine = FakeGramine(tmp_path / "attestation", _vector_enclave)

    def refuse(path: Path, data: bytes) -> None:
        raise OSError(errno.EIO, "Input/output error")

    gramine.write = refuse  # type: ignore[method-assign]
    with pytest.raises(AttestationError) as caught:
        generate_gramine_quote(_sgx_report_data(), root=gramine.root, fs=gramine)
    assert caught.value.id == "attest.gramine.failed"
    assert caught.value.context["errno"] == errno.EIO
