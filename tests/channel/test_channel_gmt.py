"""The GM/T suite (a task's ``crypto = "gmt"``): SM4-GCM frames and SM3 commitments."""

from __future__ import annotations

import io

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from hypothesis import given, settings
from hypothesis import strategies as st

from chronoseal.channel import HpkePrivateKey, StreamContext, open_sender, read_secure_stream
from chronoseal.channel._commitment import BatchCommitment, merkle_root
from chronoseal.channel._framing import Sm4Gcm, Suite
from chronoseal.errors import StreamIntegrityError

CONTEXT = StreamContext(task_id=bytes(range(32)), party="party-a", stream_id="data")
RECIPIENT = HpkePrivateKey()


def seal(chunks: list[bytes], suite: Suite) -> bytes:
    sink = io.BytesIO()
    with open_sender(sink, CONTEXT, RECIPIENT.public_key, suite=suite) as writer:
        for chunk in chunks:
            writer.write(chunk)
    return sink.getvalue()


def open_(data: bytes, suite: Suite) -> tuple[bytes, ...]:
    return read_secure_stream(io.BytesIO(data), CONTEXT, RECIPIENT, suite=suite).chunks


@settings(deadline=None, max_examples=30)
@given(st.lists(st.binary(max_size=200), max_size=5))
def test_sm4_gcm_streams_round_trip(chunks: list[bytes]) -> None:
    assert open_(seal(chunks, "gmt"), "gmt") == tuple(chunks)


@settings(deadline=None, max_examples=30)
@given(chunks=st.lists(st.binary(min_size=1, max_size=64), min_size=1, max_size=4), data=st.data())
def test_any_byte_flip_of_an_sm4_stream_is_refused(
    chunks: list[bytes], data: st.DataObject
) -> None:
    sealed = bytearray(seal(chunks, "gmt"))
    sealed[data.draw(st.integers(0, len(sealed) - 1))] ^= 0x01
    with pytest.raises(StreamIntegrityError):
        open_(bytes(sealed), "gmt")


@pytest.mark.parametrize(("sent", "expected"), [("gmt", "standard"), ("standard", "gmt")])
def test_a_stream_of_the_other_suite_is_refused_at_its_header(sent: Suite, expected: Suite) -> None:
    with pytest.raises(StreamIntegrityError) as caught:
        open_(seal([b"rows"], sent), expected)
    assert caught.value.id == "channel.stream.suite_mismatch"


def test_the_frames_are_sm4_gcm_under_an_hkdf_sm3_key() -> None:
    """Open a frame independently: the key schedule and cipher are what the docs say."""
    key = bytes(range(32))
    derived = HKDF(hashes.SM3(), 16, salt=None, info=b"chronoseal.channel.sm4-key.v1").derive(key)
    nonce, aad = bytes(12), b"aad"
    out = bytearray(5 + 16)
    Sm4Gcm(derived).encrypt_into(nonce, b"hello", aad, memoryview(out))
    decryptor = Cipher(algorithms.SM4(derived), modes.GCM(nonce, bytes(out[5:]))).decryptor()
    decryptor.authenticate_additional_data(aad)
    assert decryptor.update(bytes(out[:5])) + decryptor.finalize() == b"hello"


def test_sm3_commitments_differ_from_sha256_and_match_each_other() -> None:
    salt = bytes(32)
    gateway = BatchCommitment(b"t" * 32, "transit", suite="gmt")
    runtime = BatchCommitment(b"t" * 32, "transit", suite="gmt")
    standard = BatchCommitment(b"t" * 32, "transit")
    for commitment in (gateway, runtime, standard):
        commitment.add(0, salt, b"batch-0")
        commitment.add(1, salt, b"batch-1")
    assert gateway.matches(runtime.root())
    assert gateway.root() != standard.root() and len(gateway.root()) == 32
    assert merkle_root([], "gmt") != merkle_root([])
    digest = hashes.Hash(hashes.SM3())
    digest.update(b"\x02" + bytes(8))
    assert merkle_root([], "gmt") == digest.finalize()
