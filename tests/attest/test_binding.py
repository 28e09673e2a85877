"""Key binding: 64 bytes, deterministic, and no two (key, nonce) pairs share a value."""

from __future__ import annotations

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from chronoseal.attest import REPORT_DATA_SIZE, report_data_for
from chronoseal.attest._binding import binding_matches
from chronoseal.errors import AttestationError

# SPKI of the P-256 generator point (private scalar 1): a fixed, well-known key.
GENERATOR_SPKI = bytes.fromhex(
    "3059301306072a8648ce3d020106082a8648ce3d030107034200046b17d1f2e12c4247f8bce6e563a440f2"
    "77037d812deb33a0f4a13945d898c2964fe342e2fe1a7f9b8ee7eb4a7c0f9e162bce33576b315ececbb640"
    "6837bf51f5"
)
GENERATOR_BINDING = bytes.fromhex(
    "fd3dfac606945d650ac76a1afb17823fe59e87c8073bbca2e9b556deb8d89d7fba32d6895e2178176a56a7"
    "c5d730338b61ad4c764fe36aeb26e4ec16e53c6695"
)


def _der_length(size: int) -> bytes:
    if size < 0x80:
        return bytes([size])
    encoded = size.to_bytes((size.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(encoded)]) + encoded


spkis = st.binary(max_size=300).map(lambda body: b"\x30" + _der_length(len(body)) + body)
nonces = st.binary(min_size=16, max_size=64)


def test_known_answer() -> None:
    assert report_data_for(GENERATOR_SPKI, bytes(32)) == GENERATOR_BINDING


@given(spkis, nonces)
def test_always_fills_all_64_bytes(spki: bytes, nonce: bytes) -> None:
    value = report_data_for(spki, nonce)
    assert len(value) == REPORT_DATA_SIZE == 64
    assert binding_matches(value, report_data_for(spki, nonce))


@given(spkis, nonces, spkis, nonces)
def test_any_change_of_key_or_nonce_changes_the_binding(
    key_a: bytes, nonce_a: bytes, key_b: bytes, nonce_b: bytes
) -> None:
    assume((key_a, nonce_a) != (key_b, nonce_b))
    assert report_data_for(key_a, nonce_a) != report_data_for(key_b, nonce_b)


@given(spkis, nonces, st.integers(min_value=0, max_value=63), st.integers(1, 255))
def test_a_flipped_bit_never_matches(spki: bytes, nonce: bytes, index: int, flip: int) -> None:
    value = bytearray(report_data_for(spki, nonce))
    value[index] ^= flip
    assert not binding_matches(report_data_for(spki, nonce), bytes(value))


def test_shorter_or_longer_values_never_match() -> None:
    assert not binding_matches(GENERATOR_BINDING[:32], GENERATOR_BINDING[:32])
    assert not binding_matches(GENERATOR_BINDING, GENERATOR_BINDING[:32] + bytes(32))
    assert not binding_matches(GENERATOR_BINDING, GENERATOR_BINDING + b"\x00")


@pytest.mark.parametrize(
    "key",
    [
        b"",
        b"\x30",
        b"\x04" + bytes(64),
        GENERATOR_SPKI + b"\x00",
        GENERATOR_SPKI[:-1],
        b"\x30\x81\x05abcde",
        b"\x30\x82\x00\x81" + bytes(0x81),
    ],
    ids=[
        "empty",
        "header-only",
        "raw-point",
        "trailing",
        "truncated",
        "long-form-short",
        "non-minimal",
    ],
)
def test_key_must_be_one_der_sequence(key: bytes) -> None:
    with pytest.raises(AttestationError) as caught:
        report_data_for(key, bytes(32))
    assert caught.value.id == "attest.binding.bad_key"


def test_nonce_must_be_long_enough_to_be_fresh() -> None:
    with pytest.raises(AttestationError) as caught:
        report_data_for(GENERATOR_SPKI, bytes(15))
    assert caught.value.id == "attest.binding.bad_nonce"
